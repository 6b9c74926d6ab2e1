"""Every run writes TensorBoard event files (issue 21, point 2), read back here with TensorBoard's
own code: the event accumulator its server uses (scalars per epoch equal `history.csv`, each
epoch once after a resume) and the HParams plugin's HTTP handlers (a grid's runs with their
parameters and the rank metric). Under every Keras backend: the writer needs no TensorFlow."""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest

import cvlab
from cvlab.runs.run import read_history
from cvlab.runs.tensorboard_log import (
    SESSION_SUFFIX,
    TENSORBOARD_DIR,
    hparam_value,
    write_session,
)

from conftest import light_spec

EPOCHS = 4


class Killed(Exception):
    """Stands for a SIGKILL at the end of an epoch, inside `fit`."""


def _events(folder: Path) -> dict[str, list]:
    """The events of each scalar tag of one TensorBoard run folder, as TensorBoard's
    server-side accumulator reads them (restart markers honoured)."""
    from tensorboard.backend.event_processing import plugin_event_accumulator as pea

    acc = pea.EventAccumulator(str(folder), size_guidance={pea.TENSORS: 0})
    acc.Reload()
    return {
        tag: acc.Tensors(tag) for tag in acc.Tags()["tensors"] if not tag.startswith("_hparams_/")
    }


def _scalars(folder: Path) -> dict[str, list[tuple[int, float]]]:
    """(step, value) of each scalar tag of one TensorBoard run folder."""
    from tensorboard.util import tensor_util

    return {
        tag: [(e.step, float(tensor_util.make_ndarray(e.tensor_proto))) for e in events]
        for tag, events in _events(folder).items()
    }


def _assert_scalars_equal_history(run_dir: Path) -> None:
    rows = read_history(run_dir / "history.csv")
    scalars = _scalars(run_dir / TENSORBOARD_DIR)
    columns = [c for c in rows[0] if c != "epoch"]
    assert set(columns) <= set(scalars)
    for column in columns:
        assert scalars[column] == [
            (int(row["epoch"]), float(np.float32(row[column]))) for row in rows
        ], column


def _model(seed: int):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.1, momentum=0.9),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


def _fit(run_dir: Path, seed: int, kill_after: int | None = None) -> None:
    """A notebook's training cell in a fresh `Run` (as a new kernel has): the run's Keras
    callback, epoch backups, and a 'kill' at the end of epoch `kill_after` (1-based)."""
    import keras

    from cvlab.train.checkpoints import checkpoint_callbacks

    class Kill(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == kill_after:
                raise Killed(f"killed after epoch {epoch + 1}")

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 4)).astype("float32"), rng.integers(0, 3, 32)
    run = cvlab.runs.start(run_dir)
    # the row first, then the kill, then the backup: the row of the killed epoch is on disk,
    # its backup is not, so the resumed training writes that epoch again
    callbacks = [run.keras_callback(), Kill(), *checkpoint_callbacks(run, every=1)]
    _model(seed).fit(
        x, y, epochs=EPOCHS, batch_size=8, validation_split=0.25, shuffle=False, verbose=0,
        callbacks=callbacks,
    )  # fmt: skip
    run.finish()


@pytest.mark.backends
def test_every_epoch_is_a_scalar_as_it_trains_equal_to_history_csv(in_tmp_project, keras_backend):
    """An interactive run (no grid) fitting with the run's Keras callback: each value of each
    row of `history.csv` is a scalar at step = epoch, on disk when the epoch ends."""
    import keras

    seen: list[dict[str, list]] = []

    class ReadBack(keras.callbacks.Callback):  # after the run's callback: a live reader's view
        def on_epoch_end(self, epoch, logs=None):
            seen.append(_scalars(self.run_dir / TENSORBOARD_DIR))

    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(32, 4)).astype("float32"), rng.integers(0, 3, 32)
    run = cvlab.runs.start()
    reader = ReadBack()
    reader.run_dir = run.run_dir
    _model(0).fit(
        x, y, epochs=3, batch_size=8, validation_split=0.25, verbose=0,
        callbacks=[run.keras_callback(), reader],
    )  # fmt: skip
    run.finish()
    assert run.run_dir.parent == in_tmp_project / "experiments" / "interactive"
    assert [len(s["loss"]) for s in seen] == [1, 2, 3]  # flushed at each epoch's end
    assert {"loss", "accuracy", "val_loss", "val_accuracy", "time_s"} <= set(seen[-1])
    _assert_scalars_equal_history(run.run_dir)
    assert run.record.artifacts["tensorboard"] == TENSORBOARD_DIR
    assert not list((run.run_dir / TENSORBOARD_DIR).glob(f"*{SESSION_SUFFIX}"))  # no grid


