"""A grid's best finished runs as ensemble members (`top_runs`): the report layer reads the
leaderboard, the members are `cvlab.train.ensembles`' own."""

from __future__ import annotations

import warnings
from dataclasses import replace
from pathlib import Path

from cvlab.errors import EnsembleError, EnsembleWarning
from cvlab.report.store import LeaderboardStore
from cvlab.runs.lookup import MODEL_FILE
from cvlab.train.ensembles import TEST_SET_PARAM, Member, _is_number, member_from_run
from cvlab.workspace import Workspace, project_root

__all__ = ["top_runs"]


def top_runs(
    grid: str, k: int, root: str | Path | None = None, *, test_set: str | None = None
) -> list[Member]:
    """The `k` best finished runs of `grid` on the leaderboard under `root` (default: the project
    root), best first, by the grid's own rank metric; only `ok` runs that saved a model count.

    With `test_set` (a fingerprint), runs scored on another test set, or that recorded none
    (a grid's smoke row, say), are left out with a warning naming them, before the top `k` are
    taken.
    """
    if k < 1:
        raise EnsembleError(f"top_k={k}: an ensemble needs at least one member")
    ws = Workspace.at(project_root() if root is None else root)
    if not ws.leaderboard_db.is_file():
        raise EnsembleError(
            f"no leaderboard store at {ws.leaderboard_db}: run the grid first "
            f"(python run_grid.py grids/{grid}.yaml --out {ws.root}), or pass the folder it "
            "wrote to (its --out) as the root"
        )
    store = LeaderboardStore(ws.leaderboard_db)
    grids = store.grids()
    if grid not in grids:
        known = ", ".join(sorted(grids)) or "none"
        raise EnsembleError(
            f"grid {grid!r} is not on the leaderboard at {ws.leaderboard_db} (grids there: "
            f"{known}); run it first, or name one of those"
        )
    metric, mode = grids[grid]["rank_metric"], grids[grid]["rank_mode"]
    ranked: list[tuple[float, str]] = []
    left_out: list[str] = []
    for record in store.records(grid):
        value = record.metrics.get(metric)
        saved = ws.run_dir(grid, record.run_id) / record.artifacts.get("model", MODEL_FILE)
        if record.status != "ok" or not _is_number(value) or not saved.is_file():
            continue
        if test_set is not None and record.params.get(TEST_SET_PARAM) != test_set:
            theirs = record.params.get(TEST_SET_PARAM) or "none recorded"
            left_out.append(f"{record.name or record.run_id} (test set {theirs})")
            continue
        ranked.append((float(value), record.run_id))
    ranked.sort(key=lambda item: item[0], reverse=(mode != "min"))
    if left_out:
        warnings.warn(
            f"grid {grid!r}: left out {len(left_out)} run(s) not scored on this test set "
            f"({test_set}): {'; '.join(left_out)}",
            EnsembleWarning,
            stacklevel=2,
        )
    if len(ranked) < k:
        on = f" on test set {test_set}" if test_set is not None else ""
        raise EnsembleError(
            f"grid {grid!r} has {len(ranked)} finished run(s) with a saved model and a {metric}"
            f"{on}, fewer than top_k={k}: lower top_k, or run more of the grid"
        )
    return [
        replace(member_from_run(ws.run_dir(grid, run_id)), rank_value=value)
        for value, run_id in ranked[:k]
    ]
