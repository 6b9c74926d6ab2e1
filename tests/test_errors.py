"""Every exception class of cvlab lives in `cvlab.errors` and subclasses `CvlabError` (plus its
builtin, so `except ValueError` keeps working); the modules that raise them re-export them."""

from __future__ import annotations

import ast
import builtins
import importlib
from pathlib import Path

import pytest

import cvlab.errors as errors
from cvlab.errors import CvlabError

LIB = Path(errors.__file__).parent


def _is_builtin_exception(name: str) -> bool:
    value = getattr(builtins, name, None)
    return isinstance(value, type) and issubclass(value, BaseException)


def _exception_classes() -> dict[str, list[str]]:
    """{module path: [exception class names]}, read with ast (no module imported): a class is an
    exception when a base is a builtin exception or an exception class found here (by name)."""
    classes: dict[str, list[tuple[str, list[str]]]] = {}
    for path in sorted(LIB.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        found = []
        for node in ast.walk(tree):
            if isinstance(node, ast.ClassDef):
                bases = [
                    b.attr if isinstance(b, ast.Attribute) else getattr(b, "id", "")
                    for b in node.bases
                ]
                found.append((node.name, bases))
        classes[str(path.relative_to(LIB))] = found
    known = {"CvlabError"}
    changed = True
    while changed:  # close over subclasses of subclasses, across modules
        changed = False
        for found in classes.values():
            for name, bases in found:
                if name not in known and any(b in known or _is_builtin_exception(b) for b in bases):
                    known.add(name)
                    changed = True
    return {
        module: [name for name, _ in found if name in known]
        for module, found in classes.items()
        if any(name in known for name, _ in found)
    }


def test_every_exception_class_is_defined_in_errors_py():
    outside = {m: names for m, names in _exception_classes().items() if m != "errors.py"}
    assert outside == {}, f"move these into lib/cvlab/errors.py and import them back: {outside}"


def test_every_exception_in_errors_py_subclasses_cvlab_error():
    names = _exception_classes()["errors.py"]
    assert len(names) >= 30
    for name in names:
        cls = getattr(errors, name)
        if issubclass(cls, Warning):
            continue  # a warning is not raised, it is issued: UserWarning is its family
        assert issubclass(cls, CvlabError), name


@pytest.mark.parametrize(
    ("module", "name", "builtin"),
    [
        ("cvlab.atomic_io", "DiskFullError", OSError),
        ("cvlab.data.hdf5", "IncompleteHDF5Error", ValueError),
        ("cvlab.grid.expand", "RunFilterError", None),
        ("cvlab.grid.kernel_pool", "KernelStartError", RuntimeError),
        ("cvlab.grid.lock", "GridLockedError", None),
        ("cvlab.grid.preflight", "OutputFolderError", None),
        ("cvlab.grid.scheduler", "DaskUnavailableError", RuntimeError),
        ("cvlab.models.torch_checkpoint", "CheckpointFormatError", ValueError),
        ("cvlab.report.leaderboard", "LeaderboardNotFoundError", FileNotFoundError),
        ("cvlab.report.page", "PageAssetError", RuntimeError),
        ("cvlab.report.static_report", "ReportError", None),
        ("cvlab.runs.load", "NoPreprocessingError", ValueError),
        ("cvlab.runs.load", "NoSavedModelError", FileNotFoundError),
        ("cvlab.runs.load", "RunNotUsableError", None),
        ("cvlab.runs.load", "UnreadableImageError", ValueError),
        ("cvlab.runs.lookup", "AmbiguousRunError", ValueError),
        ("cvlab.runs.lookup", "RunModelNotFoundError", FileNotFoundError),
        ("cvlab.train.checkpoints", "ResumeError", FileNotFoundError),
        ("cvlab.train.schedules", "ScheduleError", ValueError),
        ("cvlab.train.warm_start", "WarmStartError", ValueError),
    ],
)
def test_old_import_paths_still_work(module, name, builtin):
    cls = getattr(importlib.import_module(module), name)
    assert cls is getattr(errors, name) and issubclass(cls, CvlabError)
    if builtin is not None:
        assert issubclass(cls, builtin)


def test_option_syntax_error_is_still_the_data_command_s_bad_input():
    data_main = importlib.import_module("cvlab.data.__main__")
    assert data_main._BadInput is errors.OptionSyntaxError
    with pytest.raises(ValueError, match="expected KEY=VALUE"):
        data_main.parse_options(["novalue"])
