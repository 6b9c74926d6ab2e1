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