@pytest.mark.backends
def test_a_run_resumed_after_a_kill_reads_back_each_epoch_once(tmp_path, keras_backend):
    """Killed after epoch 3's row but before its backup: the next attempt (a new event file)
    trains epoch 3 again with other weights; the reader keeps the new epoch 3 only."""
    run_dir = tmp_path / "run"
    with pytest.raises(Killed):
        _fit(run_dir, seed=1, kill_after=3)
    first = _events(run_dir / TENSORBOARD_DIR)["loss"]
    assert [e.step for e in first] == [1, 2, 3]
    _fit(run_dir, seed=7)
    assert len(list((run_dir / TENSORBOARD_DIR).glob("events.out.tfevents.*"))) == 2
    loss = _events(run_dir / TENSORBOARD_DIR)["loss"]
    assert [e.step for e in loss] == list(range(1, EPOCHS + 1))
    assert loss[:2] == first[:2]  # kept as first written
    assert loss[2].wall_time > first[2].wall_time  # epoch 3 from the second attempt
    _assert_scalars_equal_history(run_dir)


@pytest.mark.backends
def test_a_training_resumed_in_the_same_process_voids_the_later_epochs(tmp_path):
    """`Run.resume_history` (a fit restarted from a backup, `initial_epoch=`): the steps after
    the backup are written again in the same file and read back once, with the new values."""
    run = cvlab.runs.start(tmp_path / "run")
    for epoch in range(1, 5):
        run.log_epoch(epoch, 4, loss=1.0 / epoch)
    run.resume_history(2)
    for epoch in (3, 4):
        run.log_epoch(epoch, 4, loss=10.0 + epoch)
    run.finish()
    assert _scalars(run.run_dir / TENSORBOARD_DIR)["loss"] == [
        (1, 1.0), (2, 0.5), (3, 13.0), (4, 14.0)
    ]  # fmt: skip
    _assert_scalars_equal_history(run.run_dir)


def _hparams_plugin(logdir: Path):
    """TensorBoard's HParams plugin over `logdir`, as `tensorboard --logdir` serves it, and a
    function posting to its handlers."""
    from tensorboard.backend import application
    from tensorboard.backend.event_processing import data_provider
    from tensorboard.backend.event_processing import plugin_event_multiplexer as pem
    from tensorboard.plugins import base_plugin
    from tensorboard.plugins.hparams import hparams_plugin
    from werkzeug import test as wtest
    from werkzeug import wrappers

    mux = pem.EventMultiplexer()
    mux.AddRunsFromDirectory(str(logdir))
    mux.Reload()
    context = base_plugin.TBContext(
        logdir=str(logdir),
        multiplexer=mux,
        data_provider=data_provider.MultiplexerDataProvider(mux, str(logdir)),
    )
    client = wtest.Client(
        application.TensorBoardWSGI([hparams_plugin.HParamsPlugin(context)]), wrappers.Response
    )

    def post(handler: str, request: dict) -> dict:
        response = client.post(
            f"/data/plugin/hparams/{handler}",
            data=json.dumps(request),
            content_type="application/json",
        )
        assert response.status_code == 200, response.get_data(as_text=True)
        return json.loads(response.get_data(as_text=True))

    return post


@pytest.mark.backends
def test_a_grids_runs_are_hparams_sessions_with_the_rank_metric(
    light_notebook, write_grid, run_cli
):
    """A grid of two light runs: the HParams dashboard lists both, with their parameters, the
    grid, status and the rank metric's value as a metric, next to the per-epoch ones."""
    code, _, err = run_cli(write_grid(light_spec(name="g")))
    assert code == 0, err
    experiments = run_cli.out / "experiments"
    post = _hparams_plugin(experiments)
    experiment = post("experiment", {"experimentName": ""})
    hparams = {h["name"]: h for h in experiment["hparamInfos"]}
    assert {"x", "lr", "grid"} <= set(hparams)
    assert hparams["x"]["differs"] and not hparams["lr"]["differs"]
    metrics = {m["name"]["tag"] for m in experiment["metricInfos"]}
    assert {"final/score", "loss", "val_loss", "accuracy"} <= metrics
    groups = post(
        "session_groups",
        {
            "experimentName": "",
            "allowedStatuses": [
                "STATUS_SUCCESS",
                "STATUS_FAILURE",
                "STATUS_RUNNING",
                "STATUS_UNKNOWN",
            ],
            "colParams": [],
            "startIndex": 0,
            "sliceSize": 10,
        },
    )["sessionGroups"]
    records = {
        path.parent.name: cvlab.runs.RunRecord.load(path.parent)
        for path in (experiments / "g").glob("*/record.json")
    }
    assert sorted(g["name"] for g in groups) == sorted(records)
    for group in groups:
        record = records[group["name"]]
        (session,) = group["sessions"]
        assert session["name"] == f"g/{record.run_id}/{TENSORBOARD_DIR}"
        assert session["status"] == "STATUS_SUCCESS"
        assert group["hparams"] == {"x": record.params["x"], "lr": 0.5, "grid": "g"}
        values = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
        assert values["final/score"] == pytest.approx(record.metrics["score"], rel=1e-6)
        assert values["loss"] == pytest.approx(record.epoch_metrics["loss"].last, rel=1e-6)


