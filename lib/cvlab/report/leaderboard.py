"""`cvlab.leaderboard()`: the leaderboard as a pandas DataFrame, per run or per combination."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cvlab.errors import LeaderboardNotFoundError
from cvlab.report import seed_groups
from cvlab.report.ranking import flag, leaderboard_order
from cvlab.report.store import LeaderboardStore, only_grids
from cvlab.workspace import Workspace


def leaderboard(
    grid: str | None = None,
    *,
    group_by_seed: bool = False,
    include_stale: bool = False,
    out: str | Path = ".",
) -> pd.DataFrame:
    """The runs of `grid` (every grid when None) in `<out>/logs/leaderboard.db`, best first.

    One row per run, with `params.*` and `metrics.*` columns (`metrics.<m>:best`, `:last` and
    `:best_epoch` for per-epoch metrics); with `group_by_seed=True`, one row per combination of
    parameters, each metric as `<m>.mean` / `<m>.std` over its finished seeds (see
    `cvlab.report.seed_groups`).

    Runs of an older version of their notebook's code (`stale` column) are listed after the
    current ones and left out of the seed groups, unless `include_stale=True` ranks them with
    the others; runs on synthetic data (`synthetic`) rank after the real ones.
    """
    ws = Workspace.at(out)
    if not ws.leaderboard_db.is_file():
        raise LeaderboardNotFoundError(
            f"{ws.leaderboard_db}: no leaderboard here; run a grid first "
            "(python run_grid.py grids/quickstart.yaml) or pass out= the folder given as --out"
        )
    frame = LeaderboardStore(ws.leaderboard_db).frame()
    if grid is not None:
        if grid not in set(frame["grid"]):
            known = ", ".join(sorted(set(frame["grid"]))) or "none"
            raise KeyError(f"no grid {grid!r} in {ws.leaderboard_db} (grids: {known})")
        frame = only_grids(frame, [grid])
    if group_by_seed:
        if not include_stale:
            frame = frame[~flag(frame, "stale")].reset_index(drop=True)
        return seed_groups.group_by_seed(frame)
    # best first within each grid; stale, then unranked runs (failed, no metric) last
    return leaderboard_order(frame, include_stale).reset_index(drop=True)
