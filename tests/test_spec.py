"""Grid spec validation: every kind of bad input is reported once, with file, field and fix."""

from __future__ import annotations

import pytest

from cvlab.errors import GridSpecError
from cvlab.grid.spec import load_grid_spec

from conftest import LIGHT_CELLS, light_spec
from notebook_builder import write_notebook


def problems_of(path) -> list:
    with pytest.raises(GridSpecError) as info:
        load_grid_spec(path)
    return info.value.problems


def only_problem(path):
    problems = problems_of(path)
    assert len(problems) == 1, problems
    return problems[0]


def test_valid_spec_loads(light_notebook, write_grid):
    grid = load_grid_spec(write_grid(light_spec()))
    assert grid.name == "g"
    assert grid.notebook == light_notebook.resolve()
    assert set(grid.parameters) == {"run_dir", "seed", "x", "lr", "mode", "sleep_s"}


def test_unknown_top_level_key(light_notebook, write_grid):
    p = only_problem(write_grid(light_spec(gird={"x": [1]})))
    assert p.field == "gird"
    assert "unknown key 'gird'" in p.message
    assert "grid" in p.fix and str(p.file).endswith("g.yaml")


def test_unknown_key_in_rank_by(light_notebook, write_grid):
    p = only_problem(write_grid(light_spec(rank_by={"metric": "score", "order": "max"})))
    assert p.field == "rank_by.order"
    assert "mode" in p.fix


def test_bad_rank_mode(light_notebook, write_grid):
    p = only_problem(write_grid(light_spec(rank_by={"metric": "score", "mode": "biggest"})))
    assert p.field == "rank_by.mode"
    assert "max" in p.fix and "min" in p.fix


def test_missing_rank_by(light_notebook, write_grid):
    spec = light_spec()
    del spec["rank_by"]
    p = only_problem(write_grid(spec))
    assert p.field == "rank_by" and "missing" in p.message


@pytest.mark.parametrize(
    ("where", "spec_change", "field"),
    [
        ("params", {"params": {"lr": 0.5, "momentum": 0.9}}, "params.momentum"),
        ("grid", {"grid": {"x": [1], "depth": [2, 3]}}, "grid.depth"),
        ("runs", {"runs": [{"x": 3, "width": 8}]}, "runs[0].width"),
    ],
)
def test_parameter_not_in_notebook(light_notebook, write_grid, where, spec_change, field):
    p = only_problem(write_grid(light_spec(**spec_change)))
    assert p.field == field
    assert "not defined in the parameters cell of light.ipynb" in p.message
    assert "lr" in p.fix and "x" in p.fix  # lists what the notebook does define


@pytest.mark.parametrize(
    ("spec_change", "field", "why"),
    [
        ({"params": {"lr": "fast"}}, "params.lr", "'fast' is a str"),
        ({"grid": {"x": [1, 2.5]}}, "grid.x", "2.5 is a float"),
        ({"grid": {"x": [True]}}, "grid.x", "True is a bool"),
        ({"runs": [{"mode": 3}]}, "runs[0].mode", "3 is a int"),
    ],
)
def test_type_does_not_match_notebook_default(light_notebook, write_grid, spec_change, field, why):
    p = only_problem(write_grid(light_spec(**spec_change)))
    assert p.field == field
    assert why in p.message
    assert "notebook default" in p.message


def test_int_accepted_where_default_is_float(light_notebook, write_grid):
    load_grid_spec(write_grid(light_spec(params={"lr": 1})))


@pytest.mark.parametrize(
    ("spec_change", "field"),
    [({"grid": {"x": []}}, "grid.x"), ({"seeds": []}, "seeds"), ({"runs": []}, "runs")],
)
def test_empty_lists(light_notebook, write_grid, spec_change, field):
    p = only_problem(write_grid(light_spec(**spec_change)))
    assert p.field == field
    assert "empty list" in p.message


def test_missing_notebook(tmp_path, write_grid):
    p = only_problem(write_grid(light_spec(notebook="nope.ipynb")))
    assert p.field == "notebook"
    assert "not found" in p.message and "relative to the grid file" in p.fix


def test_yaml_syntax_error(light_notebook, write_grid):
    p = only_problem(
        write_grid(raw="notebook: light.ipynb\ngrid:\n  x: [1, 2\nrank_by: {metric: s}\n")
    )
    assert p.field.startswith("line ")
    assert "YAML syntax error" in p.message


def test_not_a_mapping(light_notebook, write_grid):
    p = only_problem(write_grid(raw="- just\n- a list\n"))
    assert "not a mapping" in p.message


def test_missing_file(tmp_path):
    p = only_problem(tmp_path / "absent.yaml")
    assert "no such grid file" in p.message


