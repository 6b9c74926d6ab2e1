"""`cvlab export mlflow`: a real grid's runs into a real MLflow store (SQLite back end), read back
with MLflow's own client; exporting again updates the same runs; bad input exits 2."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cvlab.cli import main as cvlab_main
from cvlab.report.store import LeaderboardStore
from cvlab.runs.record import RunRecord
from cvlab.runs.run import read_history
from cvlab.workspace import Workspace

from conftest import LIGHT_CELLS, light_spec
from notebook_builder import write_notebook

if importlib.util.find_spec("mlflow") is None:
    if os.environ.get("CI") == "true":  # CI installs the [mlflow] extra (make setup MLFLOW=1)
        pytest.fail("mlflow is not installed on CI: make setup MLFLOW=1", pytrace=False)
    pytest.skip("mlflow is not installed: make setup MLFLOW=1", allow_module_level=True)


@pytest.fixture(scope="module")
def grid_out(tmp_path_factory) -> Path:
    """The output folder of a finished two-run grid of the light notebook."""
    from cvlab.grid.cli import main as grid_main

    folder = tmp_path_factory.mktemp("grid")
    write_notebook(LIGHT_CELLS, folder / "light.ipynb")
    (folder / "g.yaml").write_text(yaml.safe_dump(light_spec(), sort_keys=False))
    assert grid_main([str(folder / "g.yaml"), "--out", str(folder / "out"), "--quiet"]) == 0
    return folder / "out"


@pytest.fixture
def workspace(grid_out: Path, tmp_path: Path) -> Workspace:
    """A copy of the grid's output folder that a test may change."""
    shutil.copytree(grid_out, tmp_path / "out")
    return Workspace.at(tmp_path / "out")


def _export(ws: Workspace, uri: str, *grids: str, capsys=None) -> int:
    return cvlab_main(["export", "mlflow", *grids, "--out", str(ws.root), "--tracking-uri", uri])


def _client(uri: str):
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _runs(uri: str, grid: str = "g"):
    client = _client(uri)
    experiment = client.get_experiment_by_name(grid)
    assert experiment is not None, f"no MLflow experiment {grid!r}"
    return {r.data.tags["cvlab.run_id"]: r for r in client.search_runs([experiment.experiment_id])}


def test_export_sends_params_epoch_metrics_final_metrics_tags_and_files(workspace, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert _export(workspace, uri) == 0
    records = {r.run_id: r for r in LeaderboardStore(workspace.leaderboard_db).records()}
    runs = _runs(uri)
    assert set(runs) == set(records)
    client = _client(uri)
    for run_id, run in runs.items():
        record = records[run_id]
        run_dir = workspace.run_dir("g", run_id)
        assert run.info.status == "FINISHED"
        assert run.info.run_name == record.name
        assert run.data.params["x"] == str(record.params["x"])
        assert run.data.params["lr"] == "0.5"
        tags = run.data.tags
        assert tags["cvlab.grid"] == "g" and tags["cvlab.status"] == "ok"
        assert tags["cvlab.backend"] == record.environment["backend"]
        if record.environment.get("git_commit"):
            assert tags["mlflow.source.git.commit"] == record.environment["git_commit"]
        # every epoch of history.csv is a step of its metric, with its value
        history = read_history(run_dir / "history.csv")
        for name in ("loss", "val_loss", "accuracy"):
            points = sorted(
                (m.step, m.value) for m in client.get_metric_history(run.info.run_id, name)
            )
            assert points == [(int(row["epoch"]), row[name]) for row in history]
        assert run.data.metrics["score"] == pytest.approx(record.metrics["score"])
        listed = {a.path for a in client.list_artifacts(run.info.run_id)}
        assert {"record.json", "run.html", "history.csv", "curves.png", "tensorboard"} <= listed
        local = client.download_artifacts(run.info.run_id, "record.json", str(tmp_path / run_id))
        assert RunRecord.model_validate_json(Path(local).read_text()).run_id == run_id


def test_exporting_again_updates_the_same_runs_without_doubling_steps(workspace, tmp_path):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    assert _export(workspace, uri, "g") == 0
    first = {run_id: run.info.run_id for run_id, run in _runs(uri).items()}
    assert _export(workspace, uri, "g") == 0
    assert {run_id: run.info.run_id for run_id, run in _runs(uri).items()} == first

    # one run goes on for a third epoch (as a resumed run does) and is exported again
    store = LeaderboardStore(workspace.leaderboard_db)
    record = store.records()[0]
    run_dir = workspace.run_dir("g", record.run_id)
    with open(run_dir / "history.csv", "a", encoding="utf-8") as fh:
        fh.write("3,0.25,0.4,0.8\n")
    record.epochs_completed = 3
    record.save(run_dir)
    store.upsert([record])
    assert _export(workspace, uri) == 0
    runs = _runs(uri)
    assert {run_id: run.info.run_id for run_id, run in runs.items()} == first
    client = _client(uri)
    steps = [m.step for m in client.get_metric_history(first[record.run_id], "loss")]
    assert sorted(steps) == [1, 2, 3]
    other = next(r for r in first if r != record.run_id)
    assert sorted(m.step for m in client.get_metric_history(first[other], "loss")) == [1, 2]
    assert runs[record.run_id].data.tags["cvlab.epochs_completed"] == "3"


def test_bad_input_exits_2_with_the_fix(workspace, tmp_path, capsys, monkeypatch):
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert cvlab_main(["export", "mlflow", "--out", str(workspace.root)]) == 2
    assert "--tracking-uri" in capsys.readouterr().err

    assert _export(workspace, uri, "nope") == 2
    err = capsys.readouterr().err
    assert "'nope'" in err and "grids there: g" in err

    assert _export(Workspace.at(tmp_path / "empty"), uri) == 2
    assert "no leaderboard here" in capsys.readouterr().err

    assert _export(workspace, "nosuchscheme://x") == 2
    assert "cannot open the MLflow tracking store" in capsys.readouterr().err

    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if the extra were not installed
    assert _export(workspace, uri) == 2
    assert "pip install -e '.[mlflow]'" in capsys.readouterr().err


def test_cvlab_and_its_grid_runs_do_not_import_mlflow():
    code = (
        "import sys, cvlab, cvlab.cli, cvlab.grid.runner, cvlab.report.publish, cvlab.runs.run\n"
        "assert 'mlflow' not in sys.modules, 'mlflow imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
