"""`cvlab report` / `run_grid.py --report`: a self-contained folder of a grid's results, with the
seed-aggregated view, error bars and thumbnails, checked in headless Chromium: nothing fetched
from outside the folder, no broken link."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

import pandas as pd
import pytest
import yaml

from cvlab.cli import main as cvlab_main
from cvlab.grid.cli import main as grid_main
from cvlab.report.store import LeaderboardStore
from cvlab.runs import RunRecord
from cvlab.workspace import Workspace

from conftest import LIGHT_CELLS
from notebook_builder import write_notebook

pytestmark = pytest.mark.slow  # grids run through papermill


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """Grid `seeds`: x in {1, 2} over seeds 0-2, and x=3 whose runs save a picture; grid
    `other`, which the report leaves out."""
    root = tmp_path_factory.mktemp("report")
    write_notebook(LIGHT_CELLS, root / "light.ipynb")
    out = root / "out"
    for name, spec in {
        "seeds": {
            "grid": {"x": [1, 2]},
            "runs": [{"x": 3, "mode": "image"}],
            "seeds": [0, 1, 2],
            "rank_by": {"metric": "score", "mode": "max"},
        },
        "other": {"grid": {"x": [5]}, "rank_by": {"metric": "score", "mode": "max"}},
    }.items():
        path = root / f"{name}.yaml"
        path.write_text(yaml.safe_dump({"notebook": "light.ipynb", "name": name, **spec}))
        assert grid_main([str(path), "--out", str(out), "--quiet"]) == 0
    return out


@pytest.fixture(scope="module")
def report(workspace, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("shared") / "report"
    assert cvlab_main(["report", "seeds", "--out", str(folder), "--from", str(workspace)]) == 0
    return folder


def test_report_holds_the_grid_and_nothing_else(report, workspace):
    ws = Workspace.at(report)
    records = LeaderboardStore(Workspace.at(workspace).leaderboard_db).records("seeds")
    assert len(records) == 9
    # the page, its live data (no run in progress in a report) and the grid's runs
    assert sorted(p.name for p in ws.experiments.iterdir()) == [
        "index.html", "live.js", "live.json", "seeds",
    ]  # fmt: skip
    for record in records:
        run_dir = ws.run_dir("seeds", record.run_id)
        assert (run_dir / "run.html").is_file() and (run_dir / "curves.png").is_file()
        assert RunRecord.load(run_dir).run_id == record.run_id
        assert not (run_dir / "run.ipynb").exists()
    pictures = list(ws.experiments.glob("seeds/*/images/pattern.png"))
    assert len(pictures) == 3
    # the workspace also keeps each run's images beside the grid's plots
    in_figs = sorted(
        p.name for p in (Workspace.at(workspace).grid_figs("seeds") / "images").iterdir()
    )
    assert in_figs == [f"x=3,mode=image,seed={s}-pattern.png" for s in (0, 1, 2)]
    csv = pd.read_csv(ws.leaderboard_csv)
    assert set(csv["grid"]) == {"seeds"} and len(csv) == 9
    assert "metrics.accuracy:best" in csv.columns
    assert (report / "index.html").read_text().count("experiments/index.html") == 2


def test_report_refuses_bad_requests(workspace, tmp_path, capsys):
    assert (
        cvlab_main(["report", "nope", "--out", str(tmp_path / "r"), "--from", str(workspace)]) == 2
    )
    err = capsys.readouterr().err
    assert "no grid 'nope'" in err and "(grids: other, seeds)" in err
    inside = workspace / "experiments" / "report"
    assert cvlab_main(["report", "--out", str(inside), "--from", str(workspace)]) == 2
    assert "would overwrite them" in capsys.readouterr().err
    assert not inside.exists()
    empty = tmp_path / "empty"
    assert cvlab_main(["report", "--out", str(tmp_path / "r"), "--from", str(empty)]) == 2
    assert "run a grid first" in capsys.readouterr().err


def _local_target(url: str, root: Path) -> Path | None:
    """The file a file:// URL points at, when it lies inside `root` (else None)."""
    parts = urlsplit(url)
    if parts.scheme != "file":
        return None
    path = Path(unquote(parts.path))
    return path if path == root or root in path.parents else None


