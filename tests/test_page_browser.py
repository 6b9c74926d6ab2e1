"""The leaderboard page in a real browser: headless Chromium (Debian's, never a downloaded one)
driven by Playwright. A small grid builds the page; the tests then sort, filter, search, follow
links and compare runs as a user would, from `file://` and from `python -m http.server`.

Without Playwright or /usr/bin/chromium these tests skip locally, and fail when CI=true:
`.ci/install-browser.sh` installs Chromium, `pip install -e '.[dev]'` installs Playwright.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cvlab.report.store import LeaderboardStore
from cvlab.workspace import Workspace

from conftest import LIGHT_CELLS, require_browser
from notebook_builder import write_notebook

REPO = Path(__file__).resolve().parents[1]
SCREENSHOTS = REPO / "logs" / "page-browser"  # kept by CI as artifacts
HOSTILE = "</script><script>window.pwned=1</script>"


def test_missing_browser_fails_on_ci_and_skips_elsewhere(monkeypatch, tmp_path):
    absent = tmp_path / "no-chromium"
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match="no-chromium is missing"):
        require_browser(absent)
    monkeypatch.delenv("CI")
    with pytest.raises(pytest.skip.Exception):
        require_browser(absent)


# ---- the leaderboard under test --------------------------------------------------------------


@pytest.fixture(scope="module")
def out(tmp_path_factory) -> Path:
    """Two grids run on the light notebook: `g` (three ok runs, one failed, one with a hostile
    parameter value) and `warm`, whose run names a run of `g` as its parent."""
    from cvlab.grid.cli import main

    root = tmp_path_factory.mktemp("leaderboard")
    write_notebook(LIGHT_CELLS, root / "light.ipynb")
    out = root / "out"

    def run(name: str, spec: dict) -> None:
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"notebook": "light.ipynb", "name": name, **spec}))
        main([str(path), "--out", str(out), "--quiet"])

    rank_by = {"metric": "score", "mode": "max"}
    run(
        "g",
        {
            "params": {"lr": 0.5},
            "grid": {"x": [1, 2, 3]},
            "runs": [{"x": 1, "mode": "fail"}, {"x": 2, "mode": HOSTILE}],
            "rank_by": rank_by,
        },
    )
    parent = runs_by_name(out)["g"]["x=3"]
    run(
        "warm",
        {
            "params": {"lr": 0.25, "mode": f"run:{parent.run_id}"},
            "grid": {"x": [2]},
            "rank_by": rank_by,
        },
    )
    return out


def runs_by_name(out: Path) -> dict:
    """{grid: {run name: record}} from the store."""
    found: dict = {}
    for record in LeaderboardStore(Workspace.at(out).leaderboard_db).records():
        found.setdefault(record.grid, {})[record.name] = record
    return found


@pytest.fixture(scope="module")
def server(out):
    """`python -m http.server` serving the output folder; yields its base URL."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-u",
            "-m",
            "http.server",
            "0",
            "--bind",
            "127.0.0.1",
            "--directory",
            str(out),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        line = proc.stdout.readline()  # "Serving HTTP on 127.0.0.1 port 40321 (http://...) ..."
        port = re.search(r"port (\d+)", line)
        assert port, f"http.server did not start: {line!r}"
        yield f"http://127.0.0.1:{port.group(1)}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


@pytest.fixture
def open_page(browser, out):
    """Open the leaderboard (or `url`); returns the page and the list its errors go to: console
    errors, uncaught exceptions, and any request that leaves the page's own origin."""
    opened = []

    def _open(url: str | None = None):
        url = url or Workspace.at(out).leaderboard_page.as_uri()
        origin = "file://" if url.startswith("file:") else "/".join(url.split("/")[:3]) + "/"
        page = browser.new_page()
        errors: list[str] = []
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on(
            "request",
            lambda req: (
                None
                if req.url.startswith((origin, "data:"))
                else errors.append(f"request outside the page: {req.url}")
            ),
        )
        page.goto(url)
        opened.append(page)
        return page, errors

    yield _open
    for page in opened:
        page.close()


def shown_keys(page) -> list[str]:
    return page.eval_on_selector_all(
        "#runs tbody tr:not([hidden])", "rows => rows.map(row => row.dataset.key)"
    )


