"""The grid as a library: `cvlab.run_grid` returns typed results, names are checked from what the
notebook declares, the data a grid names is checked before any kernel, `run_notebook` takes the
grid's lock, and the run's kernel state is typed."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

import cvlab
from cvlab.errors import GridSpecError
from cvlab.grid.cli import main
from cvlab.grid.execute import _ACTIVE, _ACTIVE_LOCK, RunKernel, interrupt_active_runs
from cvlab.grid.lock import GridLock, GridLockedError
from cvlab.grid.runner import GridOptions, MissingDataError, RunResult
from cvlab.grid.spec import load_grid_spec
from cvlab.workspace import Workspace

from conftest import REPO, light_spec
from notebook_builder import write_notebook

# A notebook whose model parameter is called `net`: only its declaration says it names a model.
NET_CELLS = [
    (
        "code",
        """
from cvlab.param_types import DatasetName, ModelName

run_dir = None
net: ModelName = "resnet"
quoted: "ModelName" = "lenet"
plain = "resnet"
optimizer = "sgd"  # undeclared, though named like a registry: the notebook's own word
dataset: DatasetName = "shapes"
smoke = False
""",
    ),
    (
        "code",
        """
import cvlab

run = cvlab.runs.start(run_dir)
run.log_metrics(score=1.0 if smoke else 0.5, net_name=net)
run.finish()
""",
    ),
]


@pytest.fixture
def net_notebook(tmp_path: Path) -> Path:
    return write_notebook(NET_CELLS, tmp_path / "net.ipynb")


def _net_spec(**overrides) -> dict:
    spec = {"notebook": "net.ipynb", "grid": {"smoke": [True]}, "rank_by": {"metric": "score"}}
    spec.update(overrides)
    return spec


def _problems(path) -> list:
    with pytest.raises(GridSpecError) as info:
        load_grid_spec(path)
    return info.value.problems


# ---- run_grid from Python -------------------------------------------------------------------


def test_run_grid_returns_the_runs_results(light_notebook, write_grid, tmp_path):
    path = write_grid(light_spec(grid={"x": [1, 2], "mode": ["ok", "fail"]}))
    out = tmp_path / "out"
    result = cvlab.run_grid(path, out=out, echo=False, prewarm=False)
    assert result.name == "g" and not result.dry_run and not result.interrupted
    runs = result.by_name()
    assert set(runs) == {"x=1,mode=ok", "x=2,mode=ok", "x=1,mode=fail", "x=2,mode=fail"}
    ok = runs["x=2,mode=ok"]
    assert isinstance(ok, RunResult) and ok.status == "ok" and ok.ran
    assert ok.metrics == {"score": 1.0} and ok.rank_value == 1.0
    assert ok.run_dir == Workspace.at(out).run_dir("g", ok.run_id)
    assert (ok.run_dir / "record.json").is_file()
    assert result[ok.run_id] is ok
    failed = runs["x=1,mode=fail"]
    assert failed.status == "failed" and failed.error.type == "ValueError"
    assert {r.name for r in result.failed} == {"x=1,mode=fail", "x=2,mode=fail"}
    assert not result.ok and result.leaderboard.is_file()

    # A second call: finished runs are skipped, `only` keeps what matches; a dry run runs nothing.
    again = cvlab.run_grid(path, out=out, only={"mode": "ok"}, echo=False, prewarm=False)
    assert [r.name for r in again.runs] == ["x=1,mode=ok", "x=2,mode=ok"]
    assert not any(r.ran for r in again.runs) and again.ok
    dry = cvlab.run_grid(path, out=out, dry_run=True)
    assert dry.dry_run and {r.name: r.planned for r in dry.runs} == {
        "x=1,mode=ok": False,
        "x=2,mode=ok": False,
        "x=1,mode=fail": True,
        "x=2,mode=fail": True,
    }
    assert not any(r.ran for r in dry.runs)


def test_run_grid_raises_on_bad_input_and_runs_nothing(light_notebook, write_grid, tmp_path):
    out = tmp_path / "out"
    with pytest.raises(GridSpecError, match="grid.nope"):
        cvlab.run_grid(write_grid(light_spec(grid={"nope": [1]})), out=out)
    with pytest.raises(ValueError, match="workers"):
        GridOptions(workers=0)
    assert not (out / "experiments").exists()


# ---- names from what the notebook declares --------------------------------------------------


def test_a_parameter_called_net_declared_as_a_model_is_checked(net_notebook, write_grid):
    (p,) = _problems(write_grid(_net_spec(params={"net": "resnett"})))
    assert p.field == "params.net"
    assert "unknown model 'resnett'" in p.message and "did you mean 'resnet'" in p.message
    assert "minivggnet" in p.message  # the known names
    (p,) = _problems(write_grid(_net_spec(grid={"quoted": ["lenet", "lenett"]})))
    assert p.field == "grid.quoted" and "unknown model 'lenett'" in p.message
    # undeclared: the notebook's own business, whatever the parameter is called
    load_grid_spec(write_grid(_net_spec(params={"plain": "anything"})))
    load_grid_spec(write_grid(_net_spec(params={"optimizer": "lbfgs"})))
    (p,) = _problems(write_grid(_net_spec(params={"dataset": "shapess"})))
    assert "unknown data set 'shapess'" in p.message and "did you mean 'shapes'" in p.message


def test_every_name_bearing_parameter_of_the_chapters_is_declared():
    """The chapters' notebooks declare what their parameters name (cvlab.param_types)."""
    from cvlab.grid.name_checks import parameter_kind
    from cvlab.grid.notebook_params import read_notebook_parameters

    declared = {}
    for notebook in sorted((REPO / "notebooks").glob("*.ipynb")):
        parameters = read_notebook_parameters(notebook)
        declared[notebook.stem[:2]] = {
            name: p.declared_kind for name, p in parameters.items() if parameter_kind(p)
        }
    assert declared["10"] == {
        "dataset": "data set",
        "optimizer": "optimizer",
        "schedule": "schedule",
    }
    assert (
        declared["04"]["warmup_optimizer"] == "optimizer" and declared["04"]["backbone"] == "model"
    )
    assert declared["13"] == {"backbone": "model", "compare_backbone": "model"}  # optimizer: lbfgs
    assert declared["06"]["core"] == "model" and declared["07"]["transfer_backbone"] == "model"
    assert all(None not in kinds.values() for kinds in declared.values())


