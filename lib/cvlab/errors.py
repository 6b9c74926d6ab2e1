"""Exception types: each says what went wrong, where, and how to fix it."""

from __future__ import annotations

from dataclasses import dataclass


class CvlabError(Exception):
    """Base class for every error cvlab raises on purpose."""


@dataclass(frozen=True)
class SpecProblem:
    """One problem in a grid file: where it is, what is wrong, and the fix."""

    file: str
    field: str
    message: str
    fix: str

    def __str__(self) -> str:
        return f"{self.file}: {self.field}: {self.message}. Fix: {self.fix}"


class GridSpecError(CvlabError):
    """A grid YAML file that cannot run; lists every problem found, each once."""

    def __init__(self, problems: list[SpecProblem]):
        self.problems = problems
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        lines = [f"invalid grid spec ({count}):"] + [f"  - {p}" for p in problems]
        super().__init__("\n".join(lines))


class UnknownNameError(CvlabError, KeyError):
    """A registry (data sets, models, optimizers) was asked for a name it does not have."""

    def __init__(self, kind: str, name: str, known: list[str]):
        self.kind, self.name, self.known = kind, name, known
        super().__init__(f"unknown {kind} {name!r}; choose one of: {', '.join(sorted(known))}")

    def __str__(self) -> str:  # KeyError would quote the message otherwise
        return str(self.args[0])


class RunRecordError(CvlabError):
    """A run directory whose record is missing or unreadable."""


class DatasetNotFoundError(CvlabError, FileNotFoundError):
    """A data set that is not on this machine: says where it was looked for and how to get it."""


class DatasetLayoutError(CvlabError):
    """Files that are there but not in the layout the loader reads (names the file and the fix)."""


class DatasetFetchError(CvlabError):
    """A data set download that failed (offline, refused, corrupt): names the import command."""


class DatasetExistsError(CvlabError):
    """The data cache already holds this data set from another source (--force replaces it)."""


# ---- registries (issue 18, point 2)


class DatasetNameError(CvlabError, ValueError):
    """A name a user's own data set cannot take (a built-in one, or not a folder name)."""


# ---- branch grid (issue 18, points 4 and 5) ----


class GridTooLargeError(CvlabError, ValueError):
    """A grid that expands to more runs than the runner takes in one call (the message gives
    the count, the limit and the fix: --max-runs, or shorter lists)."""


class MissingDataError(CvlabError, FileNotFoundError):
    """File-based data sets the runs need are not in the data cache: nothing was run. `missing`
    holds one entry per data set (its name, the loader's message, the runs that need it)."""

    def __init__(self, missing: list):
        self.missing = missing
        super().__init__("\n".join(str(m) for m in missing))

    def __str__(self) -> str:  # FileNotFoundError would format its args otherwise
        return str(self.args[0])


# -- images branch (issue 18, point 1: one image-preparation path) --------------------------


class UnreadableImageError(CvlabError, ValueError):
    """An image file that cannot be decoded (missing, corrupt, not an image): names the file."""


class PixelScaleError(CvlabError, ValueError):
    """Pixels whose scale (0-1 or 0-255) was not stated: cvlab never guesses it from the values."""


# --- repeats (issue 18): the exception classes of every module, in one place; each module
# imports its own back from here, so `from cvlab.runs.load import NoPreprocessingError` still works.


class DiskFullError(CvlabError, OSError):
    """No space left (or quota exceeded) while writing a file; nothing was half-written."""


class OptionSyntaxError(CvlabError, ValueError):
    """A malformed `--option KEY=VALUE` of `python -m cvlab.data` (names the option and the fix)."""


class IncompleteHDF5Error(CvlabError, ValueError):
    """An HDF5 file whose build did not finish (a `.partial`, or too few rows written)."""


class RunFilterError(CvlabError):
    """A `--only KEY=VALUE` filter that names no parameter or is malformed."""


class KernelStartError(CvlabError, RuntimeError):
    """A spare kernel died or hung while it started or imported its modules."""


class GridLockedError(CvlabError):
    """Another driver is running the same grid into the same output folder."""


class OutputFolderError(CvlabError):
    """The output folder (`--out`) cannot receive the grid's results."""


