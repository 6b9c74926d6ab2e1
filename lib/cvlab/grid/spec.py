"""The grid spec: a YAML file validated in full before anything runs.

Every problem is collected (not just the first) and reported once with file, field and fix.
"""

from __future__ import annotations

import ast
import difflib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    ValidationError,
)

from cvlab.errors import GridSpecError, SpecProblem


class GridYamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader, reading `1e-3` as a float as YAML 1.2 does (PyYAML reads a string)."""


GridYamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(
        r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
        |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
        |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
        |[-+]?\.(?:inf|Inf|INF)
        |\.(?:nan|NaN|NAN))$""",
        re.X,
    ),
    list("-+0123456789."),
)


def parse_yaml(text: str):
    return yaml.load(text, Loader=GridYamlLoader)  # noqa: S506 - a SafeLoader subclass


# Parameters the runner injects itself; a grid may not set them.
INJECTED_PARAMS = ("run_dir",)
SEED_PARAM = "seed"


_GRID_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_MODULE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _module_name(value: str) -> str:
    if not _MODULE_NAME.match(value):
        raise ValueError(f"{value!r} is not a Python module name")
    return value


ModuleName = Annotated[str, AfterValidator(_module_name)]


class RankBy(BaseModel):
    """Which final metric orders the leaderboard, and whether higher is better."""

    model_config = ConfigDict(extra="forbid")
    metric: str = Field(min_length=1)
    mode: Literal["max", "min"] = "max"


class GridSpec(BaseModel):
    """The YAML grid as written, before expansion into runs."""

    model_config = ConfigDict(extra="forbid")

    notebook: str = Field(min_length=1)
    name: str | None = Field(default=None, pattern=_GRID_NAME.pattern)
    description: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    runs: list[dict[str, Any]] | None = None
    seeds: list[int] | None = None
    timeout: PositiveFloat | None = Field(default=None, allow_inf_nan=False)
    rank_by: RankBy
    name_by: list[str] | None = Field(default=None, min_length=1)
    kernel: str = "python3"
    # Modules a warm kernel imports before its run, besides the notebook's own import lines.
    prewarm: list[ModuleName] | None = None


@dataclass
class NotebookParameter:
    """A variable defined in a notebook's `parameters` cell."""

    name: str
    default_source: str
    type_name: str

    @property
    def default(self) -> Any:
        """The default as a Python value, or `...` when it is not a literal."""
        try:
            return ast.literal_eval(self.default_source)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return ...


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


_FIXES = {
    "notebook": "give the path of the base notebook, relative to the grid file",
    "rank_by": "write e.g. `rank_by: {metric: test_accuracy, mode: max}`",
    "rank_by.mode": "use `max` (higher is better) or `min` (lower is better)",
    "rank_by.metric": "name the final metric the notebook logs with run.log_metrics",
    "timeout": "give the per-run limit in seconds, a positive number",
    "seeds": "give a list of integers, e.g. `seeds: [1, 2, 3]`",
    "grid": "map each parameter to a non-empty list of values, e.g. `lr: [0.1, 0.01]`",
    "runs": "give a list of parameter mappings, e.g. `runs: [{lr: 0.1}]`",
    "params": "map parameter names to single values",
    "name": "use letters, digits, `_`, `-` or `.` (it names the output folder)",
    "name_by": "list the parameters that name each run, e.g. `name_by: [experiment, smoke]`",
    "prewarm": "list module names to import before each run, e.g. `prewarm: [keras, sklearn.datasets]`",
}


def _field_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _fix_for(loc: tuple[Any, ...]) -> str:
    name = _field_name(loc)
    for key in (name, ".".join(str(p) for p in loc[:2]), str(loc[0]) if loc else ""):
        if key in _FIXES:
            return _FIXES[key]
    return "correct the value as the message says"


def _pydantic_problems(file: str, exc: ValidationError) -> list[SpecProblem]:
    allowed = ", ".join(GridSpec.model_fields)
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            where = _field_name(loc[:-1]) if len(loc) > 1 else "(top level)"
            known = ", ".join(RankBy.model_fields) if loc[0] == "rank_by" else allowed
            problems.append(
                SpecProblem(
                    file,
                    _field_name(loc),
                    f"unknown key {loc[-1]!r} in {where}",
                    f"remove it, or use one of: {known}",
                )
            )
        elif err["type"] == "missing":
            problems.append(
                SpecProblem(file, _field_name(loc), "required key is missing", _fix_for(loc))
            )
        elif err["type"] == "too_short" and loc and loc[0] in {"grid", "seeds", "runs"}:
            problems.append(
                SpecProblem(
                    file, _field_name(loc), "empty list: it would expand to no runs", _fix_for(loc)
                )
            )
        else:
            message = err["msg"].removeprefix("Value error, ")  # our validators' own words
            problems.append(SpecProblem(file, _field_name(loc), message, _fix_for(loc)))
    return problems


