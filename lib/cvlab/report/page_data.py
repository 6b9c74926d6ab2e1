"""What the leaderboard page shows, as plain data: runs with their links, parents and curves,
grids, and which parameter columns vary in each view.

The store's frame gives the rows, their order inputs and rank values; the run records give exact
parameter values (the frame turns an int beside a missing value into a float) and artifacts.
`page.py` renders the table from this and embeds it as JSON for the page's script.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pandas as pd

from cvlab.report.page_curves import load_curves
from cvlab.report.rank_chart import rank_chart
from cvlab.report.ranking import best_run_ids, flag, leaderboard_order
from cvlab.report.search_view import (
    SEARCH_FIGURE,
    GridSpace,
    grid_spaces,
    pruned_text,
    search_entry,
)
from cvlab.report.seed_groups import group_by_seed
from cvlab.report.store import LeaderboardStore
from cvlab.runs.epoch_metrics import EpochSummary, flat_summary
from cvlab.runs.record import CURVES_FILE, HISTORY_FILE, HTML_FILE, NOTEBOOK_FILE, RunRecord
from cvlab.workspace import Workspace

RUN_REF_PREFIX = "run:"  # `weights="run:<id>"`, `resume_from="run:<grid>/<id>"` name a parent run
GRID_FIGURES = ("rank_vs_params.png", "validation_curves.png", SEARCH_FIGURE)


def href(*segments: str) -> str:
    """A relative URL from path segments, each percent-encoded (`#`, `?`, spaces in names)."""
    return "/".join(quote(segment) for segment in segments)


def param_text(value: Any) -> str:
    """How a parameter value reads in the table, filters and comparisons: as Python writes it."""
    if isinstance(value, str):
        return value
    if value is None or isinstance(value, bool | int | float):
        return repr(value)
    return json.dumps(value, sort_keys=True, default=str)


def metric_value(value: Any) -> float | int | str | None:
    """A metric as JSON can carry it: finite numbers as they are, NaN/inf as None, others as text."""
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    return None if value is None else param_text(value)


def metric_text(value: float | int | str | None) -> str:
    """A metric cell: four significant digits for numbers."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def column_view(runs: list[dict[str, Any]], exclude_metrics: Iterable[str] = ()) -> dict[str, Any]:
    """For a set of runs: parameters that vary (first) and those constant, and the metrics present.

    A parameter some runs lack and others have varies. Order is first appearance in `runs`.
    """
    names: dict[str, None] = {}
    metrics: dict[str, None] = {}
    for run in runs:
        names.update(dict.fromkeys(run["params"]))
        metrics.update(dict.fromkeys(run["metrics"]))
    varied, constant = [], {}
    for name in names:
        values = {run["params"].get(name) for run in runs}
        if len(values) > 1:
            varied.append(name)
        else:
            constant[name] = next(iter(values))
    skip = set(exclude_metrics)
    return {
        "varied": varied,
        "constant": constant,
        "metrics": [m for m in metrics if m not in skip],
    }


def resolve_parent(
    params: dict[str, str], grid: str, run_ids: dict[str, list[str]]
) -> dict[str, Any] | None:
    """The run a warm start or resume continues: a parameter `run:<id>` or `run:<grid>/<id>`.

    `run_ids` maps each run id to the grids holding it. The result names the parent's row
    (`key`, None when it is not on the leaderboard) and the parameter that named it.
    """
    for name, value in params.items():
        if not value.startswith(RUN_REF_PREFIX):
            continue
        ref = value.removeprefix(RUN_REF_PREFIX).strip()
        parent_grid, _, run_id = ref.rpartition("/")
        grids = run_ids.get(run_id, [])
        if parent_grid:
            found = parent_grid if parent_grid in grids else None
        else:  # a bare id: the grid holding it, this grid first when several do
            found = grid if grid in grids else (grids[0] if len(grids) == 1 else None)
        return {
            "key": f"{found}/{run_id}" if found else None,
            "param": name,
            "ref": value,
        }
    return None


def run_links(ws: Workspace, record: RunRecord) -> dict[str, Any]:
    """Relative links (from `experiments/index.html`) to the run's files that exist."""
    grid, run_id = record.grid, record.run_id
    run_dir = ws.run_dir(grid, run_id)
    links: dict[str, Any] = {
        label: href(grid, run_id, name)
        for label, name in (
            ("notebook", HTML_FILE),
            ("ipynb", NOTEBOOK_FILE),
            ("curves", CURVES_FILE),
        )
        if (run_dir / name).is_file()
    }
    models = sorted(
        path
        for key, path in record.artifacts.items()
        if (key == "model" or key.startswith("model:")) and (run_dir / path).is_file()
    )
    if models:
        links["models"] = [[Path(p).name, href(grid, run_id, *Path(p).parts)] for p in models]
    if ws.run_log(grid, run_id).is_file():
        links["log"] = href("..", ws.logs.name, grid, f"{run_id}.log")
    return links


