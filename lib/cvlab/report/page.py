"""The leaderboard page, `experiments/index.html`: every run of every grid, to browse and compare.

Python renders the whole table (it reads, links and prints without JavaScript); `assets/page.js`,
inlined with `assets/page.css`, adds the grid selector, sorting, filters, search, run comparison
and the per-grid charts from the page data embedded as JSON. Nothing is fetched: the page works
from `file://` and behind `python -m http.server` alike, with no network.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from datetime import UTC, datetime
from functools import cache
from importlib.resources import files
from pathlib import Path
from typing import Any

import pandas as pd

from cvlab.atomic_io import write_text_atomic
from cvlab.errors import PageAssetError
from cvlab.report.live_data import LIVE_SCRIPT, write_live
from cvlab.report.page_data import build_page_data, href, metric_text, to_script_json
from cvlab.report.search_view import GridSpace
from cvlab.report.store import LeaderboardStore
from cvlab.runs.record import RunRecord
from cvlab.workspace import Workspace

# Columns around the parameter and metric columns: (key, header). page.js moves and hides
# columns by these keys; parameters are `p:<name>`, metrics `m:<name>`.
LEAD_COLUMNS = [
    ("pick", ""),
    ("best", "best"),
    ("run", "run"),
    ("status", "status"),
    ("rank", "rank value"),
    ("grid", "grid"),
]
TAIL_COLUMNS = [
    ("duration", "duration (s)"),
    ("hardware", "backend · device · precision"),
    ("date", "started (UTC)"),
    ("notebook", "notebook"),
    ("files", "files"),
    ("id", "run id"),
]


@cache
def asset(name: str) -> str:
    """The text of `cvlab/report/assets/<name>`, checked to be safe to inline in `<script>`."""
    try:
        text = (files("cvlab.report") / "assets" / name).read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise PageAssetError(
            f"cvlab/report/assets/{name} is missing from the installed package; reinstall cvlab "
            "(pip install -e .) so that its package data is included"
        ) from exc
    if "</script" in text.lower() or "</style" in text.lower():
        raise PageAssetError(f"assets/{name} contains a closing tag and cannot be inlined")
    return text


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _link(url: str, label: str, **attrs: str) -> str:
    extra = "".join(f' {name.rstrip("_").replace("_", "-")}="{_e(v)}"' for name, v in attrs.items())
    return f'<a href="{_e(url)}"{extra}>{_e(label)}</a>'


def _row_anchor(key: str) -> str:
    return "#run-" + href(*key.split("/"))


def _status_cell(run: dict[str, Any]) -> str:
    status = run["status"]
    cell = f'<span class="status s-{_e(status)}">{_e(status)}</span>'
    pruned = run.get("pruned")
    if pruned:
        cell += (
            f' <span class="pruned-at" title="cut early by the grid\'s pruner: a result, not a '
            f'failure">{_e(pruned["text"])}</span>'
        )
    error = run["error"]
    if error:
        summary = f"{error['type']}: {error['message']}"
        cell += (
            f"<details><summary>{_e(summary[:160])}</summary>"
            f"<pre>{_e(error['traceback'] or summary)}</pre></details>"
        )
    return cell


def _files_cell(run: dict[str, Any]) -> str:
    links = run["links"]
    parts = [_link(links[name], name) for name in ("notebook", "ipynb", "curves") if name in links]
    parts += [_link(url, "model", title=label) for label, url in links.get("models", [])]
    if "log" in links:
        parts.append(_link(links["log"], "log"))
    parent = run["parent"]
    if parent and parent["key"]:
        parts.append(
            _link(
                _row_anchor(parent["key"]),
                "parent",
                class_="parent-link",
                data_key=parent["key"],
                title=f"{parent['param']}={parent['ref']}",
            )
        )
    elif parent:
        parts.append(
            f'<span class="missing" title="{_e(parent["param"])}={_e(parent["ref"])}: '
            f'not on this leaderboard">parent?</span>'
        )
    return " · ".join(parts)


STALE_TITLE = (
    "ran an older version of its notebook's code: kept and comparable, not ranked against the "
    "current runs (tick 'include stale runs' to rank it)"
)
SYNTHETIC_TITLE = "ran on synthetic data: ranked only among synthetic runs, never against real ones"


def _badges(run: dict[str, Any]) -> str:
    """`stale` and `synthetic` marks beside a run's name."""
    badges = ""
    if run.get("stale"):
        badges += f' <span class="badge stale" title="{_e(STALE_TITLE)}">stale</span>'
    if run.get("synthetic"):
        badges += f' <span class="badge synthetic" title="{_e(SYNTHETIC_TITLE)}">synthetic</span>'
    return badges


