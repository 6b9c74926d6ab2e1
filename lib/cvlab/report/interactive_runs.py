"""Runs made by hand in Jupyter (`experiments/interactive/<stamp>/record.json`, no grid driver)
into the leaderboard store, so the page shows them beside the grids' runs."""

from __future__ import annotations

import warnings

from cvlab.errors import RunRecordError
from cvlab.report.store import LeaderboardStore
from cvlab.runs.record import RunRecord
from cvlab.workspace import Workspace

INTERACTIVE = "interactive"  # the folder (and grid name) of runs started with run_dir=None


def interactive_records(ws: Workspace) -> list[RunRecord]:
    """The records under experiments/interactive/, oldest first; an unreadable one is skipped
    with a warning naming its file (the others still show)."""
    records = []
    for path in sorted((ws.experiments / INTERACTIVE).glob("*/record.json")):
        try:
            record = RunRecord.load(path.parent)
        except (RunRecordError, OSError, ValueError) as exc:
            warnings.warn(f"{path}: not shown on the page ({exc})", stacklevel=2)
            continue
        record.grid = INTERACTIVE  # where the page links it: experiments/interactive/<id>/
        records.append(record)
    return records


def add_interactive_runs(ws: Workspace, store: LeaderboardStore) -> int:
    """Upsert the interactive runs into `store` (again on each call: a running one updates);
    returns how many."""
    records = interactive_records(ws)
    if records:
        store.upsert(records)
    return len(records)