def shown_summaries(
    epoch_metrics: dict[str, EpochSummary], rank_metric: str | None
) -> dict[str, float]:
    """The best/last columns a run shows: its validation metrics' (all its metrics' when it has no
    `val_*` one) plus the rank metric's base, so a page is not flooded with training curves."""
    names = [name for name in epoch_metrics if name.startswith("val_")] or list(epoch_metrics)
    if not isinstance(rank_metric, str):  # NaN: a grid never registered (interactive runs)
        rank_metric = None
    base = (rank_metric or "").rpartition(":")[0] or rank_metric
    if base in epoch_metrics and base not in names:
        names.append(base)
    return flat_summary({name: epoch_metrics[name] for name in names})


def run_hardware(record: RunRecord) -> dict[str, str]:
    """Where the run computed: its Keras backend, device ("NVIDIA H200", "CPU") and dtype policy
    ("float32", "mixed_bfloat16"); records from before they were recorded ran on TensorFlow."""
    env = record.environment
    backend = str(env.get("backend") or ("tensorflow" if env.get("tensorflow") else ""))
    device, precision = str(env.get("device") or ""), str(env.get("precision") or "")
    return {
        "backend": backend,
        "device": device,
        "precision": precision,
        "hardware": " · ".join(part for part in (backend, device, precision) if part),
    }


def thumbnail_link(ws: Workspace, record: RunRecord) -> str | None:
    """The run's picture (`Run.save_image(..., thumbnail=True)`), when the file is there."""
    path = record.artifacts.get("thumbnail")
    if not path or not (ws.run_dir(record.grid, record.run_id) / path).is_file():
        return None
    return href(record.grid, record.run_id, *Path(path).parts)


def best_keys(frame: pd.DataFrame, include_stale: bool = False) -> set[str]:
    """`<grid>/<run_id>` of each grid's best run (a run id alone can recur in another grid);
    stale runs compete only with `include_stale`, synthetic ones only among themselves."""
    return {
        f"{grid}/{run_id}"
        for grid, group in frame.groupby("grid")
        for run_id in best_run_ids(group, include_stale)
    }


def _run_entry(
    row: pd.Series, record: RunRecord, ws: Workspace, best: set[str], best_with_stale: set[str]
) -> dict:
    rank = row["rank_value"]
    error = None
    if record.error is not None:
        error = {
            "type": record.error.type,
            "message": record.error.message,
            "traceback": record.error.traceback,
        }
    key = f"{record.grid}/{record.run_id}"
    return {
        "key": key,
        "grid": record.grid,
        "id": record.run_id,
        "name": record.name or record.run_id,
        "status": record.status,
        "notebook": record.notebook or "",
        "rank": None if pd.isna(rank) else float(rank),
        "best": key in best,
        "best_with_stale": key in best_with_stale,  # the best when stale runs are ranked too
        "stale": row.get("stale") in (True, 1),  # an older version of the notebook's code
        "synthetic": record.synthetic,
        "params": {name: param_text(value) for name, value in record.params.items()},
        "metrics": {
            name: metric_value(value)
            for name, value in {
                **record.metrics,
                **shown_summaries(record.epoch_metrics, row.get("rank_metric")),
            }.items()
        },
        "thumbnail": thumbnail_link(ws, record),
        "duration": record.duration_s,
        **run_hardware(record),
        "started": record.started_at.strftime("%Y-%m-%d %H:%M:%S") if record.started_at else "",
        "error": error,
        # a pruned run: where the pruner stopped it (None for other runs)
        "pruned": {
            "epoch": record.pruned_at_epoch,
            "rung": record.rung,
            "text": pruned_text(record.pruned_at_epoch, record.rung),
        }
        if record.status == "pruned"
        else None,
        "links": run_links(ws, record),
        "curves": load_curves(ws.run_dir(record.grid, record.run_id) / HISTORY_FILE),
    }


def _grid_entry(
    grid: str,
    group: pd.DataFrame,
    runs: list[dict],
    ws: Workspace,
    records: list[RunRecord],
    space: GridSpace | None,
) -> dict:
    metric = group["rank_metric"].iloc[0]
    metric = metric if isinstance(metric, str) and metric else None
    mode = group["rank_mode"].iloc[0] if metric else None
    search = search_entry(records, {run["key"]: run["rank"] for run in runs}, space, mode, metric)
    scales = search["scales"] if search else {}
    best = [run["key"] for run in runs if run["best"]]
    best_with_stale = [run["key"] for run in runs if run["best_with_stale"]]
    figures = [
        [name, href("..", ws.figs.name, grid, name)]
        for name in GRID_FIGURES
        if (ws.grid_figs(grid) / name).is_file()
    ]
    return {
        "name": grid,
        "notebook": runs[0]["notebook"],
        "metric": metric,
        "mode": mode,
        "runs": len(runs),
        "ok": sum(run["status"] == "ok" for run in runs),
        "bad": sum(run["status"] in ("failed", "timeout") for run in runs),
        "pruned": sum(run["status"] == "pruned" for run in runs),  # results, not failures
        "best": best[0] if best else None,
        "best_with_stale": best_with_stale[0] if best_with_stale else None,
        "stale": sum(run["stale"] for run in runs),
        "synthetic": sum(run["synthetic"] for run in runs),
        "figures": figures,
        "view": column_view(runs, exclude_metrics=[metric] if metric else []),
        "seed_groups": seed_group_entries(group[~flag(group, "stale")], runs),
        # the rank-against-parameter chart the page draws (plots.py draws the same one)
        "rank_chart": rank_chart(runs, scales=scales),
        "rank_chart_with_stale": rank_chart(runs, True, scales)
        if any(r["stale"] for r in runs)
        else None,
        # a searched or pruned grid: best so far by trials and epochs, importance (None: plain)
        "search": search,
    }


