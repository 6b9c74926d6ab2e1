"""TensorBoard event files of a run, in `<run folder>/tensorboard/`: its per-epoch scalars as it
trains (`RunEvents`, flushed each epoch, so `tensorboard --logdir experiments/` shows it live),
and, once it has ended, its parameters, status and final metrics with the grid's rank metric for
the HParams dashboard (`write_session`).

Written with TensorBoard's own protos and record framing, never TensorFlow: `tf.summary` and
`keras.callbacks.TensorBoard` need TensorFlow, which a JAX or PyTorch run does not import.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import socket
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
from tensorboard.compat.proto import event_pb2, summary_pb2
from tensorboard.plugins.hparams import api_pb2, plugin_data_pb2
from tensorboard.plugins.hparams import metadata as hparams_metadata
from tensorboard.plugins.hparams.summary_v2 import hparams_pb
from tensorboard.plugins.scalar import metadata as scalar_metadata
from tensorboard.summary.writer.record_writer import RecordWriter
from tensorboard.util import tensor_util

from cvlab.atomic_io import write_atomic
from cvlab.runs.epoch_metrics import resolve_metric
from cvlab.runs.record import RunRecord

TENSORBOARD_DIR = (
    "tensorboard"  # in the run folder: TensorBoard's run `<grid>/<run id>/tensorboard`
)
SESSION_SUFFIX = ".cvlab-session"  # the event file of the run's HParams session (one, replaced)
FINAL_PREFIX = "final/"  # the scalar tags of final metrics (and of the rank metric)
_FILE_VERSION = "brain.Event:2"
_numbers = itertools.count()

# The HParams dashboard's session status of each run status (pruned runs ended on purpose).
_STATUS = {
    "ok": api_pb2.STATUS_SUCCESS,
    "pruned": api_pb2.STATUS_SUCCESS,
    "diverged": api_pb2.STATUS_FAILURE,
    "failed": api_pb2.STATUS_FAILURE,
    "timeout": api_pb2.STATUS_FAILURE,
    "interrupted": api_pb2.STATUS_UNKNOWN,  # it resumes at the next call
    "running": api_pb2.STATUS_RUNNING,
    "pending": api_pb2.STATUS_UNKNOWN,
}


def event_file_name(suffix: str = "") -> str:
    """A new event file's name, TensorBoard's pattern (`events.out.tfevents.<seconds>.<host>`)
    with the nanoseconds and a counter before the host, so that a folder's files sort in the
    order they were created, whichever process or host wrote them: readers take them in that
    order, and a resumed run's restart marker must come after the files it voids."""
    now = time.time_ns()
    seconds, nanos = divmod(now, 1_000_000_000)
    return (
        f"events.out.tfevents.{seconds:010d}.{nanos:09d}{next(_numbers) % 1000:03d}."
        f"{socket.gethostname()}.{os.getpid()}{suffix}"
    )


def _file_version_event() -> event_pb2.Event:
    return event_pb2.Event(wall_time=time.time(), file_version=_FILE_VERSION)


def _restart_event(step: int) -> event_pb2.Event:
    """TensorBoard's restart marker: a reader drops every event of this run at `step` or later
    that came before it (the Python reader on the marker; the Rust data server drops a
    series' points at a step when that step is written again)."""
    return event_pb2.Event(
        wall_time=time.time(),
        step=step,
        session_log=event_pb2.SessionLog(status=event_pb2.SessionLog.START),
    )


class EventFile:
    """One event file, appended to synchronously.

    Hand-written over TensorBoard's `RecordWriter` (its record framing and checksums) because
    its `EventFileWriter` opens files through `tensorboard.compat.tf`, which imports TensorFlow
    whenever it is installed, and writes from a thread that flushes every 120 s; a run writes a
    few records per epoch and wants them on disk at once.
    """

    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.path = folder / event_file_name()
        self._file = open(self.path, "wb")  # noqa: SIM115 - kept open for the run's epochs
        self._records = RecordWriter(self._file)
        self._described: set[str] = set()  # tags whose metadata this file holds already
        self.add(_file_version_event())

    def add(self, event: event_pb2.Event, *, flush: bool = True) -> None:
        self._records.write(event.SerializeToString())
        if flush:
            self._file.flush()

    def add_scalars(self, step: int, values: Mapping[str, float]) -> None:
        """One event holding a scalar per value; each tag's metadata in its first event only,
        as TensorFlow's writers do."""
        event = scalar_event(step, values, skip_metadata=self._described)
        self._described.update(values)
        self.add(event)

    def close(self) -> None:
        self._file.close()


