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
generator states, or the `History`/`history.csv` rows of the interrupted part (passing the
`Run` to `checkpoint_callbacks` reloads those rows).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import keras

from cvlab.errors import ResumeError
from cvlab.runs.lookup import AmbiguousRunError, RunModelNotFoundError, find_run_model
from cvlab.runs.record import BACKUP_DIR, HISTORY_FILE

if TYPE_CHECKING:
    from cvlab.runs.run import Run

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


class EpochBackup(keras.callbacks.BackupAndRestore):
    """`BackupAndRestore` that saves every `every` epochs, writes each file atomically (a kill
    during a save leaves the previous backup whole) and, when `fit` ends, clears the restored
    start epoch so a later `fit` of the same model object starts from epoch 0 again."""

    def __init__(self, backup_dir: str | Path, every: int = 1, delete_checkpoint: bool = True):
        if int(every) != every or every < 1:
            raise ValueError(f"every: save every N >= 1 epochs, got {every!r}")
        super().__init__(
            backup_dir=str(backup_dir), save_freq="epoch", delete_checkpoint=delete_checkpoint
        )
        self.every = int(every)
        self.initial_epoch = 0

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_begin(logs)
        self.initial_epoch = int(getattr(self.model, "_initial_epoch", None) or 0)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        self._current_epoch = epoch + 1
        self._last_batch_seen = 0
        if (epoch + 1) % self.every == 0:
            self._save_model()

    def _save_model(self) -> None:
        folder = Path(self.backup_dir)
        folder.mkdir(parents=True, exist_ok=True)
        partial = folder / "partial.weights.h5"  # Keras wants the .weights.h5 suffix
        self.model.save_weights(filepath=str(partial), overwrite=True)
        os.replace(partial, self._weights_path)
        meta = {"epoch": self._current_epoch, "batch": self._last_batch_seen}
        tmp = folder / f".{_METADATA}.tmp"
        tmp.write_text(json.dumps(meta), encoding="utf-8")
        os.replace(tmp, self._training_metadata_path)

    def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
        super().on_train_end(logs)
        self.model._initial_epoch = None


def _run_dir(run_or_dir: Run | str | Path) -> Path:
    return Path(getattr(run_or_dir, "run_dir", run_or_dir))


def backup_epoch(run_dir: Run | str | Path) -> int:
    """The number of epochs the backup in `<run_dir>/backup` holds (0 when there is none):
    the epoch a resumed `fit` starts from."""
    meta = _run_dir(run_dir) / BACKUP_DIR / _METADATA
    if not meta.is_file():
        return 0
    return int(json.loads(meta.read_text(encoding="utf-8")).get("epoch", 0))


def _reload_history(run: Run, upto: int) -> None:
    """Put the rows of the interrupted part back into `run.history`, so that the resumed
    epochs append to `history.csv` instead of replacing it."""
    import pandas as pd

    path = run.run_dir / HISTORY_FILE
    if run.history or upto <= 0 or not path.is_file():
        return
    frame = pd.read_csv(path)
    if "epoch" not in frame:
        return
    rows = frame[frame["epoch"] <= upto].to_dict("records")
    run.history.extend({k: v for k, v in row.items() if pd.notna(v)} for row in rows)


def checkpoint_callbacks(
    run_dir: Run | str | Path, every: int = 1
) -> list[keras.callbacks.Callback]:
    """`[EpochBackup(<run_dir>/backup, every)]` for `model.fit(..., callbacks=...)`.

    `run_dir` may be the `Run` itself; then, when a backup is there to resume, the history rows
    of the epochs it holds are reloaded so that `history.csv` and `curves.png` stay whole.
    Put these callbacks before any callback that might stop the run in `on_epoch_end`.
    """
    folder = _run_dir(run_dir)
    if hasattr(run_dir, "history"):
        _reload_history(run_dir, backup_epoch(folder))  # type: ignore[arg-type]
    return [EpochBackup(folder / BACKUP_DIR, every=every)]


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
