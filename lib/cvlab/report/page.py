"""The leaderboard page, `experiments/index.html`: every run, sortable and searchable offline.

The table is an ITables/DataTables table whose JavaScript bundle is inlined from the installed
`itables` package, so the page works from `file://` with no network and no server.
"""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import pandas as pd

from cvlab.atomic_io import write_text_atomic
from cvlab.report.ranking import best_run_ids, varied_params
from cvlab.runs.record import CURVES_FILE, HTML_FILE, NOTEBOOK_FILE
from cvlab.workspace import Workspace

STATUS_COLOURS = {
    "ok": "#1a7f37",
    "diverged": "#9a6700",
    "failed": "#cf222e",
    "timeout": "#bc4c00",
    "interrupted": "#8250df",
    "running": "#0969da",
    "pending": "#57606a",
}

_CSS = """
body { font-family: system-ui, -apple-system, Segoe UI, sans-serif; margin: 1.5rem; color: #1f2328; font-size: .9rem; }
table.dataTable td { white-space: nowrap; }
h1 { font-size: 1.4rem; margin-bottom: .2rem; } h2 { font-size: 1.1rem; margin-top: 1.6rem; }
.meta { color: #57606a; font-size: .85rem; }
table.summary { border-collapse: collapse; font-size: .9rem; }
table.summary td, table.summary th { border: 1px solid #d0d7de; padding: .25rem .6rem; text-align: left; }
.status { font-weight: 600; } .best { color: #9a6700; font-weight: 700; }
tr.best-run td { background: #fff8c5 !important; }
details pre { white-space: pre-wrap; font-size: .75rem; max-width: 60rem; }
.figs img { max-width: 48%; border: 1px solid #d0d7de; margin: .3rem; }
"""


def _href(*segments: str) -> str:
    """A relative URL from path segments, each percent-encoded (`#`, `?`, spaces in names)."""
    return "/".join(quote(segment) for segment in segments)


def _link(href: str, label: str) -> str:
    return f'<a href="{html.escape(href, quote=True)}">{html.escape(label)}</a>'


