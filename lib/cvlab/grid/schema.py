"""The grid file's schema (pydantic), and its validation errors as SpecProblems with a fix."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PositiveFloat,
    ValidationError,
)

from cvlab.errors import SpecProblem
from cvlab.search.spec import SEARCH_FIXES, Distribution, PruneSpec, SearchSpec

GRID_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
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
    name: str | None = Field(default=None, pattern=GRID_NAME.pattern)
    description: str = ""
    params: dict[str, Any] = Field(default_factory=dict)
    grid: dict[str, list[Any]] = Field(default_factory=dict)
    runs: list[dict[str, Any]] | None = None
    seeds: list[int] | None = None
    timeout: PositiveFloat | None = Field(default=None, allow_inf_nan=False)
    rank_by: RankBy
    name_by: list[str] | None = Field(default=None, min_length=1)
    kernel: str = "python3"
    # The Keras backend of every run (tensorflow, jax, torch); run_grid.py --backend overrides it.
    # None: $KERAS_BACKEND, else tensorflow.
    backend: str | None = Field(default=None, min_length=1)
    # Modules a warm kernel imports before its run, besides the notebook's own import lines.
    prewarm: list[ModuleName] | None = None
    # Stop hopeless runs at epoch ends (ASHA, Hyperband, median: cvlab.search.pruners).
    prune: PruneSpec | None = None
    # Sample runs from a space instead of (or beside) listing values under `grid:`.
    search: SearchSpec | None = None


FIXES = {
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
    "backend": "name a Keras backend: tensorflow, jax or torch",
    "prewarm": "list module names to import before each run, e.g. `prewarm: [keras, sklearn.datasets]`",
    **SEARCH_FIXES,
}
NESTED_KEYS = {
    "rank_by": list(RankBy.model_fields),
    "prune": list(PruneSpec.model_fields),
    "search": list(SearchSpec.model_fields),
}


def _field_name(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def _fix_for(loc: tuple[Any, ...]) -> str:
    name = _field_name(loc)
    if len(loc) >= 3 and loc[:2] == ("search", "space"):
        return FIXES["search.space"]
    for key in (name, ".".join(str(p) for p in loc[:2]), str(loc[0]) if loc else ""):
        if key in FIXES:
            return FIXES[key]
    return "correct the value as the message says"


def pydantic_problems(file: str, exc: ValidationError) -> list[SpecProblem]:
    """pydantic's errors in the grid's words: the field, what is wrong, and the fix."""
    allowed = ", ".join(GridSpec.model_fields)
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            where = _field_name(loc[:-1]) if len(loc) > 1 else "(top level)"
            nested = NESTED_KEYS.get(str(loc[0])) if len(loc) == 2 else None
            if len(loc) > 3 and loc[:2] == ("search", "space"):
                nested = ["uniform", "loguniform", "int", "logint", "choice", "step"]
            known = ", ".join(nested) if nested else allowed
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


def empty_list_problems(file: str, raw: dict[str, Any]) -> list[SpecProblem]:
    """Lists that would expand to no runs (`grid.x: []`, `seeds: []`, `runs: []`)."""
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
                        FIXES["grid"],
                    )
                )
    for key in ("seeds", "runs"):
        if isinstance(raw.get(key), list) and not raw[key]:
            problems.append(
                SpecProblem(
                    file,
                    key,
                    "empty list: it would expand to no runs",
                    f"remove `{key}`, or {FIXES[key][0].lower()}{FIXES[key][1:]}",
                )
            )
    return problems


def sections(raw: dict[str, Any]) -> tuple[dict, dict, list, list | None]:
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


def search_space(raw: dict[str, Any]) -> dict[str, Distribution]:
    """The ranges of a raw spec's `search.space` that are valid (the others are reported by the
    schema), so their parameters are checked even when other fields failed validation."""
    search = raw.get("search") if isinstance(raw.get("search"), dict) else {}
    space = search.get("space") if isinstance(search.get("space"), dict) else {}
    valid = {}
    for name, value in space.items():
        try:
            valid[name] = Distribution.model_validate(value)
        except ValidationError:
            continue
    return valid


def each_value(raw: dict[str, Any]):
    """(field, parameter, values, run scope) for every parameter the spec sets (a search range
    by the values it can give: a choice's, a range's bounds)."""
    params, grid, runs, _ = sections(raw)
    for name, dist in search_space(raw).items():
        yield f"search.space.{name}", name, dist.representatives(), {}
    for name, value in params.items():
        yield f"params.{name}", name, [value], {}
    for name, values in grid.items():
        yield f"grid.{name}", name, values, {}
    for i, run in enumerate(runs):
        for name, value in run.items():
            yield f"runs[{i}].{name}", name, [value], run