def _cells(run: dict[str, Any], params: list[str], metrics: list[str]) -> dict[str, str]:
    """Each column's cell content for one run, keyed like the header."""
    name = _e(run["name"])
    notebook = run["links"].get("notebook")
    cells = {
        "pick": f'<input type="checkbox" class="pick" aria-label="compare {name}">',
        "best": '<span class="star" title="best run of its grid">★ best</span>'
        if run["best"]
        else "",
        "run": _thumbnail(run)
        + (_link(notebook, run["name"], title=run["id"]) if notebook else name)
        + _badges(run),
        "status": _status_cell(run),
        "rank": metric_text(run["rank"]),
        "grid": _e(run["grid"]),
        "duration": "" if run["duration"] is None else f"{run['duration']:.1f}",
        "hardware": _e(run["hardware"]),
        "date": _e(run["started"]),
        "notebook": _e(run["notebook"]),
        "files": _files_cell(run),
        "id": f"<code>{_e(run['id'])}</code>",
    }
    for param in params:
        cells[f"p:{param}"] = _e(run["params"].get(param, ""))
    for metric in metrics:
        cells[f"m:{metric}"] = _e(metric_text(run["metrics"].get(metric)))
    return cells


def _thumbnail(run: dict[str, Any]) -> str:
    """The run's picture (a generated image, a detection), small, linking to the full size."""
    url = run.get("thumbnail")
    if not url:
        return ""
    return (
        f'<a href="{_e(url)}" class="thumb"><img src="{_e(url)}" alt="{_e(run["name"])} output" '
        'loading="lazy"></a>'
    )


def _mean_std(mean: Any, std: Any) -> str:
    if mean is None:
        return ""
    return metric_text(mean) + ("" if std is None else f" ± {metric_text(std)}")


VERDICT_TITLES = {
    "best": "the best mean of this grid",
    "not significant": "its 95% interval overlaps the best's: not a significant difference",
    "worse": "its 95% interval lies apart from the best's",
    "one seed": "one finished seed: no interval to compare",
    "synthetic": "run on synthetic data: not compared with the grid's real combinations",
}


