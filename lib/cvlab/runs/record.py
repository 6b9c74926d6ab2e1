"""The run record: `record.json` in a run directory, the one file that describes a run."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from cvlab.atomic_io import write_json_atomic
from cvlab.errors import RunRecordError
from cvlab.image_prep import PixelScale as PixelScale  # re-exported
from cvlab.image_prep import Preprocessing
from cvlab.runs.epoch_metrics import EpochSummary
from cvlab.search.trial_link import TrialLink

RECORD_FILE = "record.json"
HISTORY_FILE = "history.csv"
CURVES_FILE = "curves.png"
NOTEBOOK_FILE = "run.ipynb"
HTML_FILE = "run.html"
BACKUP_DIR = "backup"  # training backups of a run that can resume (cvlab.train.checkpoints)

RunStatus = Literal[
    "pending", "running", "ok", "failed", "timeout", "diverged", "interrupted", "pruned"
]
# A finished run is a result: the grid runner skips it unless forced. A pruned run (cut early
# by the grid's pruner) is one too: it is not re-run.
FINISHED_STATUSES: frozenset[str] = frozenset({"ok", "diverged", "pruned"})


def utc_now() -> datetime:
    return datetime.now(UTC)


class RunError(BaseModel):
    """Why a run did not finish: exception type, message and the traceback's tail."""

    type: str
    message: str
    traceback: str = ""


# What a run records as its preprocessing is the image-preparation configuration itself, so
# `cvlab.runs.load` prepares new images exactly as the run's did (old records load unchanged).


class DataUse(BaseModel):
    """A data set a run loaded (`cvlab.data.load` notes it): a run on synthetic data never ranks
    against runs on real data."""

    name: str
    synthetic: bool = False
    source: str = ""


class RunRecord(BaseModel):
    """Everything known about one run; written atomically as `record.json`."""

    model_config = ConfigDict(extra="ignore")

    run_id: str
    name: str = ""
    grid: str = "interactive"
    notebook: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None
    status: RunStatus = "running"
    metrics: dict[str, Any] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    artifacts: dict[str, str] = Field(default_factory=dict)
    error: RunError | None = None
    epochs_completed: int = 0
    started_at: datetime | None = None
    ended_at: datetime | None = None
    duration_s: float | None = None
    environment: dict[str, Any] = Field(default_factory=dict)
    preprocessing: Preprocessing | None = None  # records written before it existed have none
    # min/max/last of each per-epoch metric (`Run.log_epoch` keeps it current)
    epoch_metrics: dict[str, EpochSummary] = Field(default_factory=dict)
    # the notebook's code digest when the run started (`cvlab.grid.expand.notebook_digest`):
    # a run whose digest is not its grid's current one is stale; None (older records): unknown
    code_digest: str | None = None
    data: list[DataUse] = Field(default_factory=list)  # the data sets it loaded
    synthetic: bool = False  # it loaded synthetic data (ranked only among synthetic runs)
    # a searched or pruned grid's run: its Optuna trial (cvlab.search); None for other runs
    trial: TrialLink | None = None
    # a pruned run: the epoch after which the pruner cut it, and the rung (successive halving)
    pruned_at_epoch: int | None = None
    rung: int | None = None
    # progress while it runs (`Run.log_epoch`), so anyone reading the record can show epoch k
    # of N, seconds per epoch and an estimated end: the epochs the training loop plans (None:
    # not said), when the last epoch ended, and how long each epoch of this process took
    epochs_planned: int | None = None
    last_epoch_at: datetime | None = None
    epoch_seconds: list[float] = Field(default_factory=list)

    def seconds_per_epoch(self) -> float | None:
        """The mean time of an epoch; the first is left out once there are others (it also
        holds data loading, model building and compilation)."""
        times = self.epoch_seconds[1:] or self.epoch_seconds
        return sum(times) / len(times) if times else None

    def expected_end(self) -> datetime | None:
        """When the last planned epoch should end, at the mean pace; None when unknown."""
        pace = self.seconds_per_epoch()
        if pace is None or self.epochs_planned is None or self.last_epoch_at is None:
            return None
        left = max(0, self.epochs_planned - self.epochs_completed)
        return self.last_epoch_at + timedelta(seconds=pace * left)

    @classmethod
    def load(cls, run_dir: str | Path) -> RunRecord:
        path = Path(run_dir) / RECORD_FILE
        try:
            return cls.model_validate_json(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise RunRecordError(f"{path}: no run record here") from exc
        except (OSError, UnicodeDecodeError) as exc:
            raise RunRecordError(f"{path}: cannot read the run record: {exc}") from exc
        except ValidationError as exc:
            raise RunRecordError(f"{path}: not a valid run record: {exc}") from exc

    @classmethod
    def load_if_present(cls, run_dir: str | Path) -> RunRecord | None:
        try:
            return cls.load(run_dir)
        except RunRecordError:
            return None

    def save(self, run_dir: str | Path) -> Path:
        return write_json_atomic(Path(run_dir) / RECORD_FILE, self.model_dump(mode="json"))

    def finish(self, status: RunStatus, error: RunError | None = None) -> None:
        """Stamp the end time, duration and final status."""
        self.status = status
        self.error = error
        self.ended_at = utc_now()
        if self.started_at is not None:
            self.duration_s = round((self.ended_at - self.started_at).total_seconds(), 3)
