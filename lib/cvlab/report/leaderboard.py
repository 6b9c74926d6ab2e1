"""`cvlab.leaderboard()`: the leaderboard as a pandas DataFrame, per run or per combination."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cvlab.errors import LeaderboardNotFoundError
from cvlab.report import seed_groups
from cvlab.report.store import LeaderboardStore, only_grids
from cvlab.workspace import Workspace


def leaderboard(
    grid: str | None = None, *, group_by_seed: bool = False, out: str | Path = "."
) -> pd.DataFrame:
    """The runs of `grid` (every grid when None) in `<out>/logs/leaderboard.db`, best first.

    One row per run, with `params.*` and `metrics.*` columns (`metrics.<m>:best`, `:last` and
    `:best_epoch` for per-epoch metrics); with `group_by_seed=True`, one row per combination of
    parameters, each metric as `<m>.mean` / `<m>.std` over its finished seeds (see
    `cvlab.report.seed_groups`).
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
        return seed_groups.group_by_seed(frame)
    # best first within each grid; unranked runs (failed, no metric) last
    sign = frame["rank_mode"].map(lambda mode: 1.0 if mode == "min" else -1.0)
    order = (frame["rank_value"] * sign).fillna(float("inf"))
    ranked = frame.assign(_order=order).sort_values(["grid", "_order"], kind="stable")
    return ranked.drop(columns="_order").reset_index(drop=True)
