"""Per-grid comparison figures in `figs/<grid>/`: rank metric against each varied parameter,
and the validation curves of every run overlaid."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cvlab.figures import new_figure, save_png
from cvlab.report.ranking import varied_params
from cvlab.runs.curves import metric_pairs
from cvlab.runs.record import HISTORY_FILE
from cvlab.workspace import Workspace


def _sort_key(value: object) -> tuple[int, float | str]:
    try:
        return (0, float(value))  # numbers in numeric order
    except (TypeError, ValueError):
        return (1, str(value))


def plot_rank_vs_params(group: pd.DataFrame, path: Path) -> Path | None:
    """One panel per varied parameter: each run's rank value (dots), the mean per value (line) and,
    where several runs share a value, ± one sample standard deviation (error bars). With seeds,
    `seed` is not a panel of its own: its spread is what the error bars show."""
    done = group[group["rank_value"].notna()]
    params = varied_params(group)
    if len(params) > 1:
        params = [p for p in params if p != "params.seed"]
    if done.empty or not params:
        return None
    metric = str(group["rank_metric"].iloc[0])
    fig, axes = new_figure(1, len(params), figsize=(3.6 * len(params), 3.2))
    for ax, col in zip(axes[0], params, strict=True):
        labels = sorted({str(v) for v in group[col]}, key=_sort_key)
        pos = {label: i for i, label in enumerate(labels)}
        xs = [pos[str(v)] for v in done[col]]
        ax.scatter(xs, done["rank_value"], alpha=0.7, zorder=3)
        by_value = done.groupby(done[col].astype(str))["rank_value"]
        means, stds = by_value.mean(), by_value.std(ddof=1)  # NaN for a single run
        shown = [k for k in labels if k in means]
        ax.plot([pos[k] for k in shown], [means[k] for k in shown], "-", c="grey")
        spread = [k for k in shown if pd.notna(stds[k])]
        if spread:
            ax.errorbar(
                [pos[k] + 0.15 for k in spread],
                [means[k] for k in spread],
                yerr=[stds[k] for k in spread],
                fmt="none",
                ecolor="black",
                capsize=3,
                lw=1,
            )
        ax.set_xticks(range(len(labels)), labels, rotation=30, fontsize=8)
        ax.set_xlabel(col.removeprefix("params."))
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
