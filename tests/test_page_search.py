"""A searched or pruned grid on the leaderboard page, from hand-made run records (no kernels):
pruned runs read as pruned with where they stopped, the store keeps that (older stores too), and
the grid shows its best value so far by trial and by epochs spent, its parameters' importance and
numeric parameter axes (logarithmic where the space is)."""

from __future__ import annotations

import html
import json
import math
import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from cvlab.report.page_data import build_page_data
from cvlab.report.publish import publish
from cvlab.report.rank_chart import rank_chart
from cvlab.report.search_view import (
    IMPORTANCE_MIN_TRIALS,
    SEARCH_FIGURE,
    axis_scale,
    read_grid_space,
)
from cvlab.report.static_report import write_report
from cvlab.report.store import LeaderboardStore
from cvlab.runs.record import RunRecord
from cvlab.search.spec import Distribution
from cvlab.search.trial_link import TrialLink
from cvlab.workspace import Workspace

from conftest import require_browser

T0 = datetime(2026, 1, 1, tzinfo=UTC)
SPEC = {
    "notebook": "nb.ipynb",
    "name": "s",
    "grid": {"opt": ["sgd", "adam"]},
    "search": {
        "trials": 8,
        "sampler": "tpe",
        "seed": 0,
        "space": {
            "lr": {"loguniform": [1.0e-4, 1.0e-1]},
            "dropout": {"uniform": [0.0, 0.5]},
            "batch_size": {"choice": [32, 64, 128]},
        },
    },
    "prune": {"metric": "val_accuracy", "mode": "max", "method": "asha", "min_epochs": 2},
    "rank_by": {"metric": "acc", "mode": "max"},
}
# (trial number, lr, dropout, batch_size, opt, status, epochs, rung): acc rises with log10(lr)
# only, so lr is the parameter that matters. Listed out of trial order on purpose.
TRIALS = [
    (2, 1e-2, 0.1, 64, "sgd", "ok", 6, None),
    (0, 1e-4, 0.4, 32, "adam", "ok", 6, None),
    (1, 1e-3, 0.2, 128, "sgd", "pruned", 2, 0),
    (3, 3e-4, 0.3, 32, "adam", "ok", 6, None),
    (4, 5e-2, 0.0, 128, "sgd", "ok", 6, None),
    (5, 2e-3, 0.5, 64, "adam", "pruned", 4, 1),
    (6, 3e-2, 0.25, 32, "adam", "failed", 1, None),
    (7, 1e-3, 0.45, 64, "sgd", "ok", 6, None),
]


def acc(lr: float) -> float:
    return round(0.9 + 0.1 * math.log10(lr), 6)  # 1e-4 → 0.5, 1e-1 → 0.8


def searched_record(number, lr, dropout, batch_size, opt, status, epochs, rung) -> RunRecord:
    pruned = status == "pruned"
    return RunRecord(
        run_id=f"t{number}",
        name=f"trial{number}",
        grid="s",
        notebook="nb.ipynb",
        params={"lr": lr, "dropout": dropout, "batch_size": batch_size, "opt": opt},
        # a pruned run stops before its final metrics; a failed one has none
        metrics={"acc": acc(lr)} if status == "ok" else {},
        status=status,
        epochs_completed=epochs,
        started_at=T0 + timedelta(minutes=number),
        duration_s=1.0,
        trial=TrialLink(
            storage="sqlite:///x/logs/optuna.db",
            study="s.0123abcd",
            number=number,
            trial_id=number + 1,
            direction="maximize",
        ),
        pruned_at_epoch=epochs if pruned else None,
        rung=rung if pruned else None,
        notes=[f"pruned by asha after epoch {epochs}"] if pruned else [],
    )


