"""The run record notebooks log through: `run = cvlab.runs.start(run_dir)`."""

from cvlab.runs.record import FINISHED_STATUSES, RunError, RunRecord, RunStatus
from cvlab.runs.run import Run, start

__all__ = ["FINISHED_STATUSES", "Run", "RunError", "RunRecord", "RunStatus", "start"]
