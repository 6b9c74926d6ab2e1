"""Bad input to `run_grid.py`: each case exits 2 with an error naming the file, the field and the
fix, runs nothing, and leaves an earlier grid's results in the same output folder untouched."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import pytest
import yaml

from cvlab.grid.cli import main

from notebook_builder import write_notebook

# A notebook whose parameters name registry entries (models, data sets, optimizers, schedules)
# and a data directory; it trains nothing.
REGISTRY_CELLS = [
    (
        "code",
        """
run_dir = None
x = 1
dataset: "DatasetName" = "image-folder"
dataset_options = {}
data_dir: "DataDirectory" = None
model_name: "ModelName" = "lenet"
optimizer: "OptimizerName" = "sgd"
schedule: "ScheduleName" = None
""",
    ),
    (
        "code",
        """
import cvlab

run = cvlab.runs.start(run_dir)
run.log_metrics(score=float(x))
run.finish()
""",
    ),
]


def _spec(**overrides) -> dict:
    spec = {
        "notebook": "reg.ipynb",
        "grid": {"x": [1]},
        "rank_by": {"metric": "score"},
    }
    spec.update(overrides)
    return spec


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A folder with the notebook, and an output folder holding one finished grid run."""
    root = tmp_path_factory.mktemp("bad-input")
    write_notebook(REGISTRY_CELLS, root / "reg.ipynb")
    (root / "good.yaml").write_text(yaml.safe_dump(_spec(name="good")))
    out = root / "out"
    assert main([str(root / "good.yaml"), "--out", str(out), "--quiet", "--no-prewarm"]) == 0
    return root, out


@pytest.fixture
def bad(project, capsys):
    """Write a grid file (a dict, or raw text), run the CLI on it against the output folder
    that holds the good run; check exit 2, nothing run, nothing changed; return stderr."""
    root, out = project
    counter = iter(range(1000))

    def _run(spec: dict | None = None, *, raw: str | None = None, args: tuple = ()) -> str:
        path = root / f"bad{next(counter)}.yaml"
        path.write_text(raw if raw is not None else yaml.safe_dump(spec, sort_keys=False))
        before = _snapshot(out)
        capsys.readouterr()
        code = main([str(path), "--out", str(out), "--quiet", *args])
        err = capsys.readouterr().err
        assert code == 2, err
        assert "Nothing was run." in err
        assert _snapshot(out) == before  # nothing run, nothing lost
        return err

    return _run


def test_malformed_yaml(bad):
    err = bad(raw="notebook: reg.ipynb\ngrid:\n  x: [1, 2\nrank_by: {metric: score}\n")
    assert "YAML syntax error" in err and "line " in err and ".yaml" in err and "Fix:" in err


@pytest.mark.parametrize(
    ("raw", "field", "words"),
    [
        ("- notebook: reg.ipynb\n- grid: {x: [1]}\n", "(top level)", "not a mapping"),
        ("notebook: reg.ipynb\ngrid: [1, 2]\nrank_by: {metric: score}\n", "grid", "dictionary"),
        ("notebook: reg.ipynb\ngrid: {x: 1}\nrank_by: {metric: score}\n", "grid.x", "list"),
        ("notebook: reg.ipynb\ngrid: {x: [1]}\nrank_by: score\n", "rank_by", "rank_by: {metric"),
    ],
)
def test_wrong_shape(bad, raw, field, words):
    err = bad(raw=raw)
    assert f": {field}:" in err and words in err and "Fix:" in err


def test_parameter_not_in_notebook(bad):
    err = bad(_spec(grid={"x": [1], "depth": [2, 3]}))
    assert "grid.depth" in err and "not defined in the parameters cell of reg.ipynb" in err
    assert "model_name" in err  # the fix lists the parameters the notebook does define


def test_wrong_type(bad):
    err = bad(_spec(grid={"x": [1, "two"]}))
    assert "grid.x" in err and "'two' is a str" in err and "notebook default is 1" in err


@pytest.mark.parametrize(
    ("field", "value", "kind", "close", "known"),
    [
        ("model_name", "lenett", "model", "lenet", "minivggnet"),
        ("dataset", "cifar-10", "data set", "cifar10", "tiny-imagenet"),
        ("optimizer", "adamm", "optimizer", "adam", "rmsprop"),
        ("schedule", "cosin", "schedule", "cosine", "polynomial"),
    ],
)
def test_unknown_registry_name(bad, field, value, kind, close, known):
    err = bad(_spec(params={field: value}))
    assert f"params.{field}" in err and f"unknown {kind} {value!r}" in err
    assert f"did you mean {close!r}" in err and known in err


def test_unknown_name_without_a_close_match_lists_the_known(bad):
    err = bad(_spec(grid={"x": [1], "model_name": ["lenet", "transformer"]}))
    assert "grid.model_name" in err and "unknown model 'transformer'" in err
    assert "did you mean" not in err and "resnet" in err


def test_bad_schedule_mapping(bad):
    err = bad(_spec(params={"schedule": {"name": "stepp", "every": 5}}))
    assert "params.schedule" in err and "unknown schedule 'stepp'" in err