def _fmt(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def _run_links(ws: Workspace, grid: str, run_id: str) -> str:
    """Links to the run's files that exist, relative to `experiments/index.html`."""
    run_dir = ws.run_dir(grid, run_id)
    links = [
        _link(_href(grid, run_id, name), label)
        for name, label in (
            (HTML_FILE, "notebook"),
            (NOTEBOOK_FILE, "ipynb"),
            (CURVES_FILE, "curves"),
        )
        if (run_dir / name).exists()
    ]
    return " · ".join(links)


def _status_cell(row: pd.Series) -> str:
    status = str(row["status"])
    colour = STATUS_COLOURS.get(status, "#57606a")
    cell = f'<span class="status" style="color:{colour}">{html.escape(status)}</span>'
    if isinstance(row.get("error_type"), str):
        summary = html.escape(f"{row['error_type']}: {row.get('error_message') or ''}"[:160])
        tb = html.escape(str(row.get("error_traceback") or ""))
        cell += f"<details><summary>{summary}</summary><pre>{tb}</pre></details>"
    return cell


def leaderboard_table(frame: pd.DataFrame, ws: Workspace) -> pd.DataFrame:
    """The displayed table: one row per run, HTML cells, parameters and metrics as columns."""
    best = best_run_ids(frame)
    rows = []
    param_cols = [c for c in frame.columns if c.startswith("params.")]
    metric_cols = [c for c in frame.columns if c.startswith("metrics.")]
    for _, row in frame.iterrows():
        run_id, grid = str(row["run_id"]), str(row["grid"])
        out = {
            "best": '<span class="best">★ best</span>' if run_id in best else "",
            "grid": html.escape(grid),
            "run": _link(_href(grid, run_id, HTML_FILE), str(row["name"]))
            if (ws.run_dir(grid, run_id) / HTML_FILE).exists()
            else html.escape(str(row["name"])),
            "status": _status_cell(row),
            "rank metric": html.escape(str(row.get("rank_metric") or "")),
            "rank value": row["rank_value"],
        }
        for col in param_cols:
            name = col.removeprefix("params.")
            out[name if name not in out else f"param {name}"] = _fmt(row[col])
        for col in metric_cols:
            name = col.removeprefix("metrics.")
            value = row[col]
            out[name if name not in out else f"metric {name}"] = (
                value
                if isinstance(value, int | float) and not isinstance(value, bool)
                else _fmt(value)
            )
        started = row.get("started_at")
        out["duration (s)"] = row["duration_s"]
        out["date"] = str(started)[:19].replace("T", " ") if isinstance(started, str) else ""
        out["notebook"] = html.escape(str(row.get("notebook") or ""))
        out["files"] = _run_links(ws, grid, run_id)
        out["run id"] = run_id
        rows.append(out)
    return pd.DataFrame(rows)


def _grid_summary(frame: pd.DataFrame, ws: Workspace) -> str:
    best = best_run_ids(frame)
    parts = [
        "<table class='summary'><tr><th>grid</th><th>notebook</th><th>runs</th><th>ok</th>"
        "<th>failed / timeout</th><th>rank by</th><th>best run</th><th>best value</th></tr>"
    ]
    figures = []
    for grid, group in frame.groupby("grid", sort=True):
        winner = group[group["run_id"].isin(best)]
        mode = group["rank_mode"].iloc[0]
        metric = group["rank_metric"].iloc[0]
        bad = int(group["status"].isin(["failed", "timeout"]).sum())
        parts.append(
            "<tr>"
            f"<td>{html.escape(str(grid))}</td><td>{html.escape(str(group['notebook'].iloc[0]))}</td>"
            f"<td>{len(group)}</td><td>{int((group['status'] == 'ok').sum())}</td><td>{bad}</td>"
            f"<td>{html.escape(f'{metric} ({mode})')}</td>"
            f"<td>{html.escape(str(winner['name'].iloc[0])) if len(winner) else ''}</td>"
            f"<td>{_fmt(winner['rank_value'].iloc[0]) if len(winner) else ''}</td></tr>"
        )
        imgs = [
            f'<img src="{html.escape(_href("..", "figs", str(grid), name))}" '
            f'alt="{name} for {html.escape(str(grid))}">'
            for name in ("rank_vs_params.png", "validation_curves.png")
            if (ws.grid_figs(str(grid)) / name).exists()
        ]
        if imgs:
            figures.append(
                f"<details class='figs'><summary>{html.escape(str(grid))}: "
                f"{html.escape(str(metric))} against each varied parameter, and validation curves"
                f"</summary>{''.join(imgs)}</details>"
            )
    parts.append("</table>")
    return "".join(parts) + "".join(figures)


def write_leaderboard_page(frame: pd.DataFrame, ws: Workspace) -> Path:
    """Render `experiments/index.html` from the store's frame."""
    import itables
    from itables import JavascriptFunction, to_html_datatable
    from itables.javascript import generate_init_offline_itables_html

    table = leaderboard_table(frame, ws)
    generated = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    if table.empty:
        body = (
            "<p>No runs yet. Run a grid: <code>python run_grid.py grids/quickstart.yaml</code></p>"
        )
        init = ""
    else:
        bundle = Path(itables.__file__).parent / "html" / "dt_bundle.js"
        init = generate_init_offline_itables_html(bundle)
        body = to_html_datatable(
            table,
            table_id="leaderboard",
            connected=False,
            allow_html=True,
            showIndex=False,
            maxBytes=0,
            classes="display compact cell-border",
            column_filters="header",
            pageLength=50,
            layout={
                # not itables' default layout, which hides the controls of one-page tables
                "topStart": "search",
                "topEnd": "pageLength",
                "bottomStart": "info",
                "bottomEnd": "paging",
            },
            lengthMenu=[10, 25, 50, 100, 500],
            order=[],
            warn_on_undocumented_option=False,
            createdRow=JavascriptFunction(
                "function (row, data) { if (String(data[0]).includes('★')) "
                "{ row.classList.add('best-run'); } }"
            ),
        )
        grid_varied = {
            g: [c.removeprefix("params.") for c in varied_params(group)]
            for g, group in frame.groupby("grid")
        }
        varied_text = "; ".join(f"{g}: {', '.join(v) or 'none'}" for g, v in grid_varied.items())
        body = (
            f"<h2>Grids</h2>{_grid_summary(frame, ws)}"
            f"<h2>All runs</h2><p class='meta'>Sort by clicking a header, filter with the boxes "
            f"under the headers, search all columns with the box above the table. Varied parameters: "
            f"{html.escape(varied_text)}"
            f"</p>{body}"
        )
    page = (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<title>cvlab leaderboard</title>"
        f"<style>{_CSS}</style></head><body>{init}"
        f"<h1>cvlab leaderboard</h1><p class='meta'>{len(frame)} runs · generated {generated} · "
        "the same rows are in <code>logs/leaderboard.csv</code></p>"
        f"{body}</body></html>"
    )
    return write_text_atomic(ws.leaderboard_page, page)
