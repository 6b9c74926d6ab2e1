"""The run record as notebooks use it: params, history, curves, metrics, status, environment."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

import cvlab
from cvlab.runs import RunRecord
from cvlab.runs.curves import metric_pairs
from cvlab.runs.run import project_root


def test_interactive_run_goes_to_experiments_interactive(in_tmp_project):
    (in_tmp_project / "notebooks").mkdir()
    import os

    os.chdir(in_tmp_project / "notebooks")
    run = cvlab.runs.start(params={"lr": 0.1}, seed=3)
    assert run.run_dir.parent == in_tmp_project / "experiments" / "interactive"
    record = RunRecord.load(run.run_dir)
    assert record.params == {"lr": 0.1} and record.seed == 3 and record.status == "running"


def test_record_has_environment_and_times(in_tmp_project):
    run = cvlab.runs.start()
    record = run.finish()
    env = record.environment
    for key in ("python", "tensorflow", "keras", "cvlab", "git_commit", "git_dirty", "host"):
        assert key in env
    assert env["keras"] and env["python"].count(".") == 2
    assert record.status == "ok" and record.duration_s is not None and record.duration_s >= 0
    on_disk = json.loads((run.run_dir / "record.json").read_text())
    assert on_disk["status"] == "ok" and on_disk["ended_at"]


def test_log_epoch_writes_history_and_curves(in_tmp_project, capsys):
    run = cvlab.runs.start()
    for epoch in (1, 2, 3):
        run.log_epoch(epoch, 3, loss=1 / epoch, val_loss=1.2 / epoch, accuracy=0.3 * epoch)
        history = pd.read_csv(run.run_dir / "history.csv")
        assert len(history) == epoch  # rewritten after every epoch, so a long run can be watched
    assert list(history.columns) == ["epoch", "loss", "val_loss", "accuracy"]
    curves = run.run_dir / "curves.png"
    assert curves.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "epoch 3/3 - loss 0.3333" in capsys.readouterr().out
    assert RunRecord.load(run.run_dir).epochs_completed == 3


def test_nan_loss_marks_diverged(in_tmp_project):
    run = cvlab.runs.start()
    run.log_epoch(1, loss=0.5)
    run.log_epoch(2, loss=float("nan"))
    assert run.diverged
    assert run.finish().status == "diverged"
    assert any("diverged" in n for n in RunRecord.load(run.run_dir).notes)


def test_metrics_accept_numpy_values(in_tmp_project):
    run = cvlab.runs.start()
    run.log_metrics(test_accuracy=np.float32(0.75), count=np.int64(3))
    record = RunRecord.load(run.run_dir)
    assert record.metrics == {"test_accuracy": 0.75, "count": 3}
    assert isinstance(record.metrics["count"], int)


def test_figures_notes_and_params(in_tmp_project):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    run = cvlab.runs.start(params={"a": 1})
    fig, ax = plt.subplots()
    ax.plot([1, 2])
    path = run.save_figure(fig, "line")
    run.note("looks fine")
    run.log_params(derived=2)
    record = RunRecord.load(run.run_dir)
    assert path.exists() and record.artifacts["figure:line"] == "figures/line.png"
    assert record.notes == ["looks fine"] and record.params == {"a": 1, "derived": 2}


def test_seed_makes_numpy_repeatable(in_tmp_project):
    cvlab.runs.start(seed=11)
    first = np.random.rand(3)
    cvlab.runs.start(seed=11)
    assert np.array_equal(first, np.random.rand(3))


def test_record_json_is_never_half_written(in_tmp_project, monkeypatch):
    run = cvlab.runs.start()
    run.log_metrics(a=1)
    good = (run.run_dir / "record.json").read_text()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        run.log_metrics(b=2)
    assert (run.run_dir / "record.json").read_text() == good
    assert not [p for p in run.run_dir.iterdir() if p.name.endswith(".tmp")]


def test_project_root_found_from_subfolder(in_tmp_project):
    sub = in_tmp_project / "a" / "b"
    sub.mkdir(parents=True)
    assert project_root(sub) == in_tmp_project


def test_metric_pairs_orders_loss_first():
    assert metric_pairs(["epoch", "accuracy", "val_accuracy", "loss", "val_loss", "lr"]) == [
        ("loss", "val_loss"),
        ("accuracy", "val_accuracy"),
    ]


def test_seed_reaches_keras(in_tmp_project):
    import keras

    cvlab.runs.start(seed=5)
    first = keras.ops.convert_to_numpy(keras.random.uniform((3,)))
    cvlab.runs.start(seed=5)
    assert np.array_equal(first, keras.ops.convert_to_numpy(keras.random.uniform((3,))))


def test_run_fail_is_kept(in_tmp_project):
    run = cvlab.runs.start()
    run.fail(RuntimeError("out of data"))
    record = RunRecord.load(run.run_dir)
    assert record.status == "failed" and record.error.type == "RuntimeError"


def test_save_image_writes_the_array_and_marks_the_thumbnail(tmp_path):

    run = cvlab.runs.start(tmp_path / "run", params={}, seed=0)
    grey = np.linspace(0.0, 1.0, 12).reshape(3, 4)
    rgb = np.full((5, 6, 3), 200, dtype=np.uint8)
    run.save_image(grey, "grey")
    path = run.save_image(rgb, "colour", thumbnail=True)
    assert np.asarray(Image.open(tmp_path / "run" / "images" / "grey.png"))[2, 3] == 255
    assert np.asarray(Image.open(path)).shape == (5, 6, 3)
    record = run.finish()
    assert record.artifacts["image:grey"] == "images/grey.png"
    assert record.artifacts["thumbnail"] == "images/colour.png"
    with pytest.raises(ValueError, match="HxW"):
        run.save_image(np.zeros((2, 2, 2)), "bad")
