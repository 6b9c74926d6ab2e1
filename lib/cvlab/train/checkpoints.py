"""Interrupt and resume: a run killed mid-way picks up where it stopped, and a new run can
continue an earlier one's model (with a new learning rate), which replaces the book's
`EpochCheckpoint` + `--model ... --start-epoch N` restarts.

Resuming the same run: pass `checkpoint_callbacks(run)` to `model.fit`, and when the notebook is
run again in the same run directory the same `fit` call restores the weights, the optimizer's
state (momentum, iteration count, learning rate) and the epoch from `<run_dir>/backup/`, then
trains only the remaining epochs. The model must be built (e.g. `keras.Input`) before `fit`.
The backup is deleted when `fit` ends normally.

What Keras 3.15's `BackupAndRestore` keeps (keras/src/callbacks/backup_and_restore.py):
`model.save_weights` into `latest.weights.h5` (layer weights and the optimizer's variables)
plus `training_metadata.json` with the next epoch; on `fit` it loads both and sets
`model._initial_epoch`. It does not keep the data order of a shuffled data set, random-number
generator states, or the `History`/`history.csv` rows of the interrupted part: the run's
history callback keeps the rows up to the backup's epoch (`Run.resume_history`) and drops the
later ones, which are trained again, so every epoch appears once and the rows written before
the kill stay as they were.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import keras

from cvlab.atomic_io import write_atomic, write_json_atomic
from cvlab.errors import ResumeError
from cvlab.runs.lookup import AmbiguousRunError, RunModelNotFoundError, find_run_model
from cvlab.runs.record import BACKUP_DIR
from cvlab.runs.run import Run
from cvlab.runs.run import current as current_run

__all__ = [
    "BACKUP_DIR",
    "EpochBackup",
    "ResumeError",
    "ResumePoint",
    "backup_epoch",
    "checkpoint_callbacks",
    "find_resume_point",
    "resume_from",
]

_METADATA = "training_metadata.json"
_WEIGHTS = "latest.weights.h5"  # Keras's name for the backup's weights
_EPOCH_ATTR = "cvlab_epoch"  # the epoch a backup's weights hold, stamped in the file
_LISTENER = "epoch-backup"  # EpochBackup's slot among a run's epoch listeners


class EpochBackup(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that saves every `every` epochs, writes each file atomically (a kill
    during a save leaves the previous backup whole) and, when `fit` ends, clears the restored
    start epoch so a later `fit` of the same model object starts from epoch 0 again.

    The weights file carries the epoch it holds (an HDF5 attribute), so the weights and their
    epoch are replaced in one rename: the metadata file beside it is only Keras's copy. With
    the run (`run=`), the backup of an epoch is written only once that epoch's row is in
    `history.csv`, whatever the order of the callbacks: a kill between the two can leave a row
    the backup has not reached (dropped and trained again on resume), never a backup ahead of
    the history (an epoch whose row would be missing).
    """

    def __init__(
        self,
        backup_dir: str | Path,
        every: int = 1,
        delete_checkpoint: bool = True,
        run: Run | None = None,
    ):
        if int(every) != every or every < 1:
            raise ValueError(f"every: save every N >= 1 epochs, got {every!r}")
        super().__init__(
            backup_dir=str(backup_dir), save_freq="epoch", delete_checkpoint=delete_checkpoint
        )
        self.every = int(every)
        self.initial_epoch = 0
        self.run = run
        self._pending = False  # this epoch's backup waits for its history row
        self._rows_logged = 0  # rows the run logged since this epoch began

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        self.initial_epoch = int(getattr(self.model, "_initial_epoch", None) or 0)
        self._pending = False
        if self.run is not None:
            self.run.add_epoch_listener(_LISTENER, self._row_written)

    def _load_model(self) -> None:
        super()._load_model()
        epoch = _weights_epoch(Path(self._weights_path))
        if epoch is not None:  # the epoch the weights hold wins over the metadata file's
            self.model._initial_epoch = epoch

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._flush()  # no row came for the last epoch: this fit logs no history to the run
        self._rows_logged = 0

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._current_epoch = epoch + 1
        self._last_batch_seen = 0
        if (epoch + 1) % self.every == 0:
            self._pending = True
            if self.run is None or self._rows_logged:  # the row is written already
                self._flush()

    def _row_written(self, epoch: int) -> None:
        self._rows_logged += 1
        self._flush()

    def _flush(self) -> None:
        if self._pending:
            self._pending = False
            self._save_model()

    def _save_model(self) -> None:
        folder = Path(self.backup_dir)
        folder.mkdir(parents=True, exist_ok=True)
        epoch = self._current_epoch
        # Keras wants the .weights.h5 suffix, which write_atomic's temporary file lacks: save
        # under that name, stamp the epoch, then let write_atomic fsync and rename it in place.
        partial = folder / "partial.weights.h5"

        def write(tmp: Path) -> None:
            self.model.save_weights(filepath=str(partial), overwrite=True)
            with h5py.File(partial, "a") as fh:
                fh.attrs[_EPOCH_ATTR] = epoch
            os.replace(partial, tmp)

        try:
            write_atomic(self._weights_path, write)
        finally:
            partial.unlink(missing_ok=True)
        write_json_atomic(self._training_metadata_path, {"epoch": epoch, "batch": 0})

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        if self.run is not None:
            self.run.remove_epoch_listener(_LISTENER, self._row_written)
        if not self.delete_checkpoint:
            self._flush()
        self._pending = False
        super().on_train_end(logs)
        self.model._initial_epoch = None