def make_workspace(root: Path, trials=TRIALS, spec=SPEC, plain: bool = True) -> Workspace:
    """Grid `s` (searched, pruned) from `trials`, and a plain grid `p` beside it."""
    ws = Workspace.at(root)
    (root / "grids").mkdir(parents=True, exist_ok=True)
    (root / "grids" / "s.yaml").write_text(yaml.safe_dump(spec))
    store = LeaderboardStore(ws.leaderboard_db)
    store.register_grid(
        "s", notebook="nb.ipynb", spec_path="grids/s.yaml", rank_metric="acc", rank_mode="max"
    )
    store.upsert([searched_record(*t) for t in trials])
    if plain:
        (root / "grids" / "p.yaml").write_text(yaml.safe_dump({"grid": {"lr": [0.1, 0.01]}}))
        store.register_grid(
            "p", notebook="nb.ipynb", spec_path="grids/p.yaml", rank_metric="acc", rank_mode="max"
        )
        store.upsert(
            [
                RunRecord(
                    run_id=f"p{i}",
                    grid="p",
                    params={"lr": lr},
                    metrics={"acc": a},
                    status="ok",
                    started_at=T0 + timedelta(hours=1, minutes=i),
                )
                for i, (lr, a) in enumerate([(0.1, 0.5), (0.01, 0.6)])
            ]  # fmt: skip
        )
    return ws


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return make_workspace(tmp_path)


def page_data(ws: Workspace) -> dict:
    store = LeaderboardStore(ws.leaderboard_db)
    return build_page_data(store.frame(), store.records(), ws)


def test_the_store_keeps_where_pruned_runs_stopped(ws):
    frame = LeaderboardStore(ws.leaderboard_db).frame().set_index("run_id")
    assert frame.loc["t1", "status"] == "pruned"
    assert (frame.loc["t1", "pruned_at_epoch"], frame.loc["t1", "rung"]) == (2, 0)
    assert (frame.loc["t5", "pruned_at_epoch"], frame.loc["t5", "rung"]) == (4, 1)
    assert frame.loc[["t0", "t6", "p0"], "pruned_at_epoch"].isna().all()


def test_an_older_store_gains_the_columns_filled_from_its_records(tmp_path):
    db = tmp_path / "old.db"
    rec = searched_record(*TRIALS[2])  # pruned after epoch 2 at rung 0
    with sqlite3.connect(db) as conn:  # the runs table as it was before the columns existed
        conn.executescript(
            "CREATE TABLE runs (grid TEXT NOT NULL, run_id TEXT NOT NULL, name TEXT, notebook "
            "TEXT, status TEXT, seed INTEGER, rank_value REAL, params TEXT, metrics TEXT, "
            "error_type TEXT, error_message TEXT, error_traceback TEXT, epochs INTEGER, "
            "started_at TEXT, ended_at TEXT, duration_s REAL, record TEXT, "
            "PRIMARY KEY (grid, run_id));"
        )
        conn.execute(
            "INSERT INTO runs VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)",
            ("s", "t1", "trial1", "nb", "pruned", None, None, "{}", "{}", None, None, None, 2,
             None, None, None, rec.model_dump_json()),
        )  # fmt: skip
    store = LeaderboardStore(db)
    row = store.frame().iloc[0]
    assert (row["pruned_at_epoch"], row["rung"]) == (2, 0)
    store.upsert([searched_record(*TRIALS[5])])  # new rows go in by column name
    assert LeaderboardStore(db).frame().set_index("run_id").loc["t5", "rung"] == 1


def test_pruned_runs_read_as_pruned_not_as_failures(ws):
    page = publish(ws).read_text()
    cells = re.findall(r'<td data-col="status">(.*?)</td>', page)
    pruned = [c for c in cells if "s-pruned" in c]
    assert len(pruned) == 2
    assert {
        html.unescape(re.search(r'class="pruned-at"[^>]*>(.*?)<', c).group(1)) for c in pruned
    } == {
        "stopped after epoch 2 (rung 0)",
        "stopped after epoch 4 (rung 1)",
    }
    grid = page_data(ws)["grids"]["s"]
    assert (grid["ok"], grid["bad"], grid["pruned"]) == (5, 1, 2)  # failed ≠ pruned
    row = re.search(r'data-grid="s">s</a></td>(.*?)</tr>', page).group(1)
    assert re.findall(r"<td>(\d+)</td>", row)[:4] == ["8", "5", "1", "2"]  # runs, ok, bad, pruned
    run = next(r for r in page_data(ws)["runs"] if r["id"] == "t5")
    assert run["pruned"] == {"epoch": 4, "rung": 1, "text": "stopped after epoch 4 (rung 1)"}