def shown_column(page, col: str) -> list[str]:
    return page.eval_on_selector_all(
        f'#runs tbody tr:not([hidden]) td[data-col="{col}"]',
        "cells => cells.map(cell => cell.textContent.trim())",
    )


def key(record) -> str:
    return f"{record.grid}/{record.run_id}"


# ---- the tests -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("scheme", ["file", "http"])
def test_page_loads_cleanly(open_page, request, out, scheme):
    url = (
        f"{request.getfixturevalue('server')}/experiments/index.html" if scheme == "http" else None
    )
    page, errors = open_page(url)
    assert page.locator("#runs tbody tr").count() == 6
    assert page.locator("#grid-select").is_visible()  # the script ran
    assert page.inner_text("#shown-count") == "6 of 6 runs shown"
    hostile = runs_by_name(out)["g"][f"x=2,mode={HOSTILE}"]
    cell = page.locator(f'tr[data-key="{key(hostile)}"] td[data-col="p:mode"]')
    assert cell.text_content() == HOSTILE  # shown as text, never run
    assert page.evaluate("window.pwned") is None
    if scheme == "http":  # the run's files are reachable through the server too
        link = page.locator(
            f'tr[data-key="{key(hostile)}"] td[data-col="files"] a', has_text="curves"
        )
        assert page.request.get(f"{url.rsplit('/', 1)[0]}/{link.get_attribute('href')}").ok
    assert errors == []


@pytest.mark.slow
def test_sort_by_rank_metric(open_page, out):
    page, errors = open_page()
    page.select_option("#grid-select", "g")
    header = page.locator('#runs th[data-col="rank"]')
    assert header.inner_text() == "score (max)"
    scores = sorted(r.metrics["score"] for r in runs_by_name(out)["g"].values() if r.status == "ok")
    header.click()
    assert header.get_attribute("aria-sort") == "ascending"
    assert shown_column(page, "rank") == [f"{s:.4g}" for s in scores] + [""]  # failed run last
    header.click()
    assert header.get_attribute("aria-sort") == "descending"
    assert shown_column(page, "rank") == [f"{s:.4g}" for s in reversed(scores)] + [""]
    assert errors == []


@pytest.mark.slow
def test_filter_to_failed_runs(open_page, out):
    page, errors = open_page()
    page.uncheck('#status-filter input[value="ok"]')
    failed = [
        key(r) for runs in runs_by_name(out).values() for r in runs.values() if r.status == "failed"
    ]
    assert shown_keys(page) == failed and len(failed) == 1
    assert page.inner_text("#shown-count") == "1 of 6 runs shown"
    assert "ValueError" in page.inner_text(f'tr[data-key="{failed[0]}"] td[data-col="status"]')
    page.click("#reset-filters")
    assert len(shown_keys(page)) == 6 and errors == []


@pytest.mark.slow
def test_free_text_search(open_page, out):
    page, errors = open_page()
    runs = runs_by_name(out)
    page.fill("#search", "bad value")  # words of an error message
    assert shown_keys(page) == [key(runs["g"]["x=1,mode=fail"])]
    page.fill("#search", "X=3")  # parameter=value, any case
    assert shown_keys(page) == [key(runs["g"]["x=3"])]
    page.fill("#search", "warm 0.25")  # every word must match
    assert shown_keys(page) == [key(next(iter(runs["warm"].values())))]
    page.fill("#search", "")
    assert len(shown_keys(page)) == 6 and errors == []


@pytest.mark.slow
def test_grid_view_puts_varied_columns_first_and_draws_its_charts(open_page, out):
    page, errors = open_page()
    page.click('a.grid-link[data-grid="g"]')
    assert page.input_value("#grid-select") == "g"
    columns = page.eval_on_selector_all(
        "#runs thead th:not([hidden])", "cells => cells.map(c => c.dataset.col)"
    )
    assert columns[:7] == ["pick", "best", "run", "status", "rank", "p:x", "p:mode"]
    assert "p:lr" not in columns and "grid" not in columns  # constant in this grid
    assert "lr=0.5" in page.inner_text("#constants")
    page.click("#toggle-constant")
    assert page.locator('#runs th[data-col="p:lr"]').is_visible()
    # one small chart per varied parameter, one parallel-coordinates line per ranked run
    assert page.locator("#grid-panel figure.rank-by-param").count() == 2
    assert page.locator("#grid-panel path.pc-line").count() == 4
    page.select_option('#param-filters select[data-param="x"]', label="3")
    assert shown_keys(page) == [key(runs_by_name(out)["g"]["x=3"])]
    assert page.locator("#grid-panel path.pc-line").count() == 1
    page.locator("#grid-panel path.pc-line").dispatch_event("click")  # a line selects its run
    assert page.inner_text("#compare-button") == "Compare selected (1)"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "grid-view.png"), full_page=True)
    assert errors == []


