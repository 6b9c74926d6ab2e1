"""The chapters' pruned grids and the quickstart's search: each validates against its notebook,
keeps its chapter grid's rows, and the quickstart search runs end to end (slow)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest

from cvlab.grid.runner import run_grid
from cvlab.grid.spec import load_grid_spec
from cvlab.search.storage import open_storage, sqlite_address

GRIDS = Path(__file__).resolve().parents[1] / "grids"
PRUNED = {
    "optimizers_pruned": "optimizers",
    "augmentation_pruned": "augmentation",
    "fine_tuning_pruned": "fine_tuning",
}
# what a pruned variant may change in a row: the smoke row trains up to the first rung
SMOKE_CHANGES = {"epochs", "book_source"}


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
        assert not changed or (ours.get("smoke") and changed <= SMOKE_CHANGES), changed
        if changed:  # the smoke row reaches the first rung (min_epochs <= every row's epochs)
            assert ours["epochs"] >= pruned.prune.min_epochs


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