def _empty_list_problems(file: str, raw: dict[str, Any]) -> list[SpecProblem]:
    problems = []
    grid = raw.get("grid")
    if isinstance(grid, dict):
        for key, values in grid.items():
            if isinstance(values, list) and not values:
                problems.append(
                    SpecProblem(
                        file,
                        f"grid.{key}",
                        "empty list: it would expand to no runs",
                        _FIXES["grid"],
                    )
                )
    for key in ("seeds", "runs"):
        if isinstance(raw.get(key), list) and not raw[key]:
            problems.append(
                SpecProblem(
                    file,
                    key,
                    "empty list: it would expand to no runs",
                    f"remove `{key}`, or {_FIXES[key][0].lower()}{_FIXES[key][1:]}",
                )
            )
    return problems


def read_notebook_parameters(notebook: Path) -> dict[str, NotebookParameter] | None:
    """The variables of the notebook's `parameters` cell (via papermill), or None if it has none."""
    import papermill

    inspected = papermill.inspect_notebook(str(notebook))
    if not inspected:
        return None
    return {
        name: NotebookParameter(name, str(info.get("default")), str(info.get("inferred_type_name")))
        for name, info in inspected.items()
    }


def _type_mismatch(value: Any, default: Any) -> str | None:
    """Why `value` cannot stand for a parameter whose default is `default`, or None if it can."""
    if default is ... or default is None or value is None:
        return None
    expected: tuple[type, ...]
    if isinstance(default, bool):
        expected = (bool,)
    elif isinstance(default, int):
        expected = (int,)
    elif isinstance(default, float):
        expected = (int, float)
    elif isinstance(default, str):
        expected = (str,)
    elif isinstance(default, list | tuple):
        expected = (list, tuple)
    elif isinstance(default, dict):
        expected = (dict,)
    else:
        return None
    if isinstance(value, bool) and bool not in expected:
        return f"{value!r} is a bool"
    if not isinstance(value, expected):
        return f"{value!r} is a {type(value).__name__}"
    return None


def _sections(raw: dict[str, Any]) -> tuple[dict, dict, list, list | None]:
    """`params`, `grid`, `runs` and `seeds` of a raw spec, keeping only parts of the right shape,
    so parameter names are checked even when other fields failed validation."""
    params = raw.get("params") if isinstance(raw.get("params"), dict) else {}
    grid = raw.get("grid") if isinstance(raw.get("grid"), dict) else {}
    grid = {k: v for k, v in grid.items() if isinstance(v, list)}
    runs = (
        [r for r in raw.get("runs") or [] if isinstance(r, dict)]
        if isinstance(raw.get("runs"), list)
        else []
    )
    seeds = raw.get("seeds") if isinstance(raw.get("seeds"), list) else None
    return params, grid, runs, seeds


def parameter_problems(
    file: str, raw: dict[str, Any], parameters: dict[str, NotebookParameter], notebook: Path
) -> list[SpecProblem]:
    """Names the notebook's parameters cell does not define, and values of the wrong type."""
    params, grid, runs, seeds = _sections(raw)
    problems: list[SpecProblem] = []
    defined = ", ".join(sorted(parameters)) or "(none)"

    def check(field_name: str, name: str, values: list[Any]) -> None:
        if name in INJECTED_PARAMS:
            problems.append(
                SpecProblem(
                    file,
                    field_name,
                    f"{name!r} is set by the runner for every run",
                    f"remove {name!r}",
                )
            )
            return
        if name not in parameters:
            problems.append(
                SpecProblem(
                    file,
                    field_name,
                    f"parameter {name!r} is not defined in the parameters cell of {notebook.name}",
                    f"use one of: {defined}; or add `{name} = ...` to that cell",
                )
            )
            return
        param = parameters[name]
        for value in values:
            why = _type_mismatch(value, param.default)
            if why:
                problems.append(
                    SpecProblem(
                        file,
                        field_name,
                        f"{why}, but the notebook default is {param.default_source} "
                        f"({type(param.default).__name__})",
                        f"give a {type(param.default).__name__} value, or change the default in "
                        f"the parameters cell of {notebook.name}",
                    )
                )
                break

    for name, value in params.items():
        check(f"params.{name}", name, [value])
    for name, values in grid.items():
        check(f"grid.{name}", name, values)
        if name in params:
            problems.append(
                SpecProblem(
                    file,
                    f"grid.{name}",
                    f"{name!r} is both a fixed param and a grid axis",
                    f"keep it in one place: remove params.{name} or grid.{name}",
                )
            )
    for i, run in enumerate(runs):
        for name, value in run.items():
            check(f"runs[{i}].{name}", name, [value])
    for injected in INJECTED_PARAMS:
        if injected not in parameters:
            problems.append(
                SpecProblem(
                    file,
                    "notebook",
                    f"{notebook.name}'s parameters cell does not define {injected!r}",
                    f"add `{injected} = None` to the parameters cell (the runner injects it)",
                )
            )
    name_by = raw.get("name_by") if isinstance(raw.get("name_by"), list) else []
    for key in name_by:
        if key not in parameters and key != SEED_PARAM:
            problems.append(
                SpecProblem(
                    file,
                    "name_by",
                    f"{key!r} is not a parameter of {notebook.name}",
                    f"use parameters the runs set, e.g. one of: {defined}",
                )
            )
    if seeds and SEED_PARAM not in parameters:
        problems.append(
            SpecProblem(
                file,
                "seeds",
                f"seeds are given but {notebook.name}'s parameters cell does not define 'seed'",
                "add `seed = 42` to the parameters cell and pass it to cvlab.runs.start",
            )
        )
    if seeds and any(SEED_PARAM in d for d in [params, grid, *runs]):
        problems.append(
            SpecProblem(
                file,
                "seeds",
                "'seed' is set both by `seeds` and as a parameter",
                "list seeds only under `seeds`",
            )
        )
    return problems