def _open(browser, url: str, root: Path):
    """Open `url`; every request outside `root`, console error or page error is collected."""
    page = browser.new_page()
    problems: list[str] = []
    page.on("console", lambda msg: problems.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: problems.append(str(exc)))
    page.on(
        "request",
        lambda req: (
            None
            if req.url.startswith("data:") or _local_target(req.url, root)
            else problems.append(f"request leaves the report: {req.url}")
        ),
    )
    page.goto(url)
    page.wait_for_load_state("load")
    return page, problems


def _broken_links(page, root: Path) -> list[str]:
    """Links and images of `page` whose target is not a file inside `root` (anchors: an id)."""
    urls = page.eval_on_selector_all(
        "a[href], img[src], link[href]", "els => els.map(e => e.href || e.src)"
    )
    broken = []
    for url in urls:
        if url.startswith("data:"):
            continue
        target = _local_target(url, root)
        if target is None or not target.is_file():
            broken.append(url)
        elif urlsplit(url).fragment and target == Path(unquote(urlsplit(page.url).path)):
            fragment = unquote(urlsplit(url).fragment)
            if not fragment.startswith("grid=") and not page.locator(f'[id="{fragment}"]').count():
                broken.append(url)
    return broken


def test_report_pages_load_offline_with_no_broken_link(browser, report):
    root = report.resolve()
    page, problems = _open(browser, (root / "index.html").as_uri(), root)
    page.wait_for_url("**/experiments/index.html")
    assert page.locator("#runs tbody tr").count() == 9
    assert _broken_links(page, root) == []
    assert page.evaluate(
        "[...document.querySelectorAll('a.thumb img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    assert page.locator("a.thumb img").count() == 3
    run_pages = page.eval_on_selector_all(
        "#runs td[data-col=run] a:not(.thumb)", "links => links.map(a => a.href)"
    )
    assert len(run_pages) == 9
    for url in run_pages:
        notebook, notebook_problems = _open(browser, url, root)
        assert _broken_links(notebook, root) == [], url
        assert notebook_problems == [], url
        notebook.close()
    assert problems == []


def test_seed_view_and_error_bars(browser, report):
    root = report.resolve()
    page, problems = _open(browser, (root / "experiments" / "index.html").as_uri(), root)
    rows = page.locator("section.seed-groups[data-grid=seeds] tbody tr")
    assert rows.count() == 3  # x = 3, 2, 1: best mean first
    first = rows.nth(0).inner_text()
    assert "3 of 3" in first and "best" in first
    # score = x * 0.1 + seed / 1000: x=3 gives 0.301 +- 0.001
    assert "0.301 ± 0.001" in first
    assert "worse" in rows.nth(1).inner_text()
    page.select_option("#grid-select", "seeds")
    charts = page.locator("#grid-panel figure.rank-by-param figcaption")
    # the seeds are error bars, not an axis of their own
    assert charts.all_inner_texts() == ["score by mode", "score by x"]
    by_x = page.locator("#grid-panel figure.rank-by-param", has_text="score by x")
    assert by_x.locator("path.error-bar").count() == 3  # one per x, over its 3 seeds
    assert problems == []


def test_run_grid_writes_the_report_after_the_grid(tmp_path, capsys):
    write_notebook(LIGHT_CELLS, tmp_path / "light.ipynb")
    spec = {
        "notebook": "light.ipynb",
        "grid": {"x": [1, 2]},
        "rank_by": {"metric": "val_loss:best", "mode": "min"},
    }
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(spec))
    out, folder = tmp_path / "out", tmp_path / "shared"
    args = [str(tmp_path / "g.yaml"), "--out", str(out), "--quiet", "--report", str(folder)]
    assert grid_main(args) == 0
    printed = capsys.readouterr()
    assert "Report: file://" in printed.out
    assert "is not a number any run logged" not in printed.err  # `:best` names a logged metric
    assert "val_loss:best=0.75" in printed.out  # x=2: 1.5 / (2 * 2) at epoch 2
    assert len(list((folder / "experiments" / "g").glob("*/run.html"))) == 2
    csv = pd.read_csv(folder / "logs" / "leaderboard.csv")
    assert list(csv.sort_values("rank_value")["rank_value"]) == [0.375, 0.75]
    # a folder the report may not use: the runs are kept, the command says so and exits 1
    bad = out / "experiments" / "report"
    assert grid_main([*args[:-1], str(bad)]) == 1
    assert "would overwrite them" in capsys.readouterr().err