def _seed_groups_table(name: str, grid: dict[str, Any]) -> str:
    """One row per combination of a grid run with several seeds: mean ± std over finished seeds,
    the seeds finished, the seed runs one click away, and the verdict against the best mean."""
    entries = grid["seed_groups"]
    params = list(dict.fromkeys(p for entry in entries for p in entry["params"]))
    params = [p for p in params if len({e["params"].get(p) for e in entries}) > 1] or params
    metrics = [m for m in entries[0]["metrics"] if m != grid["metric"]]
    head = "".join(
        f"<th>{_e(label)}</th>"
        for label in [*params, f"{grid['metric']} mean ± std", "95% interval", "vs best",
                      "seeds finished", "seed runs", *metrics]
    )  # fmt: skip
    rows = []
    for entry in entries:
        verdict = entry["vs_best"] or ""
        low, high = entry["ci"]
        seeds = " ".join(
            _link(_row_anchor(seed["key"]), str(seed["seed"]), class_="parent-link",
                  data_key=seed["key"], title=f"{seed['name']} ({seed['status']})")
            for seed in entry["seeds"]
        )  # fmt: skip
        cells = [
            *(_e(entry["params"].get(p, "")) for p in params),
            f"<b>{_e(_mean_std(entry['mean'], entry['std']))}</b>",
            "" if low is None else f"{metric_text(low)} – {metric_text(high)}",
            f'<span class="verdict v-{_e(verdict.replace(" ", "-"))}" '
            f'title="{_e(VERDICT_TITLES.get(verdict, ""))}">{_e(verdict)}</span>',
            f"{entry['finished']} of {entry['total']}",
            seeds,
            *(_e(_mean_std(*entry["metrics"][m])) for m in metrics),
        ]
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    return (
        f'<section class="seed-groups" data-grid="{_e(name)}"><h3>{_e(name)}: over seeds</h3>'
        '<p class="meta">One row per combination, best mean first. Means and sample standard '
        "deviations over the finished seeds; the 95% interval is Student's t for the mean, and a "
        "combination whose interval overlaps the best's is marked not significant.</p>"
        f'<div class="table-wrap"><table class="seeds"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div></section>"
    )


def _th(key: str, label: str) -> str:
    """A header cell; parameter and metric columns are marked so they read apart."""
    kind = {"p:": "param", "m:": "metric"}.get(key[:2], "")
    title = f"{'parameter' if kind == 'param' else 'metric'} {label}" if kind else label
    return f'<th data-col="{_e(key)}" class="{kind}" title="{_e(title)}">{_e(label)}</th>'


def _runs_table(data: dict[str, Any]) -> str:
    view = data["view"]
    params = [*view["varied"], *view["constant"]]
    metrics = view["metrics"]
    head = [
        *LEAD_COLUMNS,
        *((f"p:{p}", p) for p in view["varied"]),
        *((f"m:{m}", m) for m in metrics),
        *TAIL_COLUMNS,
        *((f"p:{p}", p) for p in view["constant"]),
    ]
    ths = "".join(_th(key, label) for key, label in head)
    body = []
    for run in data["runs"]:
        cells = _cells(run, params, metrics)
        tds = "".join(f'<td data-col="{_e(key)}">{cells[key]}</td>' for key, _ in head)
        classes = " ".join(name for name in ("best", "stale", "synthetic") if run.get(name))
        body.append(
            f'<tr id="run-{_e(run["key"])}" data-key="{_e(run["key"])}" class="{classes}">'
            f"{tds}</tr>"
        )
    return (
        f'<div class="table-wrap"><table id="runs"><thead><tr>{ths}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>"
    )


