"""Issue 18, point 8: what cannot change a result (markdown, comments, blank lines) is out of a
run's id; a run of older code is stale (listed by --dry-run, marked and not ranked on the page);
a run on synthetic data never ranks against real ones."""

from __future__ import annotations

import itertools
import json
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import nbformat
import pytest
import yaml

import cvlab
from cvlab.grid.cli import main as grid_main
from cvlab.grid.expand import expand, normalized_code, notebook_digest
from cvlab.grid.spec import load_grid_spec
from cvlab.grid.staleness import stale_runs
from cvlab.report import plots
from cvlab.report.page import write_leaderboard_page
from cvlab.report.page_data import build_page_data
from cvlab.report.rank_chart import rank_chart
from cvlab.report.ranking import best_run_ids
from cvlab.report.store import LeaderboardStore
from cvlab.runs.record import RunRecord
from cvlab.runs.run import current
from cvlab.workspace import Workspace

from conftest import LIGHT_CELLS, require_browser
from notebook_builder import write_notebook

T0 = datetime(2026, 1, 1, tzinfo=UTC)
_minutes = itertools.count(1)


# ---- the digest: code only ---------------------------------------------------------------------


def _plans(grid_file: Path):
    return expand(load_grid_spec(grid_file))


@pytest.fixture
def grid_file(tmp_path: Path) -> Path:
    write_notebook(LIGHT_CELLS, tmp_path / "light.ipynb")
    path = tmp_path / "g.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "notebook": "light.ipynb",
                "grid": {"x": [1, 2]},
                "rank_by": {"metric": "score", "mode": "max"},
            }
        )
    )
    return path


def _edit(notebook: Path, change) -> None:
    nb = nbformat.read(str(notebook), as_version=4)
    change(nb)
    nbformat.write(nb, str(notebook))


def test_markdown_comments_and_blank_lines_keep_the_ids(grid_file):
    notebook = grid_file.parent / "light.ipynb"
    before = [p.run_id for p in _plans(grid_file)]

    def prose(nb):
        nb.cells[0].source = "# A light test notebook\n\nFixed a tpyo; a new paragraph."
        nb.cells.append(nbformat.v4.new_markdown_cell("## One more note"))
        nb.cells[2].source = "# an explanation\n\n" + nb.cells[2].source.replace(
            "run = cvlab.runs.start(run_dir)",
            "run = cvlab.runs.start(run_dir)  # opens the run\n\n",
        )
        nb.cells[1].source += "\n\n# the parameters above are the grid's\n"

    _edit(notebook, prose)
    assert [p.run_id for p in _plans(grid_file)] == before


def test_code_and_parameter_defaults_change_the_ids(grid_file):
    notebook = grid_file.parent / "light.ipynb"
    before = [p.run_id for p in _plans(grid_file)]
    _edit(notebook, lambda nb: setattr(nb.cells[2], "source", nb.cells[2].source + "\ny = 2"))
    code = [p.run_id for p in _plans(grid_file)]
    assert set(code).isdisjoint(before)
    _edit(notebook, lambda nb: setattr(nb.cells[1], "source", nb.cells[1].source + "\nz = 3"))
    assert set(p.run_id for p in _plans(grid_file)).isdisjoint(code)  # the parameters cell counts


def test_spacing_is_ignored_and_magics_do_not_crash_it():
    assert normalized_code("x=1\nif x:\n    y = f(x,2)") == normalized_code(
        "\n\nx = 1   # one\nif x:\n  y = f( x, 2 )\n\n"
    )
    assert normalized_code("x = 1") != normalized_code("x = 2")
    assert normalized_code("s = 'a  b'") != normalized_code("s = 'a b'")  # inside a string: code
    magics = "%matplotlib inline\n!ls -la 'it's'\n%%time\nx = 1"
    assert normalized_code(magics) == normalized_code(magics + "\n# a comment\n")
    assert normalized_code("%matplotlib inline") != normalized_code("%matplotlib agg")
    assert normalized_code("x = 'unterminated") == normalized_code("\nx = 'unterminated\n")
    assert normalized_code("def f(:\n  pass") != normalized_code("def g(:\n  pass")


