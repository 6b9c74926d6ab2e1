"""The Keras side of the run record: a callback like the book's TrainingMonitor."""

from __future__ import annotations

import contextlib
import math
import time
from typing import TYPE_CHECKING, Any

import keras

if TYPE_CHECKING:
    from cvlab.runs.run import Run


class RunHistoryCallback(keras.callbacks.Callback):
    """After every epoch: append to `history.csv`, redraw `curves.png`, print one line.

    A NaN or infinite batch loss stops training at once and marks the run `diverged`
    (what `keras.callbacks.TerminateOnNaN` does, plus the record). A `fit` that starts after
    epoch 0 (restored from a backup, or `initial_epoch=`) keeps the run's rows up to its start
    and drops later ones (`Run.resume_history`), whichever callback restored it, so every epoch
    appears once in `history.csv`.
    """

    def __init__(self, run: Run, epoch_offset: int = 0):
        super().__init__()
        self.run = run
        self.epoch_offset = epoch_offset
        self._epoch_start = time.perf_counter()
        self._first_epoch = True

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        self._first_epoch = True

    def on_epoch_begin(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        if self._first_epoch:
            self._first_epoch = False
            if epoch > 0:  # Keras set the start from a backup (or initial_epoch=)
                self.run.resume_history(self.epoch_offset + epoch)
        self._epoch_start = time.perf_counter()

    def on_train_batch_end(self, batch: int, logs: dict[str, Any] | None = None) -> None:
        loss = (logs or {}).get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.run.mark_diverged(f"loss became {float(loss)} at batch {batch}")
            self.model.stop_training = True

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        values = {k: float(v) for k, v in (logs or {}).items()}
        optimizer = getattr(self.model, "optimizer", None)
        if optimizer is not None and "learning_rate" not in values:
            with contextlib.suppress(TypeError, ValueError, AttributeError):
                values["lr"] = float(keras.ops.convert_to_numpy(optimizer.learning_rate))
        values["time_s"] = round(time.perf_counter() - self._epoch_start, 3)
        total = self.params.get("epochs") if self.params else None
        self.run.log_epoch(
            self.epoch_offset + epoch + 1,
            total_epochs=(self.epoch_offset + total) if total else None,
            **values,
        )
        if self.run.diverged:
            self.model.stop_training = True