def _grids_table(data: dict[str, Any]) -> str:
    rows = []
    for name, grid in data["grids"].items():
        best = next((run for run in data["runs"] if run["key"] == grid["best"]), None)
        rank_by = f"{grid['metric']} ({grid['mode']})" if grid["metric"] else "not ranked"
        figures = " · ".join(
            _link(url, label.removesuffix(".png")) for label, url in grid["figures"]
        )
        rows.append(
            "<tr>"
            f"<td>{_link('#grid=' + href(name), name, class_='grid-link', data_grid=name)}</td>"
            f"<td>{_e(grid['notebook'])}</td><td>{grid['runs']}</td><td>{grid['ok']}</td>"
            f"<td>{grid['bad']}</td><td>{grid['pruned']}</td><td>{_e(rank_by)}</td>"
            f"<td>{_link(_row_anchor(best['key']), best['name'], class_='parent-link', data_key=best['key']) + _badges(best) if best else ''}</td>"
            f"<td>{_e(metric_text(best['rank'])) if best else ''}</td><td>{figures}</td></tr>"
        )
    return (
        '<table class="summary"><thead><tr><th>grid</th><th>notebook</th><th>runs</th><th>ok</th>'
        "<th>failed / timeout</th><th>pruned</th><th>rank by</th><th>best run</th><th>best value</th>"
        f"<th>figures</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _seed_sections(data: dict[str, Any]) -> str:
    tables = [
        _seed_groups_table(name, grid)
        for name, grid in data["grids"].items()
        if grid["seed_groups"]
    ]
    return f'<div id="seed-groups"><h2>Over seeds</h2>{"".join(tables)}</div>' if tables else ""


def _importance_block(search: dict[str, Any]) -> str:
    """Each parameter's importance as bars (a table, readable without the script), or why not."""
    found = search["importance"]
    if "note" in found:
        return f'<p class="meta importance-note">{_e(found["note"])}</p>'
    rows = "".join(
        f'<tr data-param="{_e(param)}"><th>{_e(param)}</th><td><span class="bar" '
        f'style="width:{max(0.0, min(1.0, value)) * 12:.2f}rem"></span></td>'
        f"<td>{value:.3f}</td></tr>"
        for param, value in found["params"]
    )
    return (
        f'<h4>Parameter importance</h4><table class="importance"><tbody>{rows}</tbody></table>'
        f'<p class="meta">{_e(found["evaluator"])} (Optuna) over {found["trials"]} complete '
        "trials: the share of the rank metric's variance each parameter explains.</p>"
    )


def _search_table(name: str, grid: dict[str, Any]) -> str:
    """A searched or pruned grid: what it ran, its best value so far by trial and by epochs
    spent (the table behind the page's charts and `search.png`), its parameters' importance."""
    search = grid["search"]
    metric = grid["metric"] or "rank value"
    parts = [f"{len(search['trials'])} trials", f"{search['complete']} complete"]
    parts += [f"{search['pruned']} pruned", f"{search['failed']} failed / timeout"]
    parts.append(f"{search['epochs']} epochs spent")
    summary = " · ".join(parts)
    best = search["best_at"]
    if best:
        summary += (
            f" · best {metric} {metric_text(search['best'])} reached at trial {best['trial']} "
            f"after {best['spent']} epochs"
        )
    head = "".join(
        f"<th>{_e(label)}</th>"
        for label in ("trial", "run", "status", metric, "epochs", "epochs spent", "best so far")
    )
    rows = []
    for trial in search["trials"]:
        cells = [
            str(trial["trial"]),
            _link(_row_anchor(trial["key"]), trial["name"], class_="parent-link",
                  data_key=trial["key"]),
            f'<span class="status s-{_e(trial["status"])}">{_e(trial["status"])}</span>',
            _e(metric_text(trial["value"])),
            str(trial["epochs"]),
            str(trial["spent"]),
            _e(metric_text(trial["best"])),
        ]  # fmt: skip
        rows.append("<tr>" + "".join(f"<td>{cell}</td>" for cell in cells) + "</tr>")
    notes = []
    if search["how"]:
        notes.append(search["how"])
    if search["study"]:
        notes.append(f"Optuna study {search['study']} in logs/optuna.db")
    if search["left_out"]:
        notes.append(f"{search['left_out']} runs of earlier studies of this grid left out")
    if search["note"]:
        notes.append(search["note"])
    return (
        f'<section class="search" data-grid="{_e(name)}"><h3>{_e(name)}: search</h3>'
        f'<p class="meta">{_e(" · ".join(notes))}</p><p>{_e(summary)}</p>'
        f"{_dashboard(search)}"
        f"{_importance_block(search)}"
        f"<details><summary>best {_e(metric)} so far, trial by trial</summary>"
        f'<div class="table-wrap"><table class="trials"><thead><tr>{head}</tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div></details></section>"
    )


def _dashboard(search: dict[str, Any]) -> str:
    if not search.get("dashboard"):
        return ""
    return (
        f'<p class="meta">Open the study in Optuna\'s dashboard, from the output folder: '
        f'<code class="dashboard">{_e(search["dashboard"])}</code></p>'
    )


def _search_sections(data: dict[str, Any]) -> str:
    tables = [_search_table(name, grid) for name, grid in data["grids"].items() if grid["search"]]
    return f'<div id="searches"><h2>Searches</h2>{"".join(tables)}</div>' if tables else ""


LIVE_PANEL = (
    '<section id="live" class="panel" hidden><h2>Running now</h2>'
    '<p class="meta live-meta"></p><div class="table-wrap"><table class="live-runs"><thead><tr>'
    "<th>run</th><th>grid</th><th>status</th><th>epoch</th><th>latest</th><th>s/epoch</th>"
    "<th>estimated end</th><th>curve</th></tr></thead><tbody></tbody></table></div></section>"
)


def _live_scripts() -> str:
    """The live panel's script, and the live data beside the page (`live.js`, written by the
    grid driver at each epoch's end; a page from file:// loads it, a served page polls
    `live.json`). Loaded last: without it the page is complete as generated."""
    return f'<script src="{LIVE_SCRIPT}"></script><script>{asset("page_live.js")}</script>'


def render_page(data: dict[str, Any], generated: str, generated_iso: str = "") -> str:
    """The whole page as one HTML string: table, summary, data, style and script inlined."""
    runs = data["runs"]
    if runs:
        body = (
            f"{LIVE_PANEL}<h2>Grids</h2>{_grids_table(data)}"
            '<h2>Runs</h2><div id="controls" class="controls"><noscript>Sorting, filters and '
            "comparison need JavaScript; the table below is complete without it.</noscript></div>"
            '<p id="constants" class="meta" hidden></p>'
            '<section id="compare" class="panel" hidden></section>'
            '<section id="grid-panel" class="panel" hidden></section>'
            f"{_seed_sections(data)}"
            f"{_search_sections(data)}"
            f"{_runs_table(data)}"
            f'<script type="application/json" id="cvlab-data">{to_script_json(data)}</script>'
            f"<script>{asset('page.js')}</script>"
        )
    else:
        body = (
            '<p id="no-runs">No runs yet. Run a grid: '
            "<code>python run_grid.py grids/quickstart.yaml</code></p>"
            f"{LIVE_PANEL}"
        )
    return (
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
        "<meta name='viewport' content='width=device-width, initial-scale=1'>"
        "<link rel='icon' href='data:,'><title>cvlab leaderboard</title>"
        f"<style>{asset('page.css')}</style></head><body data-generated='{_e(generated_iso)}'>"
        f"<header><h1>cvlab leaderboard</h1><p class='meta'>{len(runs)} runs in "
        f"{len(data['grids'])} grids · generated {_e(generated)} · the same rows are in "
        "<code>logs/leaderboard.csv</code></p></header>"
        f"{body}{_live_scripts()}</body></html>"
    )


def write_leaderboard_page(
    frame: pd.DataFrame,
    records: Iterable[RunRecord],
    ws: Workspace,
    spaces: dict[str, GridSpace | None] | None = None,
) -> Path:
    """Render `experiments/index.html` from the store's frame and run records (`spaces`: the
    grids' search spaces, read from `ws`'s store when None)."""
    data = build_page_data(frame, records, ws, spaces)
    now = datetime.now(UTC)
    generated = now.strftime("%Y-%m-%d %H:%M UTC")
    page = write_text_atomic(
        ws.leaderboard_page, render_page(data, generated, now.isoformat(timespec="seconds"))
    )
    # Each rebuild is a "next call" for the live data too: runs of a driver that died turn
    # `interrupted` there, and the live.js the page loads exists.
    write_live(ws)
    return page


def ensure_leaderboard_page(ws: Workspace) -> Path:
    """`experiments/index.html`, written from the store when there is none yet (a grid's
    first call), so the live page can be opened while the grid runs."""
    if ws.leaderboard_page.is_file():
        return ws.leaderboard_page
    store = LeaderboardStore(ws.leaderboard_db)
    return write_leaderboard_page(store.frame(), store.records(), ws)
