"""Grid expansion: cartesian product, explicit runs, seeds, stable ids, names and --only."""

from __future__ import annotations

import nbformat
import pytest

from cvlab.grid.expand import RunFilterError, expand, filter_plans, notebook_digest, run_id_for
from cvlab.grid.spec import load_grid_spec

from conftest import light_spec


def plans_for(write_grid, **changes):
    return expand(load_grid_spec(write_grid(light_spec(**changes))))


def test_cartesian_product_and_fixed_params(light_notebook, write_grid):
    plans = plans_for(write_grid, grid={"x": [1, 2, 3], "mode": ["ok", "nan"]})
    assert len(plans) == 6
    assert {(p.params["x"], p.params["mode"]) for p in plans} == {
        (x, m) for x in (1, 2, 3) for m in ("ok", "nan")
    }
    assert all(p.params["lr"] == 0.5 for p in plans)
    assert plans[0].name == "x=1,mode=ok"


def test_explicit_runs_are_added(light_notebook, write_grid):
    plans = plans_for(write_grid, grid={"x": [1]}, runs=[{"x": 5, "lr": 0.1}, {"mode": "nan"}])
    assert [p.params for p in plans] == [
        {"lr": 0.5, "x": 1},
        {"lr": 0.1, "x": 5},
        {"lr": 0.5, "mode": "nan"},
    ]


def test_seeds_repeat_each_combination(light_notebook, write_grid):
    plans = plans_for(write_grid, grid={"x": [1, 2]}, seeds=[7, 8, 9])
    assert len(plans) == 6
    assert sorted((p.params["x"], p.seed) for p in plans) == [
        (x, s) for x in (1, 2) for s in (7, 8, 9)
    ]
    assert all(p.params["seed"] == p.seed for p in plans)
    assert plans[0].name == "x=1,seed=7"
    assert len({p.run_id for p in plans}) == 6


def test_no_grid_means_one_run(light_notebook, write_grid):
    plans = plans_for(write_grid, grid={})
    assert len(plans) == 1 and plans[0].name == "default"


def test_duplicates_are_run_once(light_notebook, write_grid):
    plans = plans_for(write_grid, grid={"x": [1, 2]}, runs=[{"x": 1}])
    assert len(plans) == 2


def test_ids_are_stable_and_content_based(light_notebook, write_grid):
    first = plans_for(write_grid)
    again = plans_for(write_grid)
    assert [p.run_id for p in first] == [p.run_id for p in again]
    # the id is a function of notebook content and parameters only
    digest = notebook_digest(light_notebook)
    assert first[0].run_id == run_id_for(digest, {"lr": 0.5, "x": 1})
    assert run_id_for(digest, {"x": 1, "lr": 0.5}) == first[0].run_id  # key order does not matter
    assert run_id_for(digest, {"lr": 0.5, "x": 1.5}) != first[0].run_id


def test_outputs_do_not_change_ids_but_code_does(light_notebook, write_grid):
    before = plans_for(write_grid)[0].run_id
    nb = nbformat.read(str(light_notebook), as_version=4)
    nb.cells[1].outputs = [nbformat.v4.new_output("stream", name="stdout", text="hello")]
    nb.cells[1].execution_count = 3
    nbformat.write(nb, str(light_notebook))
    assert plans_for(write_grid)[0].run_id == before
    nb.cells[2].source += "\nchanged = True"  # a code change (a comment no longer is one)
    nbformat.write(nb, str(light_notebook))
    assert plans_for(write_grid)[0].run_id != before


def test_timeout_override(light_notebook, write_grid):
    grid = load_grid_spec(write_grid(light_spec(timeout=60)))
    assert {p.timeout for p in expand(grid)} == {60}
    assert {p.timeout for p in expand(grid, timeout=5)} == {5}


def test_only_filter(light_notebook, write_grid):
    plans = plans_for(write_grid, grid={"x": [1, 2, 3], "mode": ["ok", "nan"]})
    assert {p.name for p in filter_plans(plans, ["x=2"])} == {"x=2,mode=ok", "x=2,mode=nan"}
    assert {p.name for p in filter_plans(plans, ["x=2", "mode=nan"])} == {"x=2,mode=nan"}
    assert len(filter_plans(plans, ["x=1", "x=3"])) == 4
    with pytest.raises(RunFilterError, match="no run has parameter 'depth'"):
        filter_plans(plans, ["depth=3"])
    with pytest.raises(RunFilterError, match="expected KEY=VALUE"):
        filter_plans(plans, ["x"])


def test_name_by_picks_the_naming_parameters(light_notebook, write_grid):
    plans = plans_for(
        write_grid, grid={"x": [1, 2]}, runs=[{"mode": "nan", "lr": 0.3}], name_by=["mode"]
    )
    assert [p.name for p in plans] == ["default", "default", "mode=nan"]
    assert plans[2].name == "mode=nan"
