"""The leaderboard page without a browser: its data (order, best runs, varied columns, parents,
links, curves), the escaping of everything embedded, and the packaging of its assets."""

from __future__ import annotations

import html
import itertools
import json
import re
import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from cvlab.report import page_data
from cvlab.report.page import asset, write_leaderboard_page
from cvlab.report.page_curves import MAX_POINTS, load_curves, thin_indices
from cvlab.report.page_data import (
    build_page_data,
    column_view,
    param_text,
    resolve_parent,
    to_script_json,
)
from cvlab.report.publish import publish
from cvlab.report.store import LeaderboardStore
from cvlab.runs.record import RunError, RunRecord
from cvlab.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
HOSTILE = "</script><script>window.pwned=1</script><!--\u2028&amp;"
T0 = datetime(2026, 1, 1, tzinfo=UTC)
_minutes = itertools.count(1)


def record(grid: str, run_id: str, params: dict, metrics: dict, status: str = "ok", **extra):
    """A finished run record; runs start a minute apart in the order they are made."""
    return RunRecord(
        run_id=run_id,
        name=f"{grid}-{run_id}",
        grid=grid,
        notebook=f"notebooks/{grid}.ipynb",
        params=params,
        metrics=metrics,
        status=status,
        started_at=T0 + timedelta(minutes=next(_minutes)),
        duration_s=2.5,
        **extra,
    )


def stored(ws: Workspace, ranks: dict[str, tuple[str, str]], records: list[RunRecord]):
    """Register the grids (grid → (metric, mode)), store the records; return frame and records."""
    store = LeaderboardStore(ws.leaderboard_db)
    for grid, (metric, mode) in ranks.items():
        store.register_grid(grid, notebook="nb", spec_path="", rank_metric=metric, rank_mode=mode)
    store.upsert(records)
    return store.frame(), store.records()


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    return Workspace.at(tmp_path)


def test_parameter_text_reads_as_python_writes_it():
    assert [param_text(v) for v in ("adam", 0.001, 1e-05, 5, True, None, [1, 2])] == [
        "adam", "0.001", "1e-05", "5", "True", "None", "[1, 2]",
    ]  # fmt: skip


def test_varied_parameters_come_first_and_constants_are_set_apart():
    runs = [
        {"params": {"x": "1", "lr": "0.5"}, "metrics": {"score": 1, "loss": 2}},
        {"params": {"x": "2", "lr": "0.5"}, "metrics": {"score": 2}},
        {"params": {"x": "2", "lr": "0.5", "extra": "a"}, "metrics": {"acc": 3}},
    ]
    view = column_view(runs, exclude_metrics=["score"])
    assert view == {"varied": ["x", "extra"], "constant": {"lr": "0.5"}, "metrics": ["loss", "acc"]}


def test_runs_are_ordered_best_first_within_each_grid(ws):
    frame, records = stored(
        ws,
        {"hi": ("acc", "max"), "lo": ("loss", "min")},
        [
            record("lo", "a1", {"k": 1}, {"loss": 0.5}),
            record("lo", "a2", {"k": 2}, {"loss": 0.2}),
            record("lo", "a3", {"k": 3}, {}, status="failed"),
            record("hi", "b1", {"k": 1}, {"acc": 0.7}),
            record("hi", "a2", {"k": 2}, {"acc": 0.9}),  # the same run id as in grid "lo"
        ],
    )
    data = build_page_data(frame, records, ws)
    assert [run["key"] for run in data["runs"]] == ["hi/a2", "hi/b1", "lo/a2", "lo/a1", "lo/a3"]
    assert [run["key"] for run in data["runs"] if run["best"]] == ["hi/a2", "lo/a2"]
    assert data["grids"]["lo"]["best"] == "lo/a2" and data["grids"]["lo"]["bad"] == 1
    assert data["grids"]["lo"]["view"]["metrics"] == []  # the rank metric has its own column
    assert data["statuses"] == ["failed", "ok"]


def test_parameters_keep_their_exact_values(ws):
    # In the store's frame, `epochs` of grid "a" becomes 5.0 beside grid "b", which lacks it.
    frame, records = stored(
        ws,
        {"a": ("m", "max"), "b": ("m", "max")},
        [record("a", "r1", {"epochs": 5, "lr": 0.001}, {"m": 1.0}), record("b", "r2", {}, {})],
    )
    assert frame["params.epochs"].tolist()[0] == 5.0
    data = build_page_data(frame, records, ws)
    assert data["runs"][0]["params"] == {"epochs": "5", "lr": "0.001"}
    text = write_leaderboard_page(frame, records, ws).read_text()
    assert '<td data-col="p:epochs">5</td>' in text


def test_parent_runs_are_found_by_run_reference():
    ids = {"abc": ["g"], "dup": ["g", "h"], "solo": ["h"]}
    assert resolve_parent({"resume_from": "run:abc"}, "g", ids)["key"] == "g/abc"
    assert resolve_parent({"weights": "run:solo"}, "g", ids)["key"] == "h/solo"
    assert resolve_parent({"weights": "run:h/dup"}, "g", ids)["key"] == "h/dup"
    assert resolve_parent({"weights": "run:dup"}, "h", ids)["key"] == "h/dup"  # own grid first
    assert resolve_parent({"weights": "run:dup"}, "z", ids)["key"] is None  # ambiguous
    missing = resolve_parent({"a": "1", "weights": "run:gone"}, "g", ids)
    assert missing == {"key": None, "param": "weights", "ref": "run:gone"}
    assert resolve_parent({"weights": "imagenet"}, "g", ids) is None


