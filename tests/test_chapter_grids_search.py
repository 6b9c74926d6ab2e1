"""The chapters' pruned grids and the quickstart's search: each validates against its notebook,
keeps its chapter grid's rows, and the quickstart search runs end to end (slow); the search
benchmark's grids validate and its epoch budget holds."""

from __future__ import annotations

import importlib.util
import sys
from argparse import Namespace
from pathlib import Path

import optuna
import pytest

from cvlab.grid.runner import run_grid
from cvlab.grid.spec import load_grid_spec
from cvlab.search.storage import open_storage, sqlite_address

REPO = Path(__file__).resolve().parents[1]
GRIDS = REPO / "grids"
PRUNED = {
    "optimizers_pruned": "optimizers",
    "augmentation_pruned": "augmentation",
    "fine_tuning_pruned": "fine_tuning",
}


@pytest.mark.parametrize("name", [*PRUNED, "quickstart_search"])
def test_grid_validates(name):
    grid = load_grid_spec(GRIDS / f"{name}.yaml")
    assert grid.spec.prune is not None
    assert grid.spec.prune.metric == "val_accuracy"
    assert grid.spec.prune.method == "asha"


@pytest.mark.parametrize("name", PRUNED)
def test_pruned_variant_keeps_the_chapter_grid(name):
    pruned = load_grid_spec(GRIDS / f"{name}.yaml").spec
    chapter = load_grid_spec(GRIDS / f"{PRUNED[name]}.yaml").spec
    assert chapter.prune is None
    assert pruned.notebook == chapter.notebook
    assert pruned.params == chapter.params
    assert pruned.grid == chapter.grid
    assert pruned.rank_by == chapter.rank_by
    assert len(pruned.runs) == len(chapter.runs)
    for ours, theirs in zip(pruned.runs, chapter.runs, strict=True):
        changed = {k for k in ours.keys() | theirs.keys() if ours.get(k) != theirs.get(k)}
        assert not changed, changed  # the smoke row too: its 2 epochs reach no rung, never cut
    smoke = [row for row in pruned.runs if row.get("smoke")]
    assert smoke and all(
        row["epochs"] < pruned.prune.min_epochs for row in smoke if "epochs" in row
    )


def test_quickstart_search_is_small_and_seeded():
    spec = load_grid_spec(GRIDS / "quickstart_search.yaml").spec
    assert spec.search.sampler == "tpe" and spec.search.seed == 0
    assert spec.search.trials <= 4 and spec.params["epochs"] <= 2
    assert spec.search.space["learning_rate"].kind == "loguniform"
    assert spec.rank_by.metric != "test_accuracy"  # a search never tunes on the test split


@pytest.mark.slow
def test_quickstart_search_runs(tmp_path):
    result = run_grid(GRIDS / "quickstart_search.yaml", out=tmp_path, echo=False)
    assert result.ok, [r.error for r in result.runs]
    states = [r.state for r in result.runs]
    assert len(result.runs) == 4 and set(states) <= {"ok", "pruned"} and "ok" in states
    assert len({r.run_id for r in result.runs}) == 4
    assert all(r.rank_value is not None for r in result.runs if r.state == "ok")
    storage = open_storage(sqlite_address(tmp_path / "logs"))
    (name,) = optuna.get_all_study_names(storage)
    study = optuna.load_study(study_name=name, storage=storage)
    told = [t.state.name for t in study.trials]
    assert sorted(told) == sorted("COMPLETE" if s == "ok" else "PRUNED" for s in states)

    again = run_grid(GRIDS / "quickstart_search.yaml", out=tmp_path, echo=False)
    assert not any(r.ran for r in again.runs) and len(again.runs) == 4


def _bench_search():
    """bench/search.py as a module (bench/ is no package); registered, as its dataclasses need."""
    if "bench_search" not in sys.modules:
        spec = importlib.util.spec_from_file_location("bench_search", REPO / "bench" / "search.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules["bench_search"] = module
        spec.loader.exec_module(module)
    return sys.modules["bench_search"]


def _bench_args(**changes) -> Namespace:
    defaults = dict(
        dataset="flowers17", size=32, epochs=9, min_epochs=1, reduction_factor=3, learning_rates=[0.1, 0.01],
        batch_sizes=[32, 64], momenta=[0.0, 0.9], val_fraction=0.15, limit_per_class=None,
        seed=0, max_trials=64,
    )  # fmt: skip
    return Namespace(**{**defaults, **changes})


def test_bench_search_grids_validate(tmp_path):
    bench = _bench_search()
    args = _bench_args()
    grids = bench.grid_dicts(args)
    for key, content in grids.items():
        grid = load_grid_spec(bench.write_yaml(tmp_path / f"{key}.yaml", content))
        assert grid.spec.rank_by.metric == "val_accuracy:last"
        assert (grid.spec.prune is None) == (key == "A")
    assert grids["A"]["grid"] == grids["B"]["grid"]  # B is A with pruning
    assert grids["C"]["search"]["space"]["learning_rate"] == {"loguniform": [0.01, 0.1]}
    assert bench.rung_epochs(args) == [1, 3]
    assert bench.rung_epochs(_bench_args(epochs=27, min_epochs=3)) == [3, 9]


def test_bench_search_cifar10_grids_validate(tmp_path):
    """--dataset cifar10: MiniVGGNet through the MiniGoogLeNet notebook (its loader takes
    CIFAR-10's options), the same space, 1,000 validation images by default."""
    bench = _bench_search()
    args = _bench_args(dataset="cifar10", epochs=18, min_epochs=2, limit_per_class=200,
                       val_fraction=0.5)  # fmt: skip
    for key, content in bench.grid_dicts(args).items():
        grid = load_grid_spec(bench.write_yaml(tmp_path / f"{key}.yaml", content))
        assert Path(grid.spec.notebook).name == "09_googlenet.ipynb"
        params = grid.spec.params
        assert params["dataset"] == "cifar10" and params["model_name"] == "minivggnet"
        assert params["dataset_options"] == {
            "val_fraction": 0.5,
            "size": 32,
            "limit_per_class": 200,
        }
        assert (grid.spec.prune is None) == (key == "A")
    assert bench.rung_epochs(args) == [2, 6]
    assert bench.TASKS["cifar10"]["defaults"]["limit_per_class"] * 10 * 0.5 >= 1000


def test_bench_epoch_budget_stops_a_search(tmp_path, light_notebook, write_grid):
    """A search of 10 trials of 2 epochs within 5 epochs: two trials (4 epochs), no third."""
    bench = _bench_search()
    search = {"trials": 10, "sampler": "random", "seed": 0, "space": {"lr": {"uniform": [0, 1]}}}
    grid = write_grid(
        {"name": "s", "notebook": "light.ipynb", "search": search,
         "rank_by": {"metric": "score", "mode": "max"}}
    )  # fmt: skip
    out = tmp_path / "out"
    with bench.epoch_budget(out, "s", budget=5, max_epochs=2):
        result = run_grid(grid, out=out, echo=False, prewarm=False)
    assert [r.state for r in result.runs] == ["ok", "ok"]
    assert sum(r.epochs_completed for r in bench.records_of(out, "s")) == 4
