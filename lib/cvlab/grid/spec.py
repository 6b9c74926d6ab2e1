"""The grid spec: a YAML file validated in full before anything runs.

Every problem is collected (not just the first) and reported once with file, field and fix. The
checks live one job per module: the YAML dialect (cvlab.config_yaml), the schema
(grid.schema), the notebook's parameters (grid.notebook_params, grid.param_checks), registry
names (grid.name_checks), data directories and data sets (grid.data_checks).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cvlab.config_yaml import GridYamlLoader, parse_yaml
from cvlab.errors import GridSpecError, SpecProblem
from cvlab.grid.data_checks import data_directory_problems
from cvlab.grid.name_checks import name_problems
from cvlab.grid.notebook_params import NotebookParameter, read_notebook_parameters
from cvlab.grid.param_checks import INJECTED_PARAMS, SEED_PARAM, parameter_problems
from cvlab.grid.schema import GRID_NAME as _GRID_NAME
from cvlab.grid.schema import (
    GridSpec,
    ModuleName,
    RankBy,
    empty_list_problems,
    pydantic_problems,
)
from cvlab.grid.search_checks import search_problems

__all__ = [
    "INJECTED_PARAMS",
    "SEED_PARAM",
    "GridSpec",
    "GridYamlLoader",
    "ModuleName",
    "NotebookParameter",
    "RankBy",
    "ValidatedGrid",
    "load_grid_spec",
    "notebook_problems",
    "parameter_problems",
    "parse_yaml",
    "read_notebook_parameters",
    "validate_params",
]


@dataclass
class ValidatedGrid:
    """A grid spec that passed validation, with its resolved notebook and parameters."""

    path: Path
    spec: GridSpec
    notebook: Path
    parameters: dict[str, NotebookParameter] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.spec.name or self.path.stem


def notebook_problems(
    file: str, raw: dict[str, Any], notebook: Path, notebook_value: str
) -> tuple[dict[str, NotebookParameter], list[SpecProblem]]:
    """The notebook's parameters, and every problem of `raw`'s parameters against them: names
    it does not define, wrong types, unknown registry names, data directories."""
    if not notebook.is_file():
        return {}, [
            SpecProblem(
                file,
                "notebook",
                f"notebook {notebook_value!r} not found (looked at {notebook})",
                "give the path relative to the grid file, e.g. ../notebooks/00_quickstart.ipynb",
            )
        ]
    try:
        found = read_notebook_parameters(notebook)
    except Exception as exc:  # noqa: BLE001 - not JSON, merge markers, not a notebook
        return {}, [
            SpecProblem(
                file,
                "notebook",
                f"{notebook.name} is not a readable notebook ({type(exc).__name__}: "
                f"{str(exc).splitlines()[0][:200] if str(exc) else ''})",
                "open it in Jupyter and save it again, or restore it from git",
            )
        ]
    if found is None:
        return {}, [
            SpecProblem(
                file,
                "notebook",
                f"{notebook.name} has no cell tagged 'parameters'",
                "tag the notebook's first code cell 'parameters' (View > Cell Toolbar > Tags)",
            )
        ]
    if not found:
        return {}, []
    problems = parameter_problems(file, raw, found, notebook)
    problems += name_problems(file, raw, found)
    problems += data_directory_problems(file, raw, found, notebook)
    return found, problems


def validate_params(notebook: str | Path, params: dict[str, Any]) -> dict[str, NotebookParameter]:
    """Check one run's `params` against `notebook` as a grid's `params:` are checked (names,
    types, registry names, data directories); return the notebook's parameters, or raise
    GridSpecError listing every problem."""
    notebook = Path(notebook).resolve()
    parameters, problems = notebook_problems(
        str(notebook), {"params": dict(params)}, notebook, str(notebook)
    )
    if problems:
        raise GridSpecError(problems)
    return parameters


def load_grid_spec(path: str | Path) -> ValidatedGrid:
    """Read and validate a grid YAML file; raise GridSpecError listing every problem."""
    path = Path(path)
    file = str(path)
    if not path.is_file():
        raise GridSpecError(
            [
                SpecProblem(
                    file, "(file)", "no such grid file", "check the path; grids live in grids/"
                )
            ]
        )
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise GridSpecError(
            [
                SpecProblem(
                    file, "(file)", f"not UTF-8 text ({exc.reason})", "save the file as UTF-8"
                )
            ]
        ) from exc
    try:
        raw = parse_yaml(text)
    except yaml.constructor.ConstructorError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise GridSpecError(
            [
                SpecProblem(
                    file,
                    where,
                    f"YAML tag refused ({exc.problem}): grid files are read with YAML's safe "
                    "loader, which builds plain values only, never Python objects",
                    "write the value as a plain string, number, list or mapping",
                )
            ]
        ) from exc
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        reason = getattr(exc, "problem", None) or str(exc)
        raise GridSpecError(
            [SpecProblem(file, where, f"YAML syntax error: {reason}", "fix the YAML at that spot")]
        ) from exc
    if not isinstance(raw, dict):
        raise GridSpecError(
            [
                SpecProblem(
                    file,
                    "(top level)",
                    "the file is not a mapping of keys",
                    "start from grids/quickstart.yaml (notebook, params, grid, rank_by)",
                )
            ]
        )

    problems = empty_list_problems(file, raw)
    try:
        spec = GridSpec.model_validate(raw)
    except ValidationError as exc:
        seen = {(p.field, p.message) for p in problems}
        problems += [p for p in pydantic_problems(file, exc) if (p.field, p.message) not in seen]
        spec = None

    notebook_value = raw.get("notebook")
    notebook = (path.parent / notebook_value).resolve() if isinstance(notebook_value, str) else None
    parameters: dict[str, NotebookParameter] = {}
    if notebook is not None and notebook_value:
        parameters, found_problems = notebook_problems(file, raw, notebook, notebook_value)
        problems += found_problems

    if not isinstance(raw.get("name"), str) and not _GRID_NAME.match(path.stem):
        problems.append(
            SpecProblem(
                file,
                "name",
                f"the grid is named after its file, {path.stem!r}, which cannot name a folder",
                "add `name: my_grid` (letters, digits, `_`, `-`, `.`), or rename the file",
            )
        )
    if spec is not None and notebook is not None and notebook.is_file():
        problems += search_problems(file, spec, parameters, notebook)
    if problems:
        raise GridSpecError(problems)
    assert spec is not None and notebook is not None
    return ValidatedGrid(path=path, spec=spec, notebook=notebook, parameters=parameters)
