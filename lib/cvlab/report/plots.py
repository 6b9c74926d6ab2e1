"""Per-grid comparison figures in `figs/<grid>/`: rank metric against each varied parameter,
the validation curves of every run overlaid, and a searched or pruned grid's progress (best value
so far by trial and by epochs spent) and parameter importance."""

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
from cvlab.report.search_view import SEARCH_FIGURE, GridSpace, search_entry
from cvlab.runs.curves import metric_pairs
from cvlab.runs.record import HISTORY_FILE, RunRecord
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


def _log_axis(ax: Any) -> None:
    """A logarithmic x axis labelled at 1, 2 and 5 of each decade in plain numbers."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # lazy: matplotlib

    ax.set_xscale("log")
    ax.xaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.tick_params(axis="x", labelsize=8)


def plot_rank_vs_params(
    group: pd.DataFrame, path: Path, scales: dict[str, str] | None = None
) -> Path | None:
    """The grid's `rank_chart` (the page draws the same one): a panel per varied parameter with
    each ranked run's value (dots), the mean per value (line) and, where several runs share a
    value, ± one sample standard deviation (error bars). A searched grid's numeric parameters
    (`scales`) sit on numeric axes, logarithmic where its space is."""
    chart = rank_chart(chart_runs(group), scales=scales)
    panels, points = chart["panels"], chart["points"]
    if not points or not panels:
        return None
    metric = str(group["rank_metric"].iloc[0])
    fig, axes = new_figure(1, len(panels), figsize=(3.6 * len(panels), 3.2))
    for ax, panel in zip(axes[0], panels, strict=True):
        param, values = panel["param"], panel["values"]
        numeric = panel["scale"] != "category"
        pos = {value: float(value) if numeric else i for i, value in enumerate(values)}
        xs = [pos[point["params"].get(param)] for point in points]
        ax.scatter(xs, [point["rank"] for point in points], alpha=0.7, zorder=3)
        groups = panel["groups"]
        if not numeric or any(g["n"] > 1 for g in groups):  # a line through sampled values: noise
            ax.plot([pos[g["value"]] for g in groups], [g["mean"] for g in groups], "-", c="grey")
        spread = [g for g in groups if g["sd"] is not None]
        if spread:
            ax.errorbar(
                [pos[g["value"]] + (0 if numeric else 0.15) for g in spread],
                [g["mean"] for g in spread],
                yerr=[g["sd"] for g in spread],
                fmt="none",
                ecolor="black",
                capsize=3,
                lw=1,
            )
        if panel["scale"] == "log":
            _log_axis(ax)
        if not numeric:
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


def plot_search(search: dict[str, Any], grid: str, path: Path) -> Path | None:
    """A searched or pruned grid's progress: best value so far against trials (each complete
    trial's own value as a dot, pruned ones as crosses on the axis) and against epochs spent, and
    each parameter's importance (or why it is not known yet)."""
    trials = search["trials"]
    if not trials:
        return None
    metric = search["metric"] or "rank value"
    fig, axes = new_figure(1, 3, figsize=(13.2, 3.4))
    by_trial, by_epochs, bars = axes[0]
    done = [t for t in trials if t["best"] is not None]
    for ax, x in ((by_trial, "trial"), (by_epochs, "spent")):
        if done:
            ax.step([t[x] for t in done], [t["best"] for t in done], where="post", c="#1f4e8c")
        valued = [t for t in trials if t["value"] is not None]
        ax.scatter([t[x] for t in valued], [t["value"] for t in valued], s=12, alpha=0.6)
        ax.set_xlabel("trials" if x == "trial" else "epochs spent")
        ax.xaxis.get_major_locator().set_params(integer=True)
        ax.set_ylabel(f"best {metric} so far")
        ax.grid(alpha=0.3)
    pruned = [t["trial"] for t in trials if t["status"] == "pruned"]
    if pruned and done:
        low = min(t["value"] for t in trials if t["value"] is not None)
        by_trial.scatter(pruned, [low] * len(pruned), marker="x", c="grey", label="pruned")
        by_trial.legend(fontsize=7)
    found = search["importance"]
    if "params" in found:
        names = [name for name, _ in found["params"]][::-1]
        bars.barh(names, [value for _, value in found["params"]][::-1], color="#4e79a7")
        bars.set_xlabel(f"importance ({found['evaluator']})")
    else:
        bars.axis("off")
        bars.text(0, 0.5, found["note"], wrap=True, fontsize=8, va="center")
    fig.suptitle(f"{grid}: {search['how'] or 'search'}", fontsize=10)
    return save_png(fig, path)


def write_grid_figures(
    frame: pd.DataFrame,
    ws: Workspace,
    grid: str,
    space: GridSpace | None = None,
    records: list[RunRecord] | None = None,
) -> list[Path]:
    """The grid's figures; a searched or pruned grid's `space` and run `records` add
    `search.png` and its numeric parameter axes."""
    group = frame[frame["grid"] == grid]
    if group.empty:
        return []
    out = ws.grid_figs(grid)
    mode = group["rank_mode"].iloc[0]
    metric = group["rank_metric"].iloc[0]
    ranks = {
        f"{g}/{r}": None if pd.isna(v) else float(v)
        for g, r, v in zip(group["grid"], group["run_id"], group["rank_value"], strict=True)
    }
    mine = [r for r in records or [] if r.grid == grid]
    search = search_entry(
        mine, ranks, space, mode, metric if isinstance(metric, str) and metric else None
    )
    made = [
        plot_rank_vs_params(group, out / "rank_vs_params.png", search["scales"] if search else {}),
        plot_validation_curves(group, ws, out / "validation_curves.png"),
        plot_search(search, grid, out / SEARCH_FIGURE) if search and mine else None,
    ]
    return [p for p in made if p is not None]