def seed_group_entries(group: pd.DataFrame, runs: list[dict]) -> list[dict[str, Any]]:
    """A grid's combinations aggregated over seeds (see `seed_groups`), for the page; empty
    unless some combination ran with more than one seed. Stale runs are left out by the caller."""
    if group.empty or "params.seed" not in group.columns:
        return []
    groups = group_by_seed(group)
    if groups.empty or groups["seeds_total"].max() < 2:
        return []
    names = {run["id"]: run["name"] for run in runs}
    grid = str(group["grid"].iloc[0])
    keys = [c.removesuffix(".mean") for c in groups.columns if c.endswith(".mean")]
    entries = []
    for _, row in groups.iterrows():
        params = {
            c.removeprefix("params."): param_text(row[c])
            for c in groups.columns
            if c.startswith("params.") and not _missing(row[c])
        }
        entries.append(
            {
                "params": params,
                "finished": int(row["seeds_finished"]),
                "total": int(row["seeds_total"]),
                "seeds": [
                    {
                        "seed": seed,
                        "key": f"{grid}/{run_id}",
                        "name": names.get(run_id, run_id),
                        "status": status,
                    }
                    for seed, run_id, status in zip(
                        row["seeds"], row["run_ids"], row["statuses"], strict=True
                    )
                ],  # fmt: skip
                "mean": metric_value(row["rank_mean"]),
                "std": metric_value(row["rank_std"]),
                "ci": [metric_value(row["rank_ci_low"]), metric_value(row["rank_ci_high"])],
                "vs_best": row["vs_best"] if isinstance(row["vs_best"], str) else None,
                "synthetic": bool(row["synthetic"]),
                "metrics": {
                    key: [metric_value(row[f"{key}.mean"]), metric_value(row[f"{key}.std"])]
                    for key in keys
                },
            }
        )
    return entries


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def workspace_spaces(ws: Workspace) -> dict[str, GridSpace | None]:
    """The space of each grid the workspace's store registered (none without a store)."""
    if not ws.leaderboard_db.is_file():
        return {}
    return grid_spaces(LeaderboardStore(ws.leaderboard_db).grids(), ws.root)


def build_page_data(
    frame: pd.DataFrame,
    records: Iterable[RunRecord],
    ws: Workspace,
    spaces: dict[str, GridSpace | None] | None = None,
) -> dict[str, Any]:
    """Everything the page shows: `runs` in leaderboard order, `grids`, the all-grids `view`.
    `spaces`: each grid's space (`search_view.grid_spaces`), read from `ws`'s store when None."""
    records = list(records)
    if spaces is None:
        spaces = workspace_spaces(ws)
    by_key = {(r.grid, r.run_id): r for r in records}
    best, best_with_stale = best_keys(frame), best_keys(frame, include_stale=True)
    runs: list[dict] = []
    grids: dict[str, dict] = {}
    if not frame.empty:
        ordered = leaderboard_order(frame)
        for _, row in ordered.iterrows():
            record = by_key[(str(row["grid"]), str(row["run_id"]))]
            runs.append(_run_entry(row, record, ws, best, best_with_stale))
        run_ids: dict[str, list[str]] = {}
        for run in runs:
            run_ids.setdefault(run["id"], []).append(run["grid"])
        for run in runs:
            run["parent"] = resolve_parent(run["params"], run["grid"], run_ids)
        for grid, group in ordered.groupby("grid", sort=True):
            members = [run for run in runs if run["grid"] == grid]
            grids[str(grid)] = _grid_entry(
                str(grid),
                group,
                members,
                ws,
                [r for r in records if r.grid == grid],
                spaces.get(str(grid)),
            )
    return {
        "runs": runs,
        "grids": grids,
        "view": column_view(runs),
        "statuses": sorted({run["status"] for run in runs}),
    }


def to_script_json(data: Any) -> str:
    """JSON that is safe inside `<script type="application/json">`: no `<`, `>` or `&` that could
    close the element or open a comment, and no line separators; NaN is refused."""
    text = json.dumps(data, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    for char, escape in (
        ("&", "\\u0026"),
        ("<", "\\u003c"),
        (">", "\\u003e"),
        ("\u2028", "\\u2028"),
        ("\u2029", "\\u2029"),
    ):
        text = text.replace(char, escape)
    return text
