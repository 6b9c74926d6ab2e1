"""Which run is best in each grid, by the grid's `rank_by` metric."""

from __future__ import annotations

import pandas as pd


def best_run_ids(frame: pd.DataFrame) -> set[str]:
    """Ids of the best `ok` run of each grid (highest or lowest rank value, per the grid's mode)."""
    best: set[str] = set()
    if frame.empty:
        return best
    ranked = frame[(frame["status"] == "ok") & frame["rank_value"].notna()]
    for _, group in ranked.groupby("grid"):
        mode = group["rank_mode"].iloc[0]
        idx = group["rank_value"].idxmin() if mode == "min" else group["rank_value"].idxmax()
        best.add(str(group.loc[idx, "run_id"]))
    return best


def varied_params(frame: pd.DataFrame) -> list[str]:
    """The `params.*` columns whose values differ between the rows of `frame`."""
    cols = [c for c in frame.columns if c.startswith("params.")]
    return [c for c in cols if frame[c].astype(str).nunique(dropna=False) > 1]