def test_digest_leaves_out_raw_cells_and_metadata(tmp_path):
    path = write_notebook(LIGHT_CELLS, tmp_path / "n.ipynb")
    before = notebook_digest(path)
    _edit(path, lambda nb: nb.cells.append(nbformat.v4.new_raw_cell("raw text")))
    _edit(path, lambda nb: nb.metadata.update(authors=["someone"]))
    assert notebook_digest(path) == before


# ---- --dry-run lists the runs a code change made stale -----------------------------------------


@pytest.mark.slow  # runs a grid through papermill
def test_dry_run_lists_stale_runs_after_a_code_change(grid_file, tmp_path, capsys):
    notebook, out = grid_file.parent / "light.ipynb", tmp_path / "out"
    assert grid_main([str(grid_file), "--out", str(out), "--quiet", "--only", "x=2"]) == 0
    (old,) = [p for p in _plans(grid_file) if p.params["x"] == 2]
    assert RunRecord.load(Workspace.at(out).run_dir("g", old.run_id)).code_digest == old.code_digest
    capsys.readouterr()

    # only markdown changes: nothing is stale, nothing runs again
    _edit(notebook, lambda nb: setattr(nb.cells[0], "source", "# A light test notebok, fixed"))
    assert grid_main([str(grid_file), "--out", str(out), "--dry-run", "--only", "x=2"]) == 0
    printed = capsys.readouterr().out
    assert "is stale" not in printed and "are stale" not in printed and "0 to run" in printed

    # the code changes: the finished run is stale, and the run of the new code is named
    _edit(notebook, lambda nb: setattr(nb.cells[2], "source", nb.cells[2].source + "\nnew = 1"))
    assert grid_main([str(grid_file), "--out", str(out), "--dry-run"]) == 0
    printed = capsys.readouterr().out
    (new,) = [p for p in _plans(grid_file) if p.params["x"] == 2]
    assert "1 finished run is stale" in printed and "light.ipynb changed" in printed
    assert re.search(rf"x=2 \[{old.run_id}\] -> \[{new.run_id}\]", printed)
    grid = load_grid_spec(grid_file)
    (stale,) = stale_runs(grid, expand(grid), out)
    assert (stale.record.run_id, stale.replaced_by.run_id) == (old.run_id, new.run_id)
    assert stale_runs(grid, [p for p in expand(grid) if p.params["x"] == 1], out) == []

    # once the new code ran, the page marks the old run stale and does not rank it
    assert grid_main([str(grid_file), "--out", str(out), "--quiet", "--only", "x=2"]) == 0
    store = LeaderboardStore(Workspace.at(out).leaderboard_db)
    frame = store.frame().set_index("run_id")
    assert bool(frame.loc[old.run_id, "stale"]) and not bool(frame.loc[new.run_id, "stale"])
    assert best_run_ids(store.frame()) == {new.run_id}


def test_records_without_a_digest_are_never_stale(grid_file, tmp_path):
    grid = load_grid_spec(grid_file)
    plans = expand(grid)
    ws = Workspace.at(tmp_path / "out")
    old = RunRecord(run_id="old", grid="g", params=dict(plans[0].params), status="ok")
    ws.run_dir("g", "old").mkdir(parents=True)
    old.save(ws.run_dir("g", "old"))
    assert stale_runs(grid, plans, ws) == []
    old.code_digest = "0" * 64
    old.save(ws.run_dir("g", "old"))
    assert [s.record.run_id for s in stale_runs(grid, plans, ws)] == ["old"]


# ---- the store, ranking, leaderboard and page data ---------------------------------------------


