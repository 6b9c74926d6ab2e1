"""A run killed mid-training resumes from its last backup with its whole history: every epoch
in `history.csv` exactly once, the rows written before the kill unchanged (byte for byte), and
the `metric:best` summaries of the record taken from all of them (issue 19, "Faults").

The rule when a kill lands between an epoch's row and its backup: the backup's epoch is the
truth. Rows up to it are kept as written; a later row is dropped and its epoch trained again.
`EpochBackup` writes a backup only after its epoch's row, so a backup is never ahead of the
history, whatever the order of the callbacks.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

import cvlab
from cvlab.runs.epoch_metrics import summarize_history
from cvlab.runs.run import read_history

from conftest import backend_env

REPO = Path(__file__).resolve().parents[1]
RUN_GRID = REPO / "run_grid.py"


class Killed(Exception):
    """Stands for a SIGKILL inside `fit` in the in-process tests."""


def _kill_at(epoch: int):
    """A callback that 'kills' the process at the end of 0-based `epoch`, where it stands."""
    import keras

    class _Kill(keras.callbacks.Callback):
        def on_epoch_end(self, e, logs=None):
            if e == epoch:
                raise Killed(f"killed at the end of epoch {e + 1}")

    return _Kill()


def _data(n=32, features=4, classes=3):
    rng = np.random.default_rng(0)
    return rng.normal(size=(n, features)).astype("float32"), rng.integers(0, classes, n)


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


EPOCHS = 5


def _fit(run_dir: Path, seed: int, order: str, kill_at: int | None = None):
    """One attempt of a notebook's training cell, in a fresh `Run` (as a new kernel has):
    the history callback and the backup in `order`, a kill between them at `kill_at`."""
    from cvlab.train.checkpoints import checkpoint_callbacks

    run = cvlab.runs.start(run_dir)
    history = run.keras_callback()
    backup = checkpoint_callbacks(run.run_dir, every=1)  # the folder, as the recipes pass it
    kill = [_kill_at(kill_at)] if kill_at is not None else []
    callbacks = [history, *kill, *backup] if order == "row-first" else [*backup, *kill, history]
    model = _model(seed)
    fitted = model.fit(
        *_data(), epochs=EPOCHS, batch_size=8, shuffle=False, verbose=0, callbacks=callbacks
    )
    return run, model, fitted


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def _check_whole(run_dir: Path, before: list[str], kept: int, epochs: int) -> None:
    """Every epoch 1..`epochs` once, the header and the first `kept` rows as `before` had them,
    and the record's epoch summaries over all of them."""
    rows = read_history(run_dir / "history.csv")
    assert [row["epoch"] for row in rows] == list(range(1, epochs + 1))
    after = _lines(run_dir / "history.csv")
    assert after[: 1 + kept] == before[: 1 + kept]
    record = cvlab.runs.RunRecord.load(run_dir)
    assert record.epochs_completed == epochs
    assert record.epoch_metrics == summarize_history(rows)
    losses = [row["loss"] for row in rows]
    assert record.epoch_metrics["loss"].min == min(losses)
    assert record.epoch_metrics["loss"].min_epoch == 1 + losses.index(min(losses))


@pytest.mark.backends
@pytest.mark.parametrize("order", ["row-first", "backup-first"])
def test_a_kill_between_row_and_backup_keeps_every_epoch_once(tmp_path, order):
    from cvlab.train.checkpoints import backup_epoch

    run_dir = tmp_path / "run"
    with pytest.raises(Killed):
        _fit(run_dir, seed=1, order=order, kill_at=2)
    before = _lines(run_dir / "history.csv")
    # row-first: epoch 3's row is written, its backup is not; backup-first: the backup waits
    # for its row, so neither is (without the wait: a backup of 3 with no row 3, lost for good)
    assert len(before) - 1 == (3 if order == "row-first" else 2)
    assert backup_epoch(run_dir) == 2

    _run, _model_, fitted = _fit(run_dir, seed=7, order=order)
    assert len(fitted.history["loss"]) == EPOCHS - 2  # resumed after epoch 2
    _check_whole(run_dir, before, kept=2, epochs=EPOCHS)
    assert not (run_dir / "backup").exists()


