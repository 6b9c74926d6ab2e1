"""Which run is best in each grid, by the grid's `rank_by` metric, and the order runs are listed in.

Two kinds of runs never rank against the others: a stale run (an older version of its notebook's
code, see `cvlab.grid.staleness`) unless asked for, and a run on synthetic data, which ranks only
among synthetic runs: a real run always beats it, and a grid with only synthetic runs still has
a best run, its best synthetic one.
"""

from __future__ import annotations

import pandas as pd


def flag(frame: pd.DataFrame, column: str) -> pd.Series:
    """A boolean column of the store's frame (`stale`, `synthetic`), False where absent."""
    if column not in frame.columns:
        return pd.Series(False, index=frame.index, dtype=bool)
    return frame[column].map(lambda value: value is True or value == 1).astype(bool)


def ranked_pool(group: pd.DataFrame, include_stale: bool = False) -> pd.DataFrame:
    """The runs of one grid that compete for its best: finished, with a rank value, current
    (unless `include_stale`), and real when any such run is real, else the synthetic ones."""
    ranked = group[(group["status"] == "ok") & group["rank_value"].notna()]
    if not include_stale:
        ranked = ranked[~flag(ranked, "stale")]
    real = ranked[~flag(ranked, "synthetic")]
    return real if not real.empty else ranked


def best_run_ids(frame: pd.DataFrame, include_stale: bool = False) -> set[str]:
    """Ids of the best `ok` run of each grid (highest or lowest rank value, per the grid's mode),
    among its `ranked_pool`."""
    best: set[str] = set()
    if frame.empty:
        return best
    for _, group in frame.groupby("grid"):
        pool = ranked_pool(group, include_stale)
        if pool.empty:
            continue
        mode = pool["rank_mode"].iloc[0]
        idx = pool["rank_value"].idxmin() if mode == "min" else pool["rank_value"].idxmax()
        best.add(str(pool.loc[idx, "run_id"]))
    return best


def leaderboard_order(frame: pd.DataFrame, include_stale: bool = False) -> pd.DataFrame:
    """Grids by name; in each, ranked runs best first (per the grid's mode): real current runs,
    then synthetic ones, then stale ones (among the others with `include_stale`), then the runs
    without a rank value; ties by start time."""
    ranked = frame["rank_value"].notna()
    stale = flag(frame, "stale") & (not include_stale)
    tier = (~ranked) * 3 + (ranked & stale) * 2 + (ranked & ~stale & flag(frame, "synthetic"))
    sign = frame["rank_mode"].map(lambda mode: 1.0 if mode == "min" else -1.0)
    ordered = frame.assign(
        _tier=tier.astype(int),
        _score=frame["rank_value"] * sign,
        _started=frame["started_at"].fillna(""),
    )
    ordered = ordered.sort_values(["grid", "_tier", "_score", "_started"], kind="stable")
    return ordered.drop(columns=["_tier", "_score", "_started"])