def test_best_so_far_by_trial_and_by_epochs_spent(ws):
    search = page_data(ws)["grids"]["s"]["search"]
    trials = search["trials"]
    assert [t["number"] for t in trials] == list(range(8))  # trial order, not start or list order
    assert [t["trial"] for t in trials] == list(range(1, 9))
    assert [t["status"] for t in trials] == [
        "ok", "pruned", "ok", "ok", "ok", "pruned", "failed", "ok",
    ]  # fmt: skip
    # values only where the study has one (ok runs); pruned and failed runs add epochs
    assert [t["value"] for t in trials] == [
        acc(1e-4), None, acc(1e-2), acc(3e-4), acc(5e-2), None, None, acc(1e-3),
    ]  # fmt: skip
    assert [t["spent"] for t in trials] == [6, 8, 14, 20, 26, 30, 31, 37]
    assert [t["best"] for t in trials] == [
        acc(1e-4), acc(1e-4), acc(1e-2), acc(1e-2), acc(5e-2), acc(5e-2), acc(5e-2), acc(5e-2),
    ]  # fmt: skip
    assert search["best"] == acc(5e-2)
    assert search["best_at"] == {"trial": 5, "spent": 26, "key": "s/t4"}
    assert (search["complete"], search["pruned"], search["failed"], search["epochs"]) == (
        5,
        2,
        1,
        37,
    )
    assert search["study"] == "s.0123abcd" and search["left_out"] == 0
    assert search["dashboard"] == "optuna-dashboard sqlite:///logs/optuna.db"
    assert "tpe search of 8 trials" in search["how"] and "asha" in search["how"]
    assert page_data(ws)["grids"]["p"]["search"] is None  # a plain grid shows no search


def test_each_parameter_has_an_importance_and_lr_matters_most(ws):
    found = page_data(ws)["grids"]["s"]["search"]["importance"]
    names = [name for name, _ in found["params"]]
    assert found["evaluator"] in {"fANOVA", "PED-ANOVA"} and found["trials"] == 5
    # every parameter of the space (grid: joined with search.space) is scored
    assert set(names) == {"lr", "dropout", "batch_size", "opt"}
    assert names[0] == "lr"
    values = [value for _, value in found["params"]]
    assert values == sorted(values, reverse=True) and all(0 <= v <= 1 for v in values)
    page = publish(ws).read_text()
    section = re.search(r'<section class="search" data-grid="s">.*?</section>', page).group(0)
    assert re.findall(r'<tr data-param="([^"]+)">', section) == names


def test_too_few_complete_trials_say_so_instead_of_failing(tmp_path):
    few = [t for t in TRIALS if t[5] != "ok"] + [TRIALS[0]]  # one complete trial
    ws = make_workspace(tmp_path, few, plain=False)
    found = page_data(ws)["grids"]["s"]["search"]["importance"]
    assert "params" not in found
    assert found["note"] == (
        f"Parameter importance needs at least {IMPORTANCE_MIN_TRIALS} complete trials with a "
        "value of acc; this grid has 1 so far."
    )
    assert html.escape(found["note"]) in publish(ws).read_text()


def test_a_missing_grid_file_is_noted_and_the_page_still_renders(ws):
    (ws.root / "grids" / "s.yaml").unlink()
    search = page_data(ws)["grids"]["s"]["search"]  # the trial links still mark it searched
    assert "s.yaml: cannot read the grid file" in search["importance"]["note"]
    assert [t["best"] for t in search["trials"]][-1] == acc(5e-2)
    assert "Searches" in publish(ws).read_text()