def _record(run_id, params, score, *, digest=None, synthetic=False, grid="g", status="ok"):
    return RunRecord(
        run_id=run_id, name=run_id, grid=grid, notebook="nb.ipynb", params=params,
        seed=params.get("seed"), metrics={"score": score} if score is not None else {},
        status=status, started_at=T0 + timedelta(minutes=next(_minutes)), code_digest=digest,
        synthetic=synthetic,
    )  # fmt: skip


def _stored(tmp_path, records, digest=None, grid="g"):
    ws = Workspace.at(tmp_path)
    store = LeaderboardStore(ws.leaderboard_db)
    store.register_grid(grid, notebook="nb.ipynb", spec_path="g.yaml", rank_metric="score",
                        rank_mode="max", code_digest=digest)  # fmt: skip
    store.upsert(records)
    return ws, store


def _stale_grid():
    """x in {1, 2} over seeds 0-1 with the current code, and one older run that scored best."""
    runs = [
        _record(f"new{x}{s}", {"x": x, "seed": s}, 0.5 + x / 10 + s / 100, digest="new")
        for x in (1, 2)
        for s in (0, 1)
    ]
    return [_record("old", {"x": 2, "seed": 0}, 0.99, digest="old"), *runs]


def test_stale_runs_are_kept_but_not_ranked(tmp_path):
    ws, store = _stored(tmp_path, _stale_grid(), digest="new")
    frame = store.frame()
    assert dict(zip(frame["run_id"], frame["stale"], strict=True))["old"]
    assert frame["stale"].sum() == 1
    assert best_run_ids(frame) == {"new21"}
    assert best_run_ids(frame, include_stale=True) == {"old"}

    ranked = cvlab.leaderboard("g", out=tmp_path)
    assert list(ranked["run_id"])[:2] == ["new21", "new20"] and ranked["run_id"].iloc[-1] == "old"
    assert cvlab.leaderboard("g", include_stale=True, out=tmp_path)["run_id"].iloc[0] == "old"
    groups = cvlab.leaderboard("g", group_by_seed=True, out=tmp_path)
    assert list(groups["seeds_total"]) == [2, 2]  # the stale run is no third seed of x=2
    with_stale = cvlab.leaderboard("g", group_by_seed=True, include_stale=True, out=tmp_path)
    assert sorted(with_stale["seeds_total"]) == [2, 3]

    data = json.loads(json.dumps(build_page_data(frame, store.records(), ws)))
    runs = {run["id"]: run for run in data["runs"]}
    assert runs["old"]["stale"] and not runs["old"]["best"] and runs["old"]["best_with_stale"]
    assert runs["new21"]["best"] and not runs["new21"]["stale"]
    assert data["runs"][-1]["id"] == "old"  # listed after the current runs
    grid = data["grids"]["g"]
    assert (grid["best"], grid["best_with_stale"], grid["stale"]) == ("g/new21", "g/old", 1)
    chart = grid["rank_chart"]
    assert "g/old" not in {p["key"] for p in chart["points"]} and len(chart["points"]) == 4
    assert "g/old" in {p["key"] for p in grid["rank_chart_with_stale"]["points"]}
    assert all(seed["key"] != "g/old" for e in grid["seed_groups"] for seed in e["seeds"])

    page = write_leaderboard_page(frame, store.records(), ws).read_text()
    row = re.search(r'<tr id="run-g/old"[^>]*class="([^"]*)"', page)
    assert row and row.group(1) == "stale"
    assert page.count('class="badge stale"') == 1


def test_without_a_registered_digest_the_latest_run_is_current(tmp_path):
    records = [_record("a", {"x": 1}, 0.9, digest="v1"), _record("b", {"x": 1}, 0.1, digest="v2")]
    records.append(_record("c", {"x": 2}, 0.95))  # no digest: unknown, never stale
    _, store = _stored(tmp_path, records)
    flags = dict(zip(store.frame()["run_id"], store.frame()["stale"], strict=True))
    assert flags == {"a": True, "b": False, "c": False}
    assert best_run_ids(store.frame()) == {"c"}