@pytest.mark.slow
def test_run_link_opens_the_executed_notebook(open_page, out):
    page, errors = open_page()
    run = runs_by_name(out)["g"]["x=3"]
    page.click(f'tr[data-key="{key(run)}"] td[data-col="run"] a')
    page.wait_for_load_state()
    assert page.url.endswith(f"/g/{run.run_id}/run.html")
    assert "A light test notebook" in page.inner_text("body")
    assert errors == []


@pytest.mark.slow
def test_compare_two_runs(open_page, out):
    page, errors = open_page()
    runs = runs_by_name(out)
    picked = [runs["g"]["x=1"], next(iter(runs["warm"].values()))]
    for record in picked:
        page.check(f'tr[data-key="{key(record)}"] input.pick')
    page.click("#compare-button")
    table = page.locator("#compare-table")
    assert table.locator("thead th").count() == 3  # labels, then one column per run
    row = {
        label: table.locator("tbody tr", has=page.locator(f'th:text-is("{label}")'))
        for label in ("x", "lr", "parent")
    }
    assert row["x"].get_attribute("class") == "diff"  # 1 against 2
    assert row["lr"].get_attribute("class") == "diff"  # 0.5 against 0.25
    assert row["parent"].locator("td").all_text_contents() == ["", f"run:{runs['g']['x=3'].run_id}"]
    same = table.locator("tbody tr.same")
    assert same.count() >= 1  # e.g. status ok in both
    page.check("#only-differences")
    assert same.first.is_hidden()
    curves = page.locator("#compare-curves path.series")
    assert curves.count() == 4  # loss and val_loss of each run, overlaid
    assert (
        curves.evaluate_all("paths => new Set(paths.map(p => p.getAttribute('stroke'))).size") == 2
    )
    page.select_option("#curve-metric", "accuracy")
    assert curves.count() == 2  # no validation accuracy in the history
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "compare.png"), full_page=True)
    assert errors == []


@pytest.mark.slow
def test_parent_link_shows_the_parent_run(open_page, out):
    page, errors = open_page()
    runs = runs_by_name(out)
    child, parent = next(iter(runs["warm"].values())), runs["g"]["x=3"]
    page.select_option("#grid-select", "warm")
    assert shown_keys(page) == [key(child)]
    link = page.locator(f'tr[data-key="{key(child)}"] a.parent-link')
    assert link.get_attribute("title") == f"mode=run:{parent.run_id}"
    link.click()
    assert page.input_value("#grid-select") == ""  # back to all grids: the parent is in `g`
    parent_row = page.locator(f'tr[data-key="{key(parent)}"]')
    assert parent_row.is_visible() and "flash" in parent_row.get_attribute("class")
    assert errors == []


@pytest.mark.slow
def test_grid_link_in_the_url_and_selecting_all_shown_runs(open_page, out):
    page, errors = open_page(Workspace.at(out).leaderboard_page.as_uri() + "#grid=g")
    assert page.input_value("#grid-select") == "g"
    assert page.inner_text("#shown-count") == "5 of 5 runs shown"
    assert page.locator("#notebook-filter").is_hidden()  # one notebook per grid
    page.uncheck('#status-filter input[value="ok"]')
    page.check("#pick-all")  # selects only the runs shown: the failed one
    assert page.inner_text("#compare-button") == "Compare selected (1)"
    page.click("#reset-filters")
    assert len(shown_keys(page)) == 5 and not page.is_checked("#pick-all")
    page.check("#pick-all")
    assert page.inner_text("#compare-button") == "Compare selected (5)"
    page.select_option("#grid-select", "")
    assert page.locator("#notebook-filter").is_visible()
    assert len(page.locator("#runs tbody tr.picked").all()) == 5 and errors == []