def test_notebook_without_parameters_cell(tmp_path, write_grid):
    cells = [("md", "x"), ("code", "run_dir = None\nx = 1")]
    nb = write_notebook(cells, tmp_path / "untagged.ipynb")
    import nbformat

    book = nbformat.read(str(nb), as_version=4)
    book.cells[1].metadata["tags"] = []
    nbformat.write(book, str(nb))
    p = only_problem(write_grid(light_spec(notebook="untagged.ipynb", grid={}, params={})))
    assert "no cell tagged 'parameters'" in p.message


def test_notebook_must_define_run_dir(tmp_path, write_grid):
    write_notebook([("code", "x = 1")], tmp_path / "norundir.ipynb")
    p = only_problem(write_grid(light_spec(notebook="norundir.ipynb", params={})))
    assert "does not define 'run_dir'" in p.message and "run_dir = None" in p.fix


def test_run_dir_is_reserved(light_notebook, write_grid):
    p = only_problem(write_grid(light_spec(params={"run_dir": "elsewhere"})))
    assert p.field == "params.run_dir" and "set by the runner" in p.message


def test_seeds_need_a_seed_parameter(tmp_path, write_grid):
    cells = [(k, s.replace("seed = 0\n", "")) for k, s in LIGHT_CELLS]
    write_notebook(cells, tmp_path / "noseed.ipynb")
    p = only_problem(write_grid(light_spec(notebook="noseed.ipynb", seeds=[1, 2])))
    assert p.field == "seeds" and "'seed'" in p.message


def test_param_both_fixed_and_varied(light_notebook, write_grid):
    p = only_problem(write_grid(light_spec(params={"x": 1}, grid={"x": [1, 2]})))
    assert "both a fixed param and a grid axis" in p.message


def test_every_problem_reported_once(light_notebook, write_grid):
    spec = light_spec(
        colour="red",
        params={"lr": "fast", "momentum": 0.9},
        grid={"x": [], "mode": ["ok"]},
        seeds=[],
        timeout=-5,
    )
    problems = problems_of(write_grid(spec))
    fields = [p.field for p in problems]
    assert sorted(fields) == sorted(
        ["colour", "params.lr", "params.momentum", "grid.x", "seeds", "timeout"]
    )
    assert len(fields) == len(set(fields))
    text = str(GridSpecError(problems))
    assert text.startswith("invalid grid spec (6 problems)")
    assert all("Fix:" in line for line in text.splitlines()[1:])


def test_scientific_notation_is_a_float(light_notebook, write_grid):
    grid = load_grid_spec(
        write_grid(raw="notebook: light.ipynb\ngrid: {lr: [1e-3, 5e-4]}\nrank_by: {metric: s}\n")
    )
    assert grid.spec.grid["lr"] == [0.001, 0.0005]


def test_infinite_timeout(light_notebook, write_grid):
    p = only_problem(write_grid(raw="notebook: light.ipynb\ntimeout: .inf\nrank_by: {metric: s}\n"))
    assert p.field == "timeout"


def test_grid_file_not_utf8(light_notebook, tmp_path):
    path = tmp_path / "latin.yaml"
    path.write_bytes("notebook: light.ipynb\ndescription: caf\xe9\n".encode("latin-1"))
    assert "not UTF-8" in only_problem(path).message


def test_notebook_that_is_not_json(tmp_path, write_grid):
    (tmp_path / "broken.ipynb").write_text("<<<<<<< HEAD\n{}\n")
    p = only_problem(write_grid(light_spec(notebook="broken.ipynb")))
    assert p.field == "notebook" and "not a readable notebook" in p.message


def test_file_name_that_cannot_name_a_folder(light_notebook, write_grid):
    p = only_problem(write_grid(light_spec(), name="odd #1.yaml"))
    assert p.field == "name" and "name:" in p.fix
    load_grid_spec(write_grid(light_spec(name="odd_1"), name="odd #2.yaml"))


def test_name_by_must_name_parameters(light_notebook, write_grid):
    p = only_problem(write_grid(light_spec(name_by=["colour"])))
    assert p.field == "name_by" and "'colour' is not a parameter" in p.message


def test_prewarm_lists_module_names(light_notebook, write_grid):
    grid = load_grid_spec(write_grid(light_spec(prewarm=["keras", "sklearn.datasets"])))
    assert grid.spec.prewarm == ["keras", "sklearn.datasets"]
    problems = problems_of(write_grid(light_spec(prewarm=["keras", "sklearn datasets", 3])))
    assert [p.field for p in problems] == ["prewarm.1", "prewarm.2"]
    assert problems[0].message == "'sklearn datasets' is not a Python module name"
    assert "prewarm: [keras" in problems[0].fix and str(problems[0].file).endswith("g.yaml")
    p = only_problem(write_grid(light_spec(prewarm="keras")))
    assert p.field == "prewarm" and "list" in p.message
