"""Untrusted grid files: YAML builds no Python objects, parameter values reach the notebook as
literals (never code), and no value can make a run write outside `experiments/`."""

from __future__ import annotations

import ast
from pathlib import Path

import nbformat
import pytest

from cvlab.grid.expand import RunPlan
from cvlab.runs import RunRecord
from cvlab.workspace import Workspace

from conftest import light_spec


def _all_files(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    "tag",
    [
        "!!python/object/apply:os.system ['touch {marker}']",
        "!!python/object:os.system {{}}",
        "!!python/name:os.system ''",
    ],
)
def test_python_yaml_tags_are_refused(light_notebook, write_grid, run_cli, tmp_path, tag):
    marker = tmp_path / "PWNED"
    raw = (
        "notebook: light.ipynb\n"
        f"params:\n  mode: {tag.format(marker=marker)}\n"
        "rank_by: {metric: score}\n"
    )
    code, _, err = run_cli(write_grid(raw=raw))
    assert code == 2
    assert "YAML tag refused" in err and "python/" in err and "g.yaml" in err and "Fix:" in err
    assert not marker.exists() and not (run_cli.out / "experiments").exists()


INJECTIONS = [
    "__import__('os').system('touch {marker}')",
    "x'); __import__('os').system('touch {marker}'); ('",
    '"""\n__import__("os").system("touch {marker}")\n"""',
]


def test_parameter_values_reach_the_notebook_as_literals(
    light_notebook, write_grid, run_cli, tmp_path
):
    marker = tmp_path / "PWNED"
    values = [v.format(marker=marker) for v in INJECTIONS]
    code, _, err = run_cli(write_grid(light_spec(grid={"mode": values})))
    assert code == 0, err
    assert not marker.exists()  # no value was executed
    ws = Workspace.at(run_cli.out)
    runs = [RunRecord.load(d) for d in (ws.experiments / "g").iterdir()]
    assert sorted(r.params["mode"] for r in runs) == sorted(values)  # the exact strings
    for record in runs:
        assert record.status == "ok" and record.metrics["score"] == 0.5  # the `else` branch
        nb = nbformat.read(ws.run_dir("g", record.run_id) / "run.ipynb", as_version=4)
        injected = next(c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", []))
        # the injected cell only assigns constants: no call, no other statement
        tree = ast.parse(injected.source)
        assigned = {}
        for node in tree.body:
            assert isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant), node
            assigned[node.targets[0].id] = node.value.value
        assert assigned["mode"] == record.params["mode"]


def test_a_value_like_a_path_cannot_leave_experiments(
    light_notebook, write_grid, run_cli, tmp_path
):
    values = ["../../x", "/etc/evil", "..", "a/../../b"]
    grid = write_grid(light_spec(grid={"mode": values}))
    before = _all_files(tmp_path)
    code, _, err = run_cli(grid)
    assert code == 0, err
    ws = Workspace.at(run_cli.out)
    created = _all_files(tmp_path) - before
    # every new file is inside the output folder, under its three folders
    assert created and all(
        any(folder in p.parents for folder in (ws.experiments, ws.logs, ws.figs)) for p in created
    )
    run_dirs = sorted((ws.experiments / "g").iterdir())
    assert len(run_dirs) == 4
    for run_dir in run_dirs:  # named by the run's id, not by its values
        assert len(run_dir.name) == 12 and all(c in "0123456789abcdef" for c in run_dir.name)
    names = {RunRecord.load(d).name for d in run_dirs}
    assert names == {f"mode={v}" for v in values}  # the values are kept, as text
    assert not (tmp_path.parent / "x").exists() and not (tmp_path / "x").exists()


def test_a_grid_name_cannot_name_a_path(light_notebook, write_grid, run_cli):
    code, _, err = run_cli(write_grid(light_spec(name="../../evil")))
    assert code == 2 and ": name:" in err
    assert not (run_cli.out / "experiments").exists()


def test_files_returned_by_a_worker_cannot_land_outside_their_run(tmp_path, light_notebook):
    """Dask returned mode: a run's files are written only into its own places in the driver's
    output folder; a path that climbs out (or is absolute) is refused before anything is written."""
    from cvlab.grid.remote import RunOutput, unpack_run

    ws = Workspace.at(tmp_path / "out")
    plan = RunPlan(run_id="0123456789ab", name="n", grid="g", notebook=light_notebook, params={})
    record = RunRecord(run_id=plan.run_id, grid="g", status="ok")
    good = {"experiments/g/0123456789ab/history.csv": b"epoch\n1\n"}
    for evil in (
        "experiments/g/0123456789ab/../../../../escaped.txt",
        "/tmp/escaped.txt",
        "experiments/g/other_run/record.json",
        "logs/leaderboard.db",
    ):
        output = RunOutput(record=record, files={**good, evil: b"x"})
        with pytest.raises(ValueError, match="refused file"):
            unpack_run(ws, plan, output)
        assert not (tmp_path / "escaped.txt").exists()
        assert not ws.run_dir("g", plan.run_id).exists()  # nothing written at all
    unpack_run(ws, plan, RunOutput(record=record, files=good))
    assert RunRecord.load(ws.run_dir("g", plan.run_id)).status == "ok"