# Parameters whose values are names in a cvlab registry, by parameter name: a typo in a grid is
# caught before any run starts, with the known names and the closest one.
_MODEL_PARAMS = {"model", "model_name", "backbone", "transfer_backbone", "architecture"}
_DATASET_PARAMS = {"dataset", "data_set"}
# Parameters that hold a data directory (also `directory` inside `dataset_options`).
_DIRECTORY_PARAMS = {"data_dir", "data_directory", "dataset_dir"}


def _registry_of(param: str) -> tuple[str, list[str], bool] | None:
    """(kind, known names, case-insensitive) for a parameter that names a registry entry."""
    if param in _MODEL_PARAMS:
        import cvlab.models

        return "model", cvlab.models.names(), False
    if param in _DATASET_PARAMS:
        import cvlab.data

        return "data set", cvlab.data.names(), False
    if param == "optimizer" or param.endswith("_optimizer"):
        from cvlab.train.optimizers import OPTIMIZERS

        return "optimizer", sorted(OPTIMIZERS), True
    if param == "schedule" or param.endswith("_schedule"):
        from cvlab.train.schedules import SCHEDULES

        return "schedule", sorted(SCHEDULES), True
    return None


def _unknown_name(kind: str, value: str, known: list[str], fold: bool) -> str | None:
    if (value.lower() if fold else value) in known:
        return None
    close = difflib.get_close_matches(value.lower() if fold else value, known, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {kind} {value!r}{hint}; known {kind}s: {', '.join(known)}"


def _uses_registry(default: Any, kind: str, known: list[str], fold: bool) -> bool:
    """Whether the notebook's default says the parameter takes a registry name: a notebook
    whose `optimizer` defaults to something of its own (e.g. "lbfgs") is not checked."""
    if default is None or default is ...:
        return True
    if kind == "schedule" and isinstance(default, dict):
        return True
    return isinstance(default, str) and (default.lower() if fold else default) in known


def name_problems(
    file: str, raw: dict[str, Any], parameters: dict[str, NotebookParameter]
) -> list[SpecProblem]:
    """Model, data set, optimizer and schedule names that no cvlab registry knows."""
    params, grid, runs, _ = _sections(raw)
    problems: list[SpecProblem] = []

    def check(field_name: str, name: str, values: list[Any]) -> None:
        registry = _registry_of(name)
        if registry is None or name not in parameters:
            return
        kind, known, fold = registry
        if not _uses_registry(parameters[name].default, kind, known, fold):
            return
        for value in values:
            if kind == "schedule" and isinstance(value, dict):
                from cvlab.train.schedules import ScheduleError, parse_schedule

                try:
                    parse_schedule(value)
                except ScheduleError as exc:
                    problems.append(
                        SpecProblem(
                            file,
                            field_name,
                            str(exc).replace("\n", " "),
                            f"write e.g. {{name: step, factor: 0.25, every: 5}}; "
                            f"schedules: {', '.join(known)}",
                        )
                    )
                    return
                continue
            if not isinstance(value, str):
                continue
            why = _unknown_name(kind, value, known, fold)
            if why:
                problems.append(
                    SpecProblem(file, field_name, why, f"use one of the known {kind} names")
                )
                return

    for name, value in params.items():
        check(f"params.{name}", name, [value])
    for name, values in grid.items():
        check(f"grid.{name}", name, values)
    for i, run in enumerate(runs):
        for name, value in run.items():
            check(f"runs[{i}].{name}", name, [value])
    return problems


def _dataset_of(scope: dict[str, Any], raw: dict[str, Any], parameters) -> str | None:
    """The one data set a run scope uses (its own, else the grid's single one, else the
    notebook default), or None when several are possible."""
    params, grid, _, _ = _sections(raw)
    for key in _DATASET_PARAMS:
        for source in (scope, params):
            if isinstance(source.get(key), str):
                return source[key]
        if key in grid:
            values = {v for v in grid[key] if isinstance(v, str)}
            return values.pop() if len(values) == 1 else None
        if key in parameters and isinstance(parameters[key].default, str):
            return parameters[key].default
    return None


def data_directory_problems(
    file: str, raw: dict[str, Any], parameters: dict[str, NotebookParameter], notebook: Path
) -> list[SpecProblem]:
    """Data directories (`data_dir`, `dataset_options.directory`) that do not exist, or that
    the data set's own loader cannot read (its message names the file it expected)."""
    params, grid, runs, _ = _sections(raw)
    problems: list[SpecProblem] = []
    checked: set[tuple[str, str | None]] = set()

    def directories(name: str, value: Any) -> list[str]:
        if name in _DIRECTORY_PARAMS and isinstance(value, str):
            return [value]
        if name == "dataset_options" and isinstance(value, dict):
            found = value.get("directory")
            return [found] if isinstance(found, str) else []
        return []

    def check(field_name: str, name: str, value: Any, scope: dict[str, Any]) -> None:
        if name not in parameters:
            return
        for directory in directories(name, value):
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

    for name, value in params.items():
        check(f"params.{name}", name, value, {})
    for name, values in grid.items():
        for value in values:
            check(f"grid.{name}", name, value, {})
    for i, run in enumerate(runs):
        for name, value in run.items():
            check(f"runs[{i}].{name}", name, value, run)
    return problems


def _layout_problem(dataset: str | None, directory: Path) -> str | None:
    """What the data set's loader says about `directory`, or None if it reads it (or there is
    no file-based data set to check it against)."""
    import cvlab.data
    from cvlab.errors import DatasetLayoutError, DatasetNotFoundError

    if dataset is None or dataset not in cvlab.data.file_based_names():
        return None
    try:
        cvlab.data.index(dataset, directory=directory)
    except (DatasetLayoutError, DatasetNotFoundError) as exc:
        return " ".join(str(exc).split())
    except Exception:  # noqa: BLE001 - options the loader needs at run time; not a layout fault
        return None
    return None


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

    problems = _empty_list_problems(file, raw)
    try:
        spec = GridSpec.model_validate(raw)
    except ValidationError as exc:
        seen = {(p.field, p.message) for p in problems}
        problems += [p for p in _pydantic_problems(file, exc) if (p.field, p.message) not in seen]
        spec = None

    notebook_value = raw.get("notebook")
    notebook = (path.parent / notebook_value).resolve() if isinstance(notebook_value, str) else None
    parameters: dict[str, NotebookParameter] = {}
    if notebook is not None and notebook_value:
        if not notebook.is_file():
            problems.append(
                SpecProblem(
                    file,
                    "notebook",
                    f"notebook {notebook_value!r} not found (looked at {notebook})",
                    "give the path relative to the grid file, e.g. ../notebooks/00_quickstart.ipynb",
                )
            )
        else:
            try:
                found = read_notebook_parameters(notebook)
            except Exception as exc:  # noqa: BLE001 - not JSON, merge markers, not a notebook
                problems.append(
                    SpecProblem(
                        file,
                        "notebook",
                        f"{notebook.name} is not a readable notebook ({type(exc).__name__}: "
                        f"{str(exc).splitlines()[0][:200] if str(exc) else ''})",
                        "open it in Jupyter and save it again, or restore it from git",
                    )
                )
                found = {}
            if found is None:
                problems.append(
                    SpecProblem(
                        file,
                        "notebook",
                        f"{notebook.name} has no cell tagged 'parameters'",
                        "tag the notebook's first code cell 'parameters' (View > Cell Toolbar > Tags)",
                    )
                )
            elif found:
                parameters = found
                problems += parameter_problems(file, raw, parameters, notebook)
                problems += name_problems(file, raw, parameters)
                problems += data_directory_problems(file, raw, parameters, notebook)

    if not isinstance(raw.get("name"), str) and not _GRID_NAME.match(path.stem):
        problems.append(
            SpecProblem(
                file,
                "name",
                f"the grid is named after its file, {path.stem!r}, which cannot name a folder",
                "add `name: my_grid` (letters, digits, `_`, `-`, `.`), or rename the file",
            )
        )
    if problems:
        raise GridSpecError(problems)
    assert spec is not None and notebook is not None
    return ValidatedGrid(path=path, spec=spec, notebook=notebook, parameters=parameters)