def test_an_older_store_gets_the_new_column(tmp_path):
    db = Workspace.at(tmp_path).leaderboard_db
    db.parent.mkdir(parents=True)
    with sqlite3.connect(db) as conn:
        conn.execute(
            "CREATE TABLE grids (grid TEXT PRIMARY KEY, notebook TEXT, spec_path TEXT, "
            "rank_metric TEXT, rank_mode TEXT, description TEXT)"
        )
        conn.execute("INSERT INTO grids VALUES ('g', 'nb', '', 'score', 'max', '')")
    _, store = _stored(tmp_path, [_record("a", {"x": 1}, 0.5, digest="v1")], digest="v1")
    assert store.grids()["g"]["code_digest"] == "v1"
    assert store.frame()["rank_value"].tolist() == [0.5]


def test_a_synthetic_run_never_beats_a_real_one(tmp_path):
    records = [
        _record("real", {"dataset": "cifar10"}, 0.5),
        _record("smoke", {"dataset": "shapes"}, 0.9, synthetic=True),
    ]
    ws, store = _stored(tmp_path, records)
    frame = store.frame()
    assert best_run_ids(frame) == {"real"}
    assert list(cvlab.leaderboard("g", out=tmp_path)["run_id"]) == ["real", "smoke"]
    data = build_page_data(frame, store.records(), ws)
    runs = {run["id"]: run for run in data["runs"]}
    assert runs["real"]["best"] and not runs["smoke"]["best"] and runs["smoke"]["synthetic"]
    assert data["grids"]["g"]["best"] == "g/real"
    assert [p["key"] for p in data["grids"]["g"]["rank_chart"]["points"]] == ["g/real"]
    page = write_leaderboard_page(frame, store.records(), ws).read_text()
    assert page.count('class="badge synthetic"') == 1


def test_a_grid_of_synthetic_runs_only_shows_its_best_synthetic_one(tmp_path):
    records = [
        _record("real", {"dataset": "cifar10"}, None, status="failed"),
        _record("smoke", {"dataset": "shapes"}, 0.1, synthetic=True),
    ]
    ws, store = _stored(tmp_path, records)
    data = build_page_data(store.frame(), store.records(), ws)
    assert data["grids"]["g"]["best"] == "g/smoke"
    page = write_leaderboard_page(store.frame(), store.records(), ws).read_text()
    summary = page.split('<table class="summary">')[1].split("</table>")[0]
    assert 'class="badge synthetic"' in summary  # the best run is labelled synthetic


def test_synthetic_seed_groups_are_not_compared_with_real_ones(tmp_path):
    records = [
        _record(f"{kind}{s}", {"dataset": kind, "seed": s}, score + s / 100, synthetic=synthetic)
        for kind, score, synthetic in (("real", 0.5, False), ("shapes", 0.9, True))
        for s in (0, 1)
    ]
    _stored(tmp_path, records)
    groups = cvlab.leaderboard("g", group_by_seed=True, out=tmp_path)
    assert list(groups["params.dataset"]) == ["real", "shapes"]
    assert list(groups["vs_best"]) == ["best", "synthetic"]


def test_the_rank_figure_leaves_out_stale_and_synthetic_runs(tmp_path, monkeypatch):
    figures = []
    monkeypatch.setattr(plots, "save_png", lambda fig, path: figures.append(fig) or path)
    records = [*_stale_grid(), _record("smoke", {"x": 3, "seed": 0}, 2.0, synthetic=True)]
    _, store = _stored(tmp_path, records, digest="new")
    assert plots.plot_rank_vs_params(store.frame(), tmp_path / "rank.png") is not None
    (ax,) = figures[0].axes  # x only: the seeds are error bars
    (dots,) = ax.collections[:1]
    assert sorted(dots.get_offsets()[:, 1].round(2).tolist()) == [0.6, 0.61, 0.7, 0.71]
    assert [t.get_text() for t in ax.get_xticklabels()] == ["1", "2", "3"]