def test_zero_runs(bad):
    err = bad(_spec(grid={"x": []}))
    assert "grid.x" in err and "empty list" in err


def test_more_runs_than_the_limit(bad, project, capsys, monkeypatch):
    monkeypatch.setattr("cvlab.grid.cli.RUN_LIMIT", 20)
    spec = _spec(grid={"x": list(range(25))})
    err = bad(spec)
    assert "expands to 25 runs, more than 20" in err and "--max-runs" in err
    # with --max-runs it is accepted (a dry run here, to run nothing)
    root, out = project
    path = root / "many.yaml"
    path.write_text(yaml.safe_dump(spec))
    assert main([str(path), "--out", str(out), "--dry-run", "--max-runs", "3"]) == 0
    assert "25 runs, 3 to run" in capsys.readouterr().out


def test_far_too_many_runs_is_refused_before_expanding(bad):
    # 120,000 combinations: refused from the list lengths, without building the product
    err = bad(_spec(grid={"x": list(range(400)), "model_name": ["lenet"] * 300}))
    assert "more than 100,000" in err


def test_notebook_without_parameters_cell(bad, project):
    import nbformat

    root, _ = project
    nb = write_notebook(REGISTRY_CELLS, root / "untagged.ipynb")
    book = nbformat.read(str(nb), as_version=4)
    book.cells[0].metadata["tags"] = []
    nbformat.write(book, str(nb))
    err = bad(_spec(notebook="untagged.ipynb", grid={}))
    assert "no cell tagged 'parameters'" in err and "untagged.ipynb" in err


def test_nonexistent_notebook(bad):
    err = bad(_spec(notebook="missing.ipynb"))
    assert "notebook 'missing.ipynb' not found" in err and "relative to the grid file" in err


def test_nonexistent_grid_file(project, capsys):
    root, out = project
    assert main([str(root / "absent.yaml"), "--out", str(out)]) == 2
    assert "no such grid file" in capsys.readouterr().err


def test_data_directory_that_does_not_exist(bad, project):
    root, _ = project
    err = bad(_spec(params={"data_dir": "no/such/folder"}))
    assert "params.data_dir" in err and "'no/such/folder' does not exist" in err
    assert str(root / "no" / "such" / "folder") in err
    err = bad(_spec(params={"dataset_options": {"directory": "nowhere"}}))
    assert "params.dataset_options" in err and "'nowhere' does not exist" in err


@pytest.mark.parametrize(
    ("dataset", "expected"),
    [("tiny-imagenet", "wnids.txt"), ("cifar10", "data_batch_1"), ("image-folder", "<class")],
)
def test_data_directory_with_the_wrong_layout(bad, project, dataset, expected):
    root, _ = project
    folder = root / f"wrong-{dataset}"
    (folder / "stuff").mkdir(parents=True, exist_ok=True)
    (folder / "stuff" / "notes.txt").write_text("not images")
    err = bad(_spec(params={"dataset": dataset, "data_dir": folder.name}))
    assert f"is not a {dataset} layout" in err and expected in err and "params.data_dir" in err


def test_every_problem_at_once(bad):
    err = bad(
        _spec(
            params={"optimizer": "sgdd", "data_dir": "nowhere"},
            grid={"x": [1, "a"], "colour": ["red"]},
        )
    )
    assert "invalid grid spec (4 problems)" in err
    for field in ("params.optimizer", "params.data_dir", "grid.x", "grid.colour"):
        assert field in err


def test_unwritable_output_folder(project, capsys):
    root, _ = project
    blocker = root / "a-file"
    blocker.write_text("not a folder")
    code = main([str(root / "good.yaml"), "--out", str(blocker / "out"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "cannot be written" in err and str(blocker) in err and "--out" in err


@pytest.mark.skipif(sys.platform == "win32" or __import__("os").geteuid() == 0, reason="root")
def test_read_only_output_folder(project, capsys, tmp_path):
    root, _ = project
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o555)
    try:
        code = main([str(root / "good.yaml"), "--out", str(out), "--quiet"])
    finally:
        out.chmod(0o755)
    assert code == 2 and "cannot be written" in capsys.readouterr().err


def test_too_little_free_space(project, capsys, monkeypatch):
    import shutil

    root, out = project
    usage = shutil.disk_usage(out)
    monkeypatch.setattr(
        "cvlab.grid.preflight.shutil.disk_usage", lambda _: usage._replace(free=10 * 2**20)
    )
    before = _snapshot(out)
    code = main([str(root / "good.yaml"), "--out", str(out), "--quiet", "--force"])
    err = capsys.readouterr().err
    assert code == 2 and "only 10.0 MiB free" in err and "Nothing was run." in err
    assert _snapshot(out) == before


def test_shared_out_needs_a_scheduler(project):
    root, out = project
    with pytest.raises(SystemExit) as info:
        main([str(root / "good.yaml"), "--out", str(out), "--shared-out"])
    assert info.value.code == 2