def scalar_event(
    step: int, values: Mapping[str, float], *, skip_metadata: set[str] | frozenset = frozenset()
) -> event_pb2.Event:
    """An event of scalar summaries (float32, as TensorBoard's scalars are) at `step`."""
    event = event_pb2.Event(wall_time=time.time(), step=int(step))
    for tag, value in values.items():
        entry = event.summary.value.add(
            tag=tag, tensor=tensor_util.make_tensor_proto(np.float32(value))
        )
        if tag not in skip_metadata:
            entry.metadata.CopyFrom(scalar_metadata.create_summary_metadata(tag, ""))
    return event


class RunEvents:
    """The event file a run's process writes its epochs to, opened at its first epoch.

    A process opening it (a new run, or one resumed after a kill) starts with a restart marker
    at its first step, and a training resumed in the same process (`restart`) writes one, so a
    reader keeps each epoch once, from the last attempt, whatever the earlier files hold.
    """

    def __init__(self, folder: Path):
        self.folder = folder
        self._file: EventFile | None = None

    def log_epoch(self, row: Mapping[str, float]) -> None:
        """The row's values (all but `epoch`) as scalars at step = epoch, flushed now."""
        step = int(row["epoch"])
        if self._file is None:
            self._file = EventFile(self.folder)
            self._file.add(_restart_event(step), flush=False)
        self._file.add_scalars(step, {k: v for k, v in row.items() if k != "epoch"})

    def restart(self, step: int) -> None:
        """Training goes on at `step` again (resumed from a backup): later steps are void."""
        if self._file is not None:
            self._file.add(_restart_event(step))

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def hparam_value(value: Any) -> bool | float | int | str:
    """A parameter as the HParams dashboard takes it (bool, number, string); lists, dicts and
    None as their JSON text, so that they still show and compare."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, sort_keys=True, default=str)


def _session_end_event(record: RunRecord) -> event_pb2.Event:
    # summary_v2 has no session-end writer (the v1 one needs TensorFlow): the same proto here.
    info = plugin_data_pb2.SessionEndInfo(
        status=_STATUS.get(record.status, api_pb2.STATUS_UNKNOWN),
        end_time_secs=record.ended_at.timestamp() if record.ended_at else time.time(),
    )
    summary = summary_pb2.Summary()
    summary.value.add(
        tag=hparams_metadata.SESSION_END_INFO_TAG,
        metadata=hparams_metadata.create_summary_metadata(
            plugin_data_pb2.HParamsPluginData(session_end_info=info)
        ),
        tensor=hparams_metadata.NULL_TENSOR,
    )
    return event_pb2.Event(wall_time=time.time(), step=0, summary=summary)


def final_scalars(
    record: RunRecord, rank_metric: str | None = None, rank_mode: str | None = None
) -> dict[str, float]:
    """`final/<name>` of each numeric final metric, and of the rank metric (`val_accuracy:best`
    is not a final metric, but the HParams dashboard needs a scalar of the value ranked by)."""
    values: dict[str, float] = {}
    for name, value in record.metrics.items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            values[f"{FINAL_PREFIX}{name}"] = float(value)
    if rank_metric:
        value = resolve_metric(rank_metric, record.metrics, record.epoch_metrics, rank_mode)  # type: ignore[arg-type]
        if isinstance(value, int | float) and math.isfinite(float(value)):
            values[f"{FINAL_PREFIX}{rank_metric}"] = float(value)
    return values


def write_session(
    run_dir: Path, record: RunRecord, rank_metric: str | None = None, rank_mode: str | None = None
) -> Path:
    """The run's HParams session: its parameters (and grid), status, final metrics and rank
    metric, in one event file of `<run_dir>/tensorboard/` that replaces the previous one (a
    run published again, or resumed, has one session). The driver writes it when a run ends.
    """
    folder = run_dir / TENSORBOARD_DIR
    earlier = sorted(folder.glob(f"*{SESSION_SUFFIX}"))
    hparams = {name: hparam_value(value) for name, value in record.params.items()}
    hparams.setdefault("grid", record.grid)
    start = record.started_at.timestamp() if record.started_at else time.time()
    events = [
        _file_version_event(),
        event_pb2.Event(
            wall_time=start,
            step=0,
            summary=hparams_pb(hparams, trial_id=record.run_id, start_time_secs=start),
        ),
        _session_end_event(record),
    ]
    finals = final_scalars(record, rank_metric, rank_mode)
    if finals:  # at the last epoch (step 0 when none), as a point beside the curves
        events.append(scalar_event(record.epochs_completed, finals))

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            records = RecordWriter(fh)
            for event in events:
                records.write(event.SerializeToString())

    # Staged under a name without "tfevents" (readers would take the temporary file for an
    # event file), then renamed into place; the new name sorts after the epochs' files.
    staged = write_atomic(folder / f".session{SESSION_SUFFIX}.staged", write)
    path = folder / event_file_name(SESSION_SUFFIX)
    os.replace(staged, path)
    for old in earlier:
        old.unlink(missing_ok=True)
    return path