# ---- data sets loaded by a run ---------------------------------------------------------------


def test_load_notes_the_data_set_on_the_current_run(tmp_path):
    run = cvlab.runs.start(tmp_path / "run")
    cvlab.data.load("shapes", size=8, num_classes=2, samples_per_class=20)
    record = RunRecord.load(tmp_path / "run")
    assert record.synthetic and [d.name for d in record.data] == ["shapes"]
    other = cvlab.runs.start(tmp_path / "real")
    cvlab.data.load("digits")
    record = RunRecord.load(tmp_path / "real")
    assert not record.synthetic and record.data[0].name == "digits"
    assert not RunRecord.load(run.run_dir).data[1:]  # the earlier run is left alone
    assert current() is other


# ---- the page's toggle, in a browser ---------------------------------------------------------


@pytest.mark.slow
def test_include_stale_toggle_moves_the_star(tmp_path, browser):
    require_browser()
    ws, store = _stored(tmp_path, _stale_grid(), digest="new")
    page_path = write_leaderboard_page(store.frame(), store.records(), ws)
    page = browser.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(page_path.as_uri())
    star = "#runs tbody tr.best"
    assert page.get_attribute(star, "data-key") == "g/new21"
    assert page.locator('tr[data-key="g/old"] .badge.stale').count() == 1
    page.select_option("#grid-select", "g")
    assert page.locator("#grid-panel circle.dot").count() == 4
    page.check("#include-stale")
    assert page.get_attribute(star, "data-key") == "g/old"
    assert page.locator("#grid-panel circle.dot").count() == 5
    page.uncheck("#include-stale")
    assert page.get_attribute(star, "data-key") == "g/new21"
    assert errors == []
    page.close()


# ---- the rank chart: computed once, for the figure and the page ------------------------------


def test_rank_chart_panels_values_and_spread():
    runs = [
        {"key": f"g/{i}", "name": str(i), "params": params, "rank": rank, "best": False,
         "stale": False, "synthetic": False}
        for i, (params, rank) in enumerate(
            [
                ({"lr": "0.01", "seed": "0"}, 0.5),
                ({"lr": "0.01", "seed": "1"}, 0.7),
                ({"lr": "0.001", "seed": "0"}, 0.4),
                ({"lr": "0.1", "seed": "0", "opt": "adam"}, None),
            ]
        )
    ]  # fmt: skip
    chart = rank_chart(runs)
    assert [p["param"] for p in chart["panels"]] == ["lr", "opt"]  # seed: error bars, no panel
    lr = chart["panels"][0]
    assert lr["values"] == ["0.001", "0.01", "0.1"]  # numeric order
    assert lr["groups"] == [
        {"value": "0.001", "mean": 0.4, "sd": None, "n": 1},
        {
            "value": "0.01",
            "mean": pytest.approx(0.6),
            "sd": pytest.approx(0.1414, abs=1e-4),
            "n": 2,
        },
    ]
    assert chart["panels"][1]["values"] == ["adam", None]  # unset last
    assert len(chart["points"]) == 3  # the run without a rank value is no point
    assert rank_chart(runs[:2])["panels"][0]["param"] == "seed"  # alone, seed is a panel


def test_the_figure_and_the_page_draw_the_same_chart(tmp_path):
    ws, store = _stored(tmp_path, _stale_grid(), digest="new")
    frame = store.frame()
    page = build_page_data(frame, store.records(), ws)["grids"]["g"]["rank_chart"]
    figure = rank_chart(plots.chart_runs(frame))
    assert page["panels"] == figure["panels"]
    assert sorted((p["key"], p["rank"]) for p in page["points"]) == sorted(
        (p["key"], p["rank"]) for p in figure["points"]
    )