class DaskUnavailableError(CvlabError, RuntimeError):
    """--scheduler was given but Dask distributed is not installed, or not reachable."""


class WeightsNotAvailableError(CvlabError, FileNotFoundError):
    """Weights asked for that are not on this machine (and cannot be downloaded): says where to put them."""


class ClassNamesNotAvailableError(CvlabError, ImportError):
    """The package that ships the ImageNet class names is not installed."""


class CheckpointFormatError(CvlabError, ValueError):
    """A file that is not a legacy PyTorch checkpoint of plain tensors (names the file and why)."""


class LeaderboardNotFoundError(CvlabError, FileNotFoundError):
    """No leaderboard store where one was asked for."""


class PageAssetError(CvlabError, RuntimeError):
    """A bundled asset of the page is missing or cannot be inlined (a packaging problem)."""


class ReportError(CvlabError):
    """The report cannot be written (unknown grid, output folder inside the workspace, ...)."""


class RunNotUsableError(CvlabError):
    """A run that cannot classify new images: says what it lacks and what records it."""


class NoPreprocessingError(RunNotUsableError, ValueError):
    """The run saved a model but not the preprocessing its inputs went through."""


class NoSavedModelError(RunNotUsableError, FileNotFoundError):
    """The run exists but saved no `model.keras`."""


class AmbiguousRunError(CvlabError, ValueError):
    """A run id found in several grids: the grid must be named too."""


class RunModelNotFoundError(CvlabError, FileNotFoundError):
    """No saved model for the run named."""


class ResumeError(CvlabError, FileNotFoundError):
    """The run to resume from has no saved model: says where it looked."""


class EnsembleError(CvlabError, ValueError):
    """Members that cannot form an ensemble: says which, why, and what to change."""


class EnsembleWarning(UserWarning):
    """Runs left out of an ensemble (e.g. scored on another test set)."""


class NotProbabilitiesError(EnsembleError):
    """A member whose outputs are not class probabilities (e.g. logits: no softmax)."""


class TestSetMismatchError(EnsembleError):
    """Members that were not all scored on the ensemble's test set (or did not record theirs)."""

    __test__ = False  # a class named Test* is not a pytest test


class ScheduleError(CvlabError, ValueError):
    """A schedule that cannot be used: names the field, what is wrong and the choices."""


class WarmStartError(CvlabError, ValueError):
    """The earlier run's model shares no layer (name and weight shapes) with this one, or the
    reference does not name a saved model."""


class ProgressiveError(CvlabError, ValueError):
    """Sizes, shares or models that do not make a progressive-resizing plan: says what would."""


class SurgeryError(CvlabError, ValueError):
    """A head, block or freezing request that does not fit the model: says what would."""


class BookTableError(CvlabError, ValueError):
    """A row of `beside_the_book` whose number of cells does not fit the table's columns."""


# --- backends ---------------------------------------------------------------------------------


class BackendError(CvlabError, ValueError):
    """A Keras backend that cannot be used here: names it, the three, and the fix."""


class UnknownBackendError(BackendError):
    """A backend name that is none of tensorflow, jax, torch."""


class BackendNotInstalledError(BackendError):
    """A backend whose packages are not installed: names the extra that installs it."""


class PrecisionError(CvlabError, ValueError):
    """A `mixed_precision` value, or a dtype the backend or processor cannot compute in (said
    before training, with what works)."""


# --- search and early stopping ----------------------------------------------------------------


class RunPruned(CvlabError):  # noqa: N818 - named as Optuna's TrialPruned: a result, not a fault
    """Raised at an epoch end when the grid's pruner cut the run: training stops there, the
    notebook stops at that cell, and the run ends `pruned` (a result, not a failure)."""


class PruneMetricError(CvlabError, KeyError):
    """The grid prunes on a per-epoch metric this run does not log (said after its first
    epoch, with the metrics it does log)."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


# --- exports ----------------------------------------------------------------------------------


class MlflowExportError(CvlabError):
    """`cvlab export mlflow` cannot go on: MLflow not installed, a tracking store it cannot
    reach, or a grid the leaderboard does not hold (the message says what to do)."""
