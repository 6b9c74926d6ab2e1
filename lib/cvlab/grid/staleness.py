"""Finished runs that a change of their notebook's code made stale.

A run's id hashes the notebook's code (`cvlab.grid.expand.notebook_digest`: markdown, comments and
blank lines left out) with its parameters, so when the code changes, each run of the grid gets a
new id and runs again; the finished run of the old code stays on disk and on the page, marked
stale. `--dry-run` lists them, with the run that replaces each.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvlab.grid.expand import RunPlan, notebook_digest
from cvlab.grid.spec import ValidatedGrid
from cvlab.runs.record import FINISHED_STATUSES, RunRecord
from cvlab.workspace import Workspace


@dataclass(frozen=True)
class StaleRun:
    """A finished run of an older version of the notebook's code, and the plan that replaces it
    (same grid, same parameters, the current code)."""

    record: RunRecord
    replaced_by: RunPlan


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, default=str) == json.dumps(b, sort_keys=True, default=str)


def _plan_of(record: RunRecord, plans: list[RunPlan]) -> RunPlan | None:
    """The plan with the record's grid parameters (a record may hold more: `Run.log_params`)."""
    for plan in plans:
        if all(k in record.params and _same(record.params[k], v) for k, v in plan.params.items()):
            return plan
    return None


def stale_runs(
    grid: ValidatedGrid, plans: list[RunPlan], out: str | Path | Workspace
) -> list[StaleRun]:
    """The finished runs in `<out>/experiments/<grid>/` whose recorded code digest differs from
    the notebook's current one and whose parameters are those of one of `plans`. Records without
    a digest (written before runs recorded one) are of unknown code: never stale."""
    ws = out if isinstance(out, Workspace) else Workspace.at(out)
    folder = ws.experiments / grid.name
    if not folder.is_dir():
        return []
    current = (
        plans[0].code_digest if plans and plans[0].code_digest else notebook_digest(grid.notebook)
    )
    planned = {plan.run_id for plan in plans}
    found = []
    for run_dir in sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in planned):
        record = RunRecord.load_if_present(run_dir)
        if (
            record is None
            or record.status not in FINISHED_STATUSES
            or not record.code_digest
            or record.code_digest == current
        ):
            continue
        plan = _plan_of(record, plans)
        if plan is not None:
            found.append(StaleRun(record, plan))
    return found


def stale_note(stale: list[StaleRun], notebook: Path) -> str:
    """What `--dry-run` prints about stale runs: empty when there are none."""
    if not stale:
        return ""
    lines = [
        f"{len(stale)} finished run{'s are' if len(stale) > 1 else ' is'} stale: the code of "
        f"{notebook.name} changed since {'they' if len(stale) > 1 else 'it'} ran (kept, and marked "
        "stale on the page; the current code runs under a new id):"
    ]
    lines += [
        f"  {s.record.name or s.record.run_id} [{s.record.run_id}] -> [{s.replaced_by.run_id}]"
        for s in stale
    ]
    return "\n".join(lines)
