"""A spec's parameters against the notebook's: names it defines, values of its defaults' types,
the runner's own parameters (`run_dir`, `seed`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from cvlab.errors import PrecisionError, SpecProblem
from cvlab.grid.notebook_params import NotebookParameter
from cvlab.grid.schema import search_space, sections
from cvlab.train.precision import policy_name

# Parameters the runner injects itself; a grid may not set them.
INJECTED_PARAMS = ("run_dir",)
SEED_PARAM = "seed"


def _precision_problem(value: Any) -> str | None:
    try:
        policy_name(value)
    except PrecisionError:
        return f"{value!r} is no precision: use false, true, float16 or bfloat16"
    return None


# Parameters that cvlab's own code reads more widely than the notebooks' defaults show:
# `mixed_precision = False` also takes "float16" / "bfloat16" (cvlab.train.precision).
WIDER_PARAMS = {"mixed_precision": _precision_problem}


def _a(noun: str) -> str:
    """`a float`, `an int`."""
    return f"{'an' if noun[:1] in 'aeiou' else 'a'} {noun}"


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


def parameter_problems(
    file: str, raw: dict[str, Any], parameters: dict[str, NotebookParameter], notebook: Path
) -> list[SpecProblem]:
    """Names the notebook's parameters cell does not define, and values of the wrong type."""
    params, grid, runs, seeds = sections(raw)
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
            wider = WIDER_PARAMS.get(name)
            if wider is not None and isinstance(value, str):
                if why := wider(value):
                    problems.append(
                        SpecProblem(file, field_name, why, f"give {name} one of those values")
                    )
                    break
                continue
            why = _type_mismatch(value, param.default)
            if why:
                problems.append(
                    SpecProblem(
                        file,
                        field_name,
                        f"{why}, but the notebook default is {param.default_source} "
                        f"({type(param.default).__name__})",
                        f"give {_a(type(param.default).__name__)} value, or change the default in "
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
    for name, dist in search_space(raw).items():
        check(f"search.space.{name}", name, dist.representatives())
        for where, section in (("params", params), ("grid", grid)):
            if name in section:
                problems.append(
                    SpecProblem(
                        file,
                        f"search.space.{name}",
                        f"{name!r} is both searched and set under `{where}:`",
                        f"keep it in one place: remove {where}.{name} or search.space.{name}",
                    )
                )
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