def test_the_session_is_replaced_when_a_run_is_published_again(tmp_path):
    """A run published twice (resumed, or the page rebuilt) keeps one session file, the last;
    a rank metric that is a `metric:best` of its history is written as its own scalar."""
    run = cvlab.runs.start(tmp_path / "run", params={"lr": 0.1, "schedule": {"step": 2}})
    for epoch, acc in ((1, 0.5), (2, 0.7), (3, 0.6)):
        run.log_epoch(epoch, 3, val_accuracy=acc)
    record = run.finish()
    first = write_session(run.run_dir, record, "val_accuracy:best", "max")
    second = write_session(run.run_dir, record, "val_accuracy:best", "max")
    folder = run.run_dir / TENSORBOARD_DIR
    assert list(folder.glob(f"*{SESSION_SUFFIX}")) == [second] and not first.exists()
    assert not [p for p in folder.iterdir() if p.name.startswith(".")]  # no staged file left
    scalars = _scalars(folder)
    assert scalars["final/val_accuracy:best"] == [(3, pytest.approx(0.7))]
    assert [step for step, _ in scalars["val_accuracy"]] == [1, 2, 3]


def test_parameters_become_values_the_hparams_dashboard_takes():
    assert hparam_value(np.float32(0.5)) == 0.5
    assert hparam_value(True) is True
    assert hparam_value("resnet") == "resnet"
    assert hparam_value({"b": [1, 2], "a": None}) == '{"a": null, "b": [1, 2]}'
    assert hparam_value(None) == "null"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_the_tensorboard_server_shows_a_resumed_run_once_and_its_session(tmp_path):
    """`tensorboard --logdir` with its default reader, the Rust data server (`--load_fast`):
    a run resumed in a new process after a kill (a second event file) and again in the same
    process shows each epoch once, the last values; the HParams dashboard lists its session."""
    logdir = tmp_path / "experiments"
    run_dir = logdir / "g" / "r1"
    killed = cvlab.runs.start(run_dir, params={"lr": 0.1})
    for epoch in (1, 2, 3):
        killed.log_epoch(epoch, 4, loss=1.0 / epoch)
    resumed = cvlab.runs.start(run_dir)  # the next kernel: a new file, from the backup of 2
    resumed.resume_history(2)
    for epoch in (3, 4):
        resumed.log_epoch(epoch, 4, loss=10.0 + epoch)
    resumed.resume_history(3)  # and once more in the same process
    resumed.log_epoch(4, 4, loss=24.0)
    resumed.log_metrics(score=0.75)
    record = resumed.finish()
    record.grid = "g"
    write_session(run_dir, record, "score", "max")

    port = _free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).with_name("tensorboard")), "--logdir", str(logdir),
         "--host", "127.0.0.1", "--port", str(port), "--load_fast", "true",
         "--reload_interval", "1"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}/data"
    run = f"g/r1/{TENSORBOARD_DIR}"
    try:
        points, deadline = [], time.monotonic() + 120
        while time.monotonic() < deadline and server.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                url = f"{base}/plugin/scalars/scalars?run={run}&tag=loss"
                points = json.load(urllib.request.urlopen(url, timeout=5))
                if len(points) >= 4:
                    break
            time.sleep(0.5)
        assert [(step, value) for _, step, value in points] == [
            (1, 1.0), (2, 0.5), (3, 13.0), (4, 24.0)
        ], server.stderr.read1().decode() if server.poll() is not None else points  # fmt: skip
        request = urllib.request.Request(
            f"{base}/plugin/hparams/session_groups",
            data=json.dumps(
                {
                    "experimentName": "",
                    "allowedStatuses": ["STATUS_SUCCESS"],
                    "colParams": [],
                    "startIndex": 0,
                    "sliceSize": 10,
                }  # fmt: skip
            ).encode(),
            headers={"Content-Type": "application/json"},
        )
        (group,) = json.load(urllib.request.urlopen(request, timeout=10))["sessionGroups"]
        assert group["hparams"] == {"lr": 0.1, "grid": "g"}
        values = {m["name"]["tag"]: m["value"] for m in group["metricValues"]}
        assert values["final/score"] == 0.75 and values["loss"] == 24.0
    finally:
        server.terminate()
        server.wait(timeout=30)
