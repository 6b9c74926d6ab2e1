"""Per-grid comparison figures in `figs/<grid>/`: rank metric against each varied parameter,
and the validation curves of every run overlaid."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cvlab.figures import new_figure, save_png
from cvlab.report.page_data import param_text
from cvlab.report.rank_chart import NOT_SET, rank_chart
from cvlab.report.ranking import best_run_ids
from cvlab.runs.curves import metric_pairs
from cvlab.runs.record import HISTORY_FILE
from cvlab.workspace import Workspace


def _exact(value: Any, integers: bool) -> Any:
    """A frame value as the run recorded it (pandas makes an int column with a gap floats)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, np.generic):
        value = value.item()
    if integers and isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def chart_runs(group: pd.DataFrame) -> list[dict[str, Any]]:
    """One grid's rows of the store's frame as `rank_chart` takes them (as the page data has
    them: parameter values as text, unset ones left out)."""
    cols = [c for c in group.columns if c.startswith("params.")]
    integers = {
        c: bool(
            pd.api.types.is_float_dtype(group[c])
            and group[c].isna().any()
            and group[c].dropna().map(float.is_integer).all()
        )
        for c in cols
    }
    best = best_run_ids(group)
    runs = []
    for _, row in group.iterrows():
        values = {c.removeprefix("params."): _exact(row[c], integers[c]) for c in cols}
        rank = row["rank_value"]
        runs.append(
            {
                "key": f"{row['grid']}/{row['run_id']}",
                "name": str(row["name"]),
                "params": {k: param_text(v) for k, v in values.items() if v is not None},
                "rank": None if pd.isna(rank) else float(rank),
                "best": str(row["run_id"]) in best,
                "stale": row.get("stale") in (True, 1),
                "synthetic": row.get("synthetic") in (True, 1),
            }
        )
    return runs


def plot_rank_vs_params(group: pd.DataFrame, path: Path) -> Path | None:
    """The grid's `rank_chart` (the page draws the same one): a panel per varied parameter with
    each ranked run's value (dots), the mean per value (line) and, where several runs share a
    value, ± one sample standard deviation (error bars)."""
    chart = rank_chart(chart_runs(group))
    panels, points = chart["panels"], chart["points"]
    if not points or not panels:
        return None
    metric = str(group["rank_metric"].iloc[0])
    fig, axes = new_figure(1, len(panels), figsize=(3.6 * len(panels), 3.2))
    for ax, panel in zip(axes[0], panels, strict=True):
        param, values = panel["param"], panel["values"]
        pos = {value: i for i, value in enumerate(values)}
        xs = [pos[point["params"].get(param)] for point in points]
        ax.scatter(xs, [point["rank"] for point in points], alpha=0.7, zorder=3)
        groups = panel["groups"]
        ax.plot([pos[g["value"]] for g in groups], [g["mean"] for g in groups], "-", c="grey")
        spread = [g for g in groups if g["sd"] is not None]
        if spread:
            ax.errorbar(
                [pos[g["value"]] + 0.15 for g in spread],
                [g["mean"] for g in spread],
                yerr=[g["sd"] for g in spread],
                fmt="none",
                ecolor="black",
                capsize=3,
                lw=1,
            )
        labels = [NOT_SET if value is None else value for value in values]
        ax.set_xticks(range(len(values)), labels, rotation=30, fontsize=8)
        ax.set_xlabel(param)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    fig.suptitle(f"{group['grid'].iloc[0]}: {metric} by parameter", fontsize=10)
    return save_png(fig, path)


def plot_validation_curves(group: pd.DataFrame, ws: Workspace, path: Path) -> Path | None:
    """Every run's validation curves (training curves where there is no validation) overlaid."""
    histories = {}
    for _, row in group.iterrows():
        csv = ws.run_dir(str(row["grid"]), str(row["run_id"])) / HISTORY_FILE
        if csv.exists():
            hist = pd.read_csv(csv)
            if "epoch" in hist and len(hist):
                histories[f"{row['name']} [{row['run_id']}]"] = hist
    if not histories:
        return None
    all_columns = sorted({c for h in histories.values() for c in h.columns})
    pairs = metric_pairs(all_columns)
    columns = [val or train for train, val in pairs][:3] or [
        c for c in all_columns if c.startswith("val_")
    ][:3]
    if not columns:
        return None
    fig, axes = new_figure(1, len(columns), figsize=(4.4 * len(columns), 3.4))
    for ax, col in zip(axes[0], columns, strict=True):
        for name, hist in histories.items():
            if col in hist:
                ax.plot(hist["epoch"], hist[col], marker="o", ms=2, label=name)
        ax.set_xlabel("epoch")
        ax.set_ylabel(col)
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"{group['grid'].iloc[0]}: all runs", fontsize=10)
    return save_png(fig, path)


def write_grid_figures(frame: pd.DataFrame, ws: Workspace, grid: str) -> list[Path]:
    group = frame[frame["grid"] == grid]
    if group.empty:
        return []
    out = ws.grid_figs(grid)
    made = [
        plot_rank_vs_params(group, out / "rank_vs_params.png"),
        plot_validation_curves(group, ws, out / "validation_curves.png"),
    ]
    return [p for p in made if p is not None]
