"""The run record notebooks log through: `run = cvlab.runs.start(run_dir)`; and a finished run,
ready to classify new images: `cvlab.runs.load("run:<run_id>")`."""

from cvlab.runs.book import beside_the_book, escape_markdown, markdown_code
from cvlab.runs.load import LoadedRun, load
from cvlab.runs.record import FINISHED_STATUSES, Preprocessing, RunError, RunRecord, RunStatus
from cvlab.runs.run import Run, start

__all__ = [
    "FINISHED_STATUSES",
    "LoadedRun",
    "Preprocessing",
    "Run",
    "RunError",
    "RunRecord",
    "RunStatus",
    "beside_the_book",
    "escape_markdown",
    "markdown_code",
    "load",
    "start",
]