def test_parameters_sit_on_numeric_axes_logarithmic_where_the_space_is(ws):
    grid = page_data(ws)["grids"]["s"]
    assert grid["search"]["scales"] == {
        "lr": "log", "dropout": "linear", "batch_size": "linear", "opt": "category",
    }  # fmt: skip
    panels = {p["param"]: p for p in grid["rank_chart"]["panels"]}
    assert {name: p["scale"] for name, p in panels.items()} == {
        "batch_size": "linear", "dropout": "linear", "lr": "log", "opt": "category",
    }  # fmt: skip
    # the plain grid's numbers stay categories, as before
    assert [p["scale"] for p in page_data(ws)["grids"]["p"]["rank_chart"]["panels"]] == ["category"]
    assert axis_scale(Distribution(logint=[1, 64])) == "log"
    assert axis_scale(Distribution(int=[0, 4])) == "linear"
    assert axis_scale(Distribution(choice=[1e-4, 1e-3, 1e-2])) == "log"  # two decades
    assert axis_scale(Distribution(choice=["a", 1])) == "category"
    # a value a numeric axis cannot place (unset in one run) keeps the panel categorical
    runs = [
        {"key": "g/a", "name": "a", "params": {"lr": "0.1"}, "rank": 1.0, "best": False,
         "stale": False, "synthetic": False},
        {"key": "g/b", "name": "b", "params": {}, "rank": 2.0, "best": True,
         "stale": False, "synthetic": False},
    ]  # fmt: skip
    assert rank_chart(runs, scales={"lr": "log"})["panels"][0]["scale"] == "category"
    assert rank_chart(runs[:1] + [{**runs[0], "key": "g/c", "params": {"lr": "0.01"}}],
                      scales={"lr": "log"})["panels"][0]["scale"] == "log"  # fmt: skip


def test_publish_draws_the_search_figure_and_links_it(ws):
    page = publish(ws).read_text()
    assert (ws.grid_figs("s") / SEARCH_FIGURE).is_file()
    assert not (ws.grid_figs("p") / SEARCH_FIGURE).exists()
    assert f'href="../figs/s/{SEARCH_FIGURE}"' in page
    assert '<code class="dashboard">optuna-dashboard sqlite:///logs/optuna.db</code>' in page
    embedded = re.search(r'<script type="application/json" id="cvlab-data">(.*?)</script>', page)
    data = json.loads(embedded.group(1))
    assert data["grids"]["s"]["search"]["trials"][-1]["spent"] == 37


def test_a_report_keeps_the_search_view(ws, tmp_path):
    publish(ws)
    index = write_report(["s"], tmp_path / "report", source=ws.root)
    page = (index.parent / "experiments" / "index.html").read_text()
    assert '<section class="search" data-grid="s">' in page and 'data-param="lr"' in page


def test_an_invalid_grid_file_is_noted(tmp_path):
    (tmp_path / "g.yaml").write_text("search: {trials: 0}\n")
    space = read_grid_space("g.yaml", tmp_path)
    assert space is not None and not space.space and "not valid" in space.note
    (tmp_path / "g.yaml").write_text("search: [\n")
    assert "cannot parse" in read_grid_space("g.yaml", tmp_path).note
    assert read_grid_space("", tmp_path) is None


@pytest.mark.slow
def test_the_page_draws_the_search_in_a_browser(ws):
    require_browser()
    from playwright.sync_api import sync_playwright

    from conftest import CHROMIUM, CHROMIUM_FLAGS

    url = publish(ws).as_uri() + "#grid=s"
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS)
        page = browser.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
        page.goto(url)
        page.wait_for_selector("#grid-panel .search-charts")
        scales = page.eval_on_selector_all(
            "#grid-panel svg.plot[data-scale]", "els => els.map(e => e.dataset.scale)"
        )
        progress = page.eval_on_selector_all(
            "#grid-panel figure.search-progress", "els => els.map(e => e.dataset.x)"
        )
        ticks = page.locator("#grid-panel figure.search-progress path.novalue-tick").count()
        importance = page.eval_on_selector_all(
            "#grid-panel .importance-chart tr", "rows => rows.map(r => r.dataset.param)"
        )
        browser.close()
    assert errors == []
    assert sorted(scales) == ["category", "linear", "linear", "log"]
    assert progress == ["trial", "spent"]
    assert ticks == 2 * 3  # pruned and failed trials, on both charts
    assert importance[0] == "lr" and len(importance) == 4