def _weights_epoch(path: Path) -> int | None:
    """The epoch a backup's weights file holds (None: no file, or one without the stamp)."""
    if not path.is_file():
        return None
    try:
        with h5py.File(path, "r") as fh:
            value = fh.attrs.get(_EPOCH_ATTR)
    except OSError:
        return None
    return None if value is None else int(value)


def _run_dir(run_or_dir: Run | str | Path) -> Path:
    return Path(getattr(run_or_dir, "run_dir", run_or_dir))


def backup_epoch(run_dir: Run | str | Path) -> int:
    """The number of epochs the backup in `<run_dir>/backup` holds (0 when there is none):
    the epoch a resumed `fit` starts from."""
    folder = _run_dir(run_dir) / BACKUP_DIR
    stamped = _weights_epoch(folder / _WEIGHTS)
    if stamped is not None:
        return stamped
    meta = folder / _METADATA
    if not meta.is_file():
        return 0
    return int(json.loads(meta.read_text(encoding="utf-8")).get("epoch", 0))


def _the_run(run_or_dir: Run | str | Path) -> Run | None:
    """The `Run` itself, or the run this process opened (`cvlab.runs.start`) when given its
    folder, so that `checkpoint_callbacks(run.run_dir)` keeps the history whole too."""
    if hasattr(run_or_dir, "history"):
        return run_or_dir  # type: ignore[return-value]
    opened = current_run()
    if opened is not None and opened.run_dir == Path(run_or_dir).resolve():
        return opened
    return None


def checkpoint_callbacks(
    run_dir: Run | str | Path, every: int = 1
) -> list[keras.callbacks.Callback]:
    """`[EpochBackup(<run_dir>/backup, every)]` for `model.fit(..., callbacks=...)`.

    `run_dir` may be the `Run` itself (or the folder of the run this process opened): then the
    history rows of the epochs the backup holds are reloaded, so that `history.csv` and
    `curves.png` stay whole, and each backup is written after its epoch's row.
    Put these callbacks before any callback that might stop the run in `on_epoch_end`.
    """
    folder = _run_dir(run_dir)
    run = _the_run(run_dir)
    if run is not None and not run.history:
        upto = backup_epoch(folder)
        if upto > 0:
            run.resume_history(upto)
    return [EpochBackup(folder / BACKUP_DIR, every=every, run=run)]


@dataclass(frozen=True)
class ResumePoint:
    """An earlier run's saved model, and how many epochs it had trained (for `epoch_offset`)."""

    run_dir: Path
    model_path: Path
    epochs_completed: int


def find_resume_point(spec: str, *, root: str | Path | None = None) -> ResumePoint:
    """Where `"run:<run_id>"` (or `"run:<grid>/<run_id>"`, or a path to a `.keras` file) is.

    Runs are looked for as `<root>/experiments/*/<run_id>/model.keras`; `root` defaults to the
    project holding the current folder.
    """

    if not spec.startswith("run:"):
        path = Path(spec)
        if path.suffix == ".keras" and path.is_file():
            return ResumePoint(path.parent, path, _epochs_completed(path.parent))
        raise ResumeError(
            f"resume from {spec!r}: expected 'run:<run_id>' or an existing .keras file"
        )
    run_id = spec.removeprefix("run:").strip().strip("/")
    if not run_id:
        raise ResumeError(f"resume from {spec!r}: no run id after 'run:'")
    try:
        path = find_run_model(run_id, root)
    except (RunModelNotFoundError, AmbiguousRunError, ValueError) as exc:
        raise ResumeError(f"resume from {spec!r}: {exc}") from exc
    return ResumePoint(path.parent, path, _epochs_completed(path.parent))


def _epochs_completed(run_dir: Path) -> int:
    record = run_dir / "record.json"
    try:
        return int(json.loads(record.read_text(encoding="utf-8")).get("epochs_completed") or 0)
    except (OSError, ValueError, TypeError):
        return 0


def resume_from(
    spec: str, *, root: str | Path | None = None, learning_rate: float | None = None
) -> keras.Model:
    """Load an earlier run's `model.keras` (compiled, with its optimizer state) to go on
    training it in a new run; `learning_rate=` sets the optimizer's rate, as the book lowers
    it when restarting from a checkpoint. For the new run's history to continue the epoch count,
    use `find_resume_point(spec).epochs_completed` as `run.keras_callback(epoch_offset=...)`.
    """
    point = find_resume_point(spec, root=root)
    model = keras.models.load_model(point.model_path)
    if learning_rate is not None:
        if getattr(model, "optimizer", None) is None:
            raise ResumeError(
                f"{point.model_path} was saved without an optimizer; compile it before setting "
                "a learning rate"
            )
        model.optimizer.learning_rate = float(learning_rate)
    return model
