"""The data a grid names, checked before any kernel starts: data directories that exist and
hold the data set's layout, and file-based data sets that are in the data cache."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cvlab.data
from cvlab.data.cache import data_root
from cvlab.errors import DatasetLayoutError, DatasetNotFoundError, SpecProblem
from cvlab.grid.name_checks import parameter_kind
from cvlab.grid.notebook_params import NotebookParameter
from cvlab.grid.schema import each_value, sections

# A data directory is a parameter the notebook declares `cvlab.param_types.DataDirectory`, or
# `directory` inside the data set's options (`dataset_options`, what `cvlab.data.load` takes).
OPTIONS_PARAM = "dataset_options"


def _dataset_params(parameters: dict[str, NotebookParameter]) -> list[str]:
    return [name for name, p in parameters.items() if parameter_kind(p) == "data set"]


def _is_directory_param(param: NotebookParameter) -> bool:
    return param.declared_kind == "data directory"


def _dataset_of(scope: dict[str, Any], raw: dict[str, Any], parameters) -> str | None:
    """The one data set a run scope uses (its own, else the grid's single one, else the
    notebook default), or None when several are possible."""
    params, grid, _, _ = sections(raw)
    for key in _dataset_params(parameters):
        for source in (scope, params):
            if isinstance(source.get(key), str):
                return source[key]
        if key in grid:
            values = {v for v in grid[key] if isinstance(v, str)}
            return values.pop() if len(values) == 1 else None
        if isinstance(parameters[key].default, str):
            return parameters[key].default
    return None


def _directories(param: NotebookParameter, value: Any) -> list[str]:
    if _is_directory_param(param) and isinstance(value, str):
        return [value]
    if param.name == OPTIONS_PARAM and isinstance(value, dict):
        found = value.get("directory")
        return [found] if isinstance(found, str) else []
    return []


def data_directory_problems(
    file: str, raw: dict[str, Any], parameters: dict[str, NotebookParameter], notebook: Path
) -> list[SpecProblem]:
    """Data directories (`data_dir`, `dataset_options.directory`) that do not exist, or that
    the data set's own loader cannot read (its message names the file it expected)."""
    problems: list[SpecProblem] = []
    checked: set[tuple[str, str | None]] = set()
    for field_name, name, values, scope in each_value(raw):
        if name not in parameters:
            continue
        for value in values:
            for directory in _directories(parameters[name], value):
                dataset = _dataset_of(scope, raw, parameters)
                if (directory, dataset) in checked:
                    continue
                checked.add((directory, dataset))
                where = (notebook.parent / directory).resolve()  # the kernel runs in that folder
                if not where.is_dir():
                    problems.append(
                        SpecProblem(
                            file,
                            field_name,
                            f"data directory {directory!r} does not exist (looked at {where}; "
                            f"relative paths start at the notebook's folder, {notebook.parent})",
                            "correct the path, or import the data set with `cvlab data import`",
                        )
                    )
                    continue
                problem = _layout_problem(dataset, where)
                if problem:
                    problems.append(
                        SpecProblem(
                            file,
                            field_name,
                            f"data directory {directory!r} ({where}) is not a {dataset} layout: "
                            f"{problem}",
                            "arrange the files as the expected layout says, or correct the path",
                        )
                    )
    return problems


def _layout_problem(dataset: str | None, directory: Path) -> str | None:
    """What the data set's loader says about `directory`, or None if it reads it (or there is
    no file-based data set to check it against)."""
    if dataset is None or dataset not in cvlab.data.file_based_names():
        return None
    try:
        cvlab.data.index(dataset, directory=directory)
    except (DatasetLayoutError, DatasetNotFoundError) as exc:
        return " ".join(str(exc).split())
    except Exception:  # noqa: BLE001 - options the loader needs at run time; not a layout fault
        return None
    return None


@dataclass
class MissingData:
    """A data set some runs need that is not on this machine."""

    dataset: str
    message: str  # the loader's own words: where it looked, the layout it expects
    runs: list[str] = field(default_factory=list)  # "name [run_id]"

    def __str__(self) -> str:
        shown = ", ".join(self.runs[:10]) + (
            f" and {len(self.runs) - 10} more" if len(self.runs) > 10 else ""
        )
        first_line = self.message.strip().splitlines()[0] if self.message.strip() else ""
        count = "1 run needs" if len(self.runs) == 1 else f"{len(self.runs)} runs need"
        return (
            f"data set {self.dataset!r} is not in the data cache ({data_root()}); {count} it: "
            f"{shown}. {first_line}\n"
            f"Fix: `cvlab data import {self.dataset} PATH` (an archive or folder you have), or "
            f"`cvlab data fetch {self.dataset}` where it can be downloaded; or leave those runs "
            "out with --only (e.g. --only smoke=true)"
        )


def _run_data(
    params: dict[str, Any], parameters: dict[str, NotebookParameter], notebook: Path
) -> list[tuple[str, dict[str, Any]]]:
    """(data set, index options) for each file-based data set a run's parameters name, the
    notebook's defaults filling in what the run does not set."""
    values = {name: p.default for name, p in parameters.items()} | dict(params)
    file_based = set(cvlab.data.file_based_names())
    found = []
    for name in _dataset_params(parameters):
        dataset = values.get(name)
        if not isinstance(dataset, str) or dataset not in file_based:
            continue
        directory = None
        for pname, param in parameters.items():
            for d in _directories(param, values.get(pname)):
                directory = d
        options: dict[str, Any] = {}
        if directory is not None:
            options["directory"] = (notebook.parent / directory).resolve()
        found.append((dataset, options))
    return found


def missing_data(plans, parameters: dict[str, NotebookParameter]) -> list[MissingData]:
    """The file-based data sets the runs of `plans` name that the data cache lacks (a run's
    loader raises DatasetNotFoundError for them), each with the runs that need it."""
    status: dict[tuple[str, str], str | None] = {}  # (data set, directory) -> why missing
    missing: dict[str, MissingData] = {}
    for plan in plans:
        for dataset, options in _run_data(plan.params, parameters, plan.notebook):
            key = (dataset, str(options.get("directory", "")))
            if key not in status:
                try:
                    cvlab.data.index(dataset, **options)
                    status[key] = None
                except DatasetNotFoundError as exc:
                    status[key] = str(exc)
                except Exception:  # noqa: BLE001 - there, in a layout or with options the run decides
                    status[key] = None
            if status[key] is not None:
                entry = missing.setdefault(dataset, MissingData(dataset, status[key]))
                entry.runs.append(f"{plan.name} [{plan.run_id}]")
    return list(missing.values())