def test_run_notebook_checks_declared_names(net_notebook, tmp_path):
    with pytest.raises(GridSpecError, match="unknown model 'resnett'"):
        cvlab.run_notebook(net_notebook, {"net": "resnett"}, tmp_path / "out")
    assert not (tmp_path / "out" / "experiments").exists()


# ---- the data a grid names, before any kernel -----------------------------------------------


@pytest.fixture
def empty_data_cache(tmp_path, monkeypatch) -> Path:
    """No data set anywhere: an empty CVLAB_DATA, and a home without a Keras cache."""
    cache = tmp_path / "empty-cache"
    cache.mkdir()
    (tmp_path / "home").mkdir()
    monkeypatch.setenv("CVLAB_DATA", str(cache))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "home" / ".keras"))
    return cache


def test_missing_data_set_exits_2_before_any_kernel(
    net_notebook, write_grid, empty_data_cache, tmp_path, capsys
):
    path = write_grid(
        _net_spec(
            grid={},
            runs=[
                {"dataset": "cifar10", "net": "resnet"},
                {"dataset": "cifar10", "net": "lenet"},
                {"dataset": "shapes", "smoke": True},
            ],
        )
    )
    out = tmp_path / "out"
    code = main([str(path), "--out", str(out), "--quiet", "--no-prewarm"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "data set 'cifar10' is not in the data cache" in err and str(empty_data_cache) in err
    assert "2 runs need it" in err and "dataset=cifar10,net=resnet [" in err
    assert "dataset=cifar10,net=lenet [" in err and "smoke=True" not in err
    assert "cvlab data import cifar10" in err and "cvlab data fetch cifar10" in err
    assert "Nothing was run." in err
    assert not (out / "experiments").exists() and not (out / "logs").exists()  # no kernel
    with pytest.raises(MissingDataError) as info:
        cvlab.run_grid(path, out=out)
    assert [m.dataset for m in info.value.missing] == ["cifar10"]

    # the runs whose data is there still go
    code = main([str(path), "--out", str(out), "--quiet", "--no-prewarm", "--only", "smoke=true"])
    assert code == 0, capsys.readouterr().err
    assert len(list((out / "experiments" / "g").iterdir())) == 1


def test_resnet_grid_without_cifar10_exits_2_naming_it(empty_data_cache, tmp_path, capsys):
    out = tmp_path / "out"
    code = main([str(REPO / "grids" / "resnet_cifar.yaml"), "--out", str(out), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "data set 'cifar10'" in err and "4 runs need it" in err and "experiment=1" in err
    assert "cvlab data import cifar10" in err and "--only" in err
    assert not (out / "experiments").exists()
    # a dry run says so too, and runs nothing
    assert main([str(REPO / "grids" / "resnet_cifar.yaml"), "--out", str(out), "--dry-run"]) == 0
    assert "data set 'cifar10'" in capsys.readouterr().err


# ---- run_notebook and the grid lock ---------------------------------------------------------


def test_run_notebook_takes_the_grids_lock(light_notebook, tmp_path):
    out = tmp_path / "out"
    # a second holder: a grid of the same name, into the same folder
    with GridLock(Workspace.at(out), "light"), pytest.raises(GridLockedError, match="is held by"):
        cvlab.run_notebook(light_notebook, {"x": 2}, out)
    assert not (out / "experiments" / "light").exists()
    record = cvlab.run_notebook(light_notebook, {"x": 2}, out)  # released: it runs
    assert record.status == "ok"
    lock = GridLock(Workspace.at(out), "light").acquire()  # and run_notebook released it
    lock.release()


# ---- typed state and papermill's registries -------------------------------------------------


def test_run_kernel_state_is_typed_and_interrupts_its_process_group():
    proc = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)"], start_new_session=True
    )
    try:
        kernel = RunKernel(km=SimpleNamespace(provisioner=SimpleNamespace(pid=proc.pid)))
        idle = RunKernel()  # no kernel started yet: nothing to signal
        with _ACTIVE_LOCK:
            _ACTIVE.update({"run-a": kernel, "run-b": idle})
        try:
            assert interrupt_active_runs({"run-a", "run-b"}) == ["run-a", "run-b"]
        finally:
            with _ACTIVE_LOCK:
                _ACTIVE.pop("run-a"), _ACTIVE.pop("run-b")
        assert kernel.cancelled and idle.cancelled
        deadline = time.monotonic() + 10
        while proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        assert proc.returncode == -signal.SIGINT
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def test_papermill_writes_through_the_registered_atomic_handler():
    from papermill.iorw import LocalHandler, papermill_io

    from cvlab.grid.engine import AtomicLocalHandler

    assert isinstance(papermill_io.get_handler("/some/run.ipynb"), AtomicLocalHandler)
    relative = papermill_io.get_handler("run.ipynb")
    assert isinstance(relative, LocalHandler) and not isinstance(relative, AtomicLocalHandler)


def test_the_yaml_dialect_is_a_foundation_module():
    from cvlab.config_yaml import parse_yaml
    from cvlab.grid import spec

    assert spec.parse_yaml is parse_yaml  # the old import path still works
    assert parse_yaml("lr: [1e-3, .5]") == {"lr": [0.001, 0.5]}
    with pytest.raises(Exception, match="python/object"):
        parse_yaml("x: !!python/object/apply:os.system [echo]")


def test_import_cvlab_stays_light_with_run_grid():
    code = (
        "import sys, cvlab; assert callable(cvlab.run_grid); "
        "print(sorted(m for m in ('papermill', 'tensorflow', 'keras', 'h5py', 'pandas') "
        "if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
