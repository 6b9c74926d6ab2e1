"""Aggregate runs over seeds: one row per combination of parameters, every metric as mean and
standard deviation over its finished seeds, and whether it differs from the grid's best.

The rule for "differs": each combination's rank metric gets a 95% confidence interval for its
mean, Student's t with n - 1 degrees of freedom (mean +- t * s / sqrt(n)); two combinations whose
intervals overlap are marked as not significantly different. Overlap is a conservative check (it
says "not significant" more often than a two-sample t-test would), which suits a leaderboard
that should not call noise a win. One finished seed gives no interval and no verdict.

A combination run on synthetic data (`synthetic`) is compared only with other synthetic ones:
where the grid has real combinations, the best is the best real one and the synthetic ones get
the verdict `synthetic`.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from cvlab.report.ranking import flag

SEED_PARAM = "params.seed"
CONFIDENCE = 0.95
# `vs_best` values
BEST, NOT_SIGNIFICANT, WORSE, NO_INTERVAL = "best", "not significant", "worse", "one seed"
SYNTHETIC = "synthetic"  # a synthetic combination in a grid with real ones: not compared


def _key_text(value: Any) -> str:
    """A parameter value as grouping text: missing (NaN/None) and set values never merge."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "<unset>"
    return json.dumps(value, sort_keys=True, default=str)


def confidence_interval(values: np.ndarray, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student-t interval for the mean of `values`; (nan, nan) below two values."""
    n = len(values)
    if n < 2:
        return math.nan, math.nan
    mean = float(np.mean(values))
    half = float(stats.t.ppf((1 + confidence) / 2, n - 1) * np.std(values, ddof=1) / math.sqrt(n))
    return mean - half, mean + half


def _metric_columns(frame: pd.DataFrame) -> list[str]:
    """`metrics.*` columns holding numbers (text metrics cannot be averaged)."""
    cols = []
    for col in frame.columns:
        if col.startswith("metrics.") and pd.to_numeric(frame[col], errors="coerce").notna().any():
            cols.append(col)
    return cols


def group_by_seed(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per (grid, parameters except `seed`) of a store frame, best mean first per grid.

    Columns: `grid`, the `params.*` columns (no seed), `seeds_finished` (runs with status ok),
    `seeds_total`, `seeds` and `run_ids` (lists, in seed order), `rank_mean`, `rank_std`,
    `rank_ci_low`, `rank_ci_high`, `vs_best`, then `<metric>.mean` / `<metric>.std` for every
    numeric metric. Means and standard deviations (ddof=1, the sample's) use finished seeds only.
    """
    if frame.empty:
        return pd.DataFrame(
            columns=["grid", "seeds_finished", "seeds_total", "rank_mean", "rank_std", "vs_best"]
        )
    param_cols = [c for c in frame.columns if c.startswith("params.") and c != SEED_PARAM]
    metric_cols = _metric_columns(frame)
    keyed = frame.assign(
        _synthetic=flag(frame, "synthetic"),
        _key=[
            json.dumps([_key_text(row[c]) for c in param_cols])
            for _, row in frame[param_cols].iterrows()
        ],
    )
    rows = []
    for (grid, _), group in keyed.groupby(["grid", "_key"], sort=False):
        group = group.sort_values("seed", na_position="last", kind="stable")
        done = group[group["status"] == "ok"]
        ranks = pd.to_numeric(done["rank_value"], errors="coerce").dropna().to_numpy(float)
        low, high = confidence_interval(ranks)
        first = group.iloc[0]
        row: dict[str, Any] = {
            "grid": grid,
            **{c: first[c] for c in param_cols},
            "rank_metric": first.get("rank_metric"),
            "rank_mode": first.get("rank_mode"),
            "synthetic": bool(group["_synthetic"].any()),
            "seeds_finished": len(done),
            "seeds_total": len(group),
            "seeds": [None if pd.isna(s) else int(s) for s in group["seed"]],
            "run_ids": list(group["run_id"]),
            "statuses": list(group["status"]),
            "rank_mean": float(np.mean(ranks)) if len(ranks) else math.nan,
            "rank_std": float(np.std(ranks, ddof=1)) if len(ranks) > 1 else math.nan,
            "rank_ci_low": low,
            "rank_ci_high": high,
        }
        for col in metric_cols:
            values = pd.to_numeric(done[col], errors="coerce").dropna().to_numpy(float)
            values = values[np.isfinite(values)]
            name = col.removeprefix("metrics.")
            row[f"{name}.mean"] = float(np.mean(values)) if len(values) else math.nan
            row[f"{name}.std"] = float(np.std(values, ddof=1)) if len(values) > 1 else math.nan
        rows.append(row)
    groups = pd.DataFrame(rows)
    ordered = []
    for _, part in groups.groupby("grid", sort=True):
        mode = part["rank_mode"].iloc[0]
        part = part.sort_values(
            "rank_mean", ascending=(mode == "min"), na_position="last", kind="stable"
        )
        real, synthetic = part[~part["synthetic"]], part[part["synthetic"]]
        if real["rank_mean"].notna().any():  # real combinations first; synthetic not compared
            ordered.append(real.assign(vs_best=_verdicts(real)))
            if len(synthetic):
                ordered.append(synthetic.assign(vs_best=[SYNTHETIC] * len(synthetic)))
        else:
            ordered.append(part.assign(vs_best=_verdicts(part)))
    return pd.concat(ordered, ignore_index=True)


def _verdicts(part: pd.DataFrame) -> list[str | None]:
    """Each combination against the grid's best mean (the first row): see the module's rule."""
    if part.empty or pd.isna(part["rank_mean"].iloc[0]):
        return [None] * len(part)
    best = part.iloc[0]
    verdicts: list[str | None] = []
    for i, (_, row) in enumerate(part.iterrows()):
        if pd.isna(row["rank_mean"]):
            verdicts.append(None)
        elif i == 0:
            verdicts.append(BEST)
        elif pd.isna(row["rank_ci_low"]) or pd.isna(best["rank_ci_low"]):
            verdicts.append(NO_INTERVAL)
        elif (
            row["rank_ci_low"] <= best["rank_ci_high"]
            and best["rank_ci_low"] <= row["rank_ci_high"]
        ):
            verdicts.append(NOT_SIGNIFICANT)
        else:
            verdicts.append(WORSE)
    return verdicts