@pytest.mark.backends
def test_a_kill_inside_the_backup_save_resumes_from_the_epoch_the_weights_hold(
    tmp_path, monkeypatch
):
    """Weights renamed in place, metadata not yet: the weights' own epoch stamp is the truth,
    so the resumed model ends with the weights of an uninterrupted run."""
    from cvlab.train import checkpoints

    whole_run, whole, _ = _fit(tmp_path / "whole", seed=1, order="row-first")

    written = checkpoints.write_json_atomic
    calls = []

    def dies_on_the_third(path, obj):
        calls.append(obj)
        if len(calls) == 3:
            raise Killed("killed between the weights and the metadata of epoch 3")
        return written(path, obj)

    run_dir = tmp_path / "run"
    monkeypatch.setattr(checkpoints, "write_json_atomic", dies_on_the_third)
    with pytest.raises(Killed):
        _fit(run_dir, seed=1, order="row-first")
    monkeypatch.setattr(checkpoints, "write_json_atomic", written)
    before = _lines(run_dir / "history.csv")
    assert (run_dir / "backup" / "training_metadata.json").read_text().count('"epoch": 2')
    assert checkpoints.backup_epoch(run_dir) == 3  # the weights file says what it holds

    _run, resumed, fitted = _fit(run_dir, seed=7, order="row-first")
    assert len(fitted.history["loss"]) == EPOCHS - 3
    _check_whole(run_dir, before, kept=3, epochs=EPOCHS)
    for a, b in zip(whole.get_weights(), resumed.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.backends
def test_the_history_callback_keeps_the_rows_under_any_backup_callback(tmp_path):
    """Keras's own `BackupAndRestore`, which knows nothing of the run: the history callback
    sees `fit` start after epoch 0 and keeps the rows up to there."""
    import keras

    run_dir = tmp_path / "run"

    def attempt(seed, kill_at=None):
        run = cvlab.runs.start(run_dir)
        kill = [_kill_at(kill_at)] if kill_at is not None else []
        callbacks = [
            run.keras_callback(),
            *kill,
            keras.callbacks.BackupAndRestore(str(tmp_path / "keras-backup")),
        ]
        return _model(seed).fit(
            *_data(), epochs=EPOCHS, batch_size=8, shuffle=False, verbose=0, callbacks=callbacks
        )

    with pytest.raises(Killed):
        attempt(1, kill_at=3)  # rows 1-4 written, backup of 3
    before = _lines(run_dir / "history.csv")
    assert len(before) - 1 == 4
    assert len(attempt(7).history["loss"]) == EPOCHS - 3
    _check_whole(run_dir, before, kept=3, epochs=EPOCHS)


def test_history_rows_read_back_exactly(tmp_path):
    """`history.csv` rewritten after a resume keeps its earlier rows byte for byte: awkward
    floats, NaN, infinities and a column that appears later included."""
    run = cvlab.runs.start(tmp_path / "run")
    run.log_epoch(1, loss=0.1 + 0.2, accuracy=1 / 3)
    run.log_epoch(2, loss=math.nan, accuracy=1e-300, val_loss=5e-324)
    run.log_epoch(3, loss=math.inf, accuracy=2 / 3, val_loss=1.0000000000000002)
    before = _lines(run.run_dir / "history.csv")

    again = cvlab.runs.start(run.run_dir)  # a new process: nothing in memory
    again.resume_history(3)
    again.log_epoch(4, loss=0.5, accuracy=0.75, val_loss=0.25)
    after = _lines(run.run_dir / "history.csv")
    assert after[:4] == before and len(after) == 5
    assert read_history(run.run_dir / "history.csv")[1]["val_loss"] == 5e-324

    third = cvlab.runs.start(run.run_dir)
    third.resume_history(2)  # the backup holds 2 epochs: rows 3 and 4 are trained again
    assert _lines(run.run_dir / "history.csv") == before[:3]
    assert third.record.epochs_completed == 2
    assert third.record.epoch_metrics["accuracy"].max == 1 / 3  # from the rows kept


# -- the real thing: a grid process killed mid-training, then run again ---------------------

SMOKE = {
    "smoke": True,
    "experiment": 0,
    "dataset": "shapes",
    "dataset_options": {"size": 32, "num_classes": 10, "samples_per_class": 12},
    "preset": "cifar10",
    "stages": [1, 1, 1],
    "filters": [4, 4, 8, 8],
    "reg": 0.0005,
    "epochs": 5,
    "batch_size": 16,
    "checkpoint_every": 1,
    "augment": None,
    "schedule": {"name": "polynomial", "power": 1.0},
    "book_value": None,
    "book_source": "smoke run: not comparable with the book",
}


def _descendants(pid: int) -> list[int]:
    """The processes under `pid`, from /proc (Linux; the test is skipped elsewhere)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # "pid (name) state ppid ...": the name may hold spaces, so split after ")"
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    found, todo = [], [pid]
    while todo:
        pid = todo.pop()
        children = [child for child, parent in parents.items() if parent == pid]
        found += children
        todo += children
    return found


def _kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the driver and everything under it (the kernel leads a process group of its
    own), as an out-of-memory killer or a lost machine would."""
    ours = os.getpgid(0)
    for pid in [proc.pid, *_descendants(proc.pid)]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            group = os.getpgid(pid)
            if group != ours:  # the driver's session, the kernel's group: never pytest's own
                os.killpg(group, signal.SIGKILL)
    proc.wait(timeout=60)


@pytest.mark.slow
@pytest.mark.backends
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads processes from /proc")
def test_a_killed_grid_run_resumes_with_its_whole_history(tmp_path, keras_backend):
    """The ResNet smoke row of the issue, 5 epochs with a backup after each, SIGKILLed (driver
    and kernel) once two epochs are in `history.csv`, then the grid run again."""
    from cvlab.train.checkpoints import backup_epoch

    grid = tmp_path / "resume.yaml"
    spec = {
        "notebook": str(REPO / "notebooks" / "10_resnet.ipynb"),
        "params": SMOKE,
        "rank_by": {"metric": "rank1", "mode": "max"},
    }
    grid.write_text(yaml.safe_dump(spec, sort_keys=False))
    out = tmp_path / "out"
    cmd = [sys.executable, str(RUN_GRID), str(grid), "--out", str(out), "--quiet", "--no-prewarm"]
    # The suite's own backend (`make test` runs this file again under jax and torch).
    env = backend_env(keras_backend, CVLAB_DATA=str(tmp_path / "cache"))
    log = open(tmp_path / "driver.log", "a")  # noqa: SIM115 (closed at the end)
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True)  # fmt: skip
    try:
        deadline = time.monotonic() + 600
        history = None
        while time.monotonic() < deadline and proc.poll() is None:
            found = sorted(out.glob("experiments/*/*/history.csv"))
            if found and len(_lines(found[0])) - 1 >= 2:
                history = found[0]
                break
            time.sleep(0.02)
    finally:
        _kill_tree(proc)
    assert history is not None, (tmp_path / "driver.log").read_text()[-3000:]
    run_dir = history.parent
    before = _lines(history)
    kept = backup_epoch(run_dir)
    assert 1 <= kept < SMOKE["epochs"] and len(before) - 1 < SMOKE["epochs"], before
    assert cvlab.runs.RunRecord.load(run_dir).status == "running"  # killed, not finished

    again = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, timeout=900)
    log.close()
    assert again.returncode == 0, (tmp_path / "driver.log").read_text()[-3000:]
    record = cvlab.runs.RunRecord.load(run_dir)
    assert record.status == "ok"
    _check_whole(run_dir, before, kept=kept, epochs=SMOKE["epochs"])
    assert not (run_dir / "backup").exists()
    assert "resuming 1 interrupted runs" in (out / "logs" / record.grid / "grid.log").read_text()