def test_links_point_only_at_files_that_exist(ws):
    rich = record("g", "r1", {"x": 1}, {"m": 1.0}, artifacts={"model": "model.keras"})
    bare = record("g", "r2", {"x": 2}, {"m": 0.5}, artifacts={"model": "model.keras"})
    run_dir = ws.run_dir("g", "r1")
    run_dir.mkdir(parents=True)
    for name in ("run.html", "run.ipynb", "curves.png", "model.keras"):
        (run_dir / name).write_text("x")
    ws.run_log("g", "r1").parent.mkdir(parents=True)
    ws.run_log("g", "r1").write_text("log")
    frame, records = stored(ws, {"g": ("m", "max")}, [rich, bare])
    runs = {run["id"]: run for run in build_page_data(frame, records, ws)["runs"]}
    assert runs["r1"]["links"] == {
        "notebook": "g/r1/run.html",
        "ipynb": "g/r1/run.ipynb",
        "curves": "g/r1/curves.png",
        "models": [["model.keras", "g/r1/model.keras"]],
        "log": "../logs/g/r1.log",
    }
    assert runs["r2"]["links"] == {}
    page = ws.leaderboard_page
    for url in runs["r1"]["links"].values():
        target = url[0][1] if isinstance(url, list) else url
        assert (page.parent / target).resolve().is_file()


def test_curves_are_thinned_and_cleaned(tmp_path):
    assert thin_indices(5) == [0, 1, 2, 3, 4]
    picked = thin_indices(1000, 120)
    assert len(picked) == 120 and picked[0] == 0 and picked[-1] == 999
    lines = ["epoch,loss,val_loss,accuracy,lr,time_s"]
    lines += [f"{e},{1 / e:.9f},{'nan' if e == 1 else 2 / e},0.5,0.1,1.0" for e in range(1, 501)]
    csv = tmp_path / "history.csv"
    csv.write_text("\n".join(lines) + "\n")
    curves = load_curves(csv)
    assert list(curves) == ["epoch", "loss", "val_loss", "accuracy"]  # no lr, no time_s
    assert len(curves["epoch"]) == MAX_POINTS
    assert curves["epoch"][0] == 1 and curves["epoch"][-1] == 500
    assert curves["val_loss"][0] is None  # NaN at epoch 1
    assert curves["loss"][-1] == 0.002 and load_curves(csv, limit=3)["loss"][1] == 0.0039841
    assert load_curves(tmp_path / "absent.csv") is None


def test_embedded_json_cannot_end_the_script_element():
    data = {"value": HOSTILE, "n": 1.5}
    text = to_script_json(data)
    assert not set("<>&\u2028\u2029") & set(text)
    assert json.loads(text) == data
    with pytest.raises(ValueError):
        to_script_json({"bad": float("nan")})


def test_hostile_values_are_shown_as_text_and_the_data_survives(ws):
    hostile_run = record(
        "g",
        "r1",
        {"mode": HOSTILE, "x": 1},
        {"m": 1.0, "note": "<img src=x onerror=alert(1)>", "nan": float("nan")},
        error=RunError(type="ValueError", message="<b>bad</b>", traceback="tb <i>"),
    )
    frame, records = stored(ws, {"g": ("m", "max")}, [hostile_run, record("g", "r2", {"x": 2}, {})])
    text = write_leaderboard_page(frame, records, ws).read_text()
    # the page data, page.js, and the live panel's data file and script (test_live_page.py)
    assert text.lower().count("<script") == 4 and text.lower().count("</script>") == 4
    assert "<img src=x" not in text and "<b>bad" not in text and "<!--" not in text
    cell = re.search(r'<td data-col="p:mode">(.*?)</td>', text).group(1)
    assert html.unescape(cell) == HOSTILE
    embedded = re.search(r'<script type="application/json" id="cvlab-data">(.*?)</script>', text)
    data = json.loads(embedded.group(1))
    assert data["runs"][0]["params"]["mode"] == HOSTILE
    assert data["runs"][0]["metrics"]["nan"] is None
    assert data == json.loads(to_script_json(build_page_data(frame, records, ws)))


def test_page_without_runs_says_how_to_make_some(ws):
    frame, records = stored(ws, {}, [])
    text = write_leaderboard_page(frame, records, ws).read_text()
    assert "No runs yet" in text and 'id="cvlab-data"' not in text
    assert text.lower().count("<script") == 2  # only the live panel's: runs in progress show


def test_publish_builds_the_page_from_the_store(ws):
    stored(ws, {"g": ("m", "max")}, [record("g", "r1", {"x": 1}, {"m": 1.0})])
    page = publish(ws)
    assert page == ws.leaderboard_page and 'data-key="g/r1"' in page.read_text()


def test_assets_are_inlinable_and_packaged():
    for name in ("page.js", "page.css"):
        assert len(asset(name)) > 1000
    config = tomllib.loads((REPO / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["package-data"]["cvlab"]
    assets = Path(page_data.__file__).parent / "assets"
    for path in assets.iterdir():
        rel = path.relative_to(assets.parents[1]).as_posix()  # report/assets/page.js
        assert any(Path(rel).match(pattern) for pattern in patterns), f"{rel} is not package data"
