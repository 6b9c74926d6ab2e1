"""Values that name a registry entry (a model, data set, optimizer or schedule), checked against
the registry before any run starts, with the known names and the closest one.

Which parameters name one is what the notebook declares (`net: ModelName = "resnet"`, see
cvlab.param_types). A parameter without a declaration is taken as one only when it is named
after the registry itself (`model`/`model_name`, `dataset`, `optimizer`, `schedule`) and its
default is one of the registry's names (or None), so a notebook whose `optimizer` is its own
(e.g. "lbfgs") is left alone.
"""

from __future__ import annotations

import difflib
from typing import Any

import cvlab.data
import cvlab.models
import cvlab.train
from cvlab.errors import SpecProblem
from cvlab.grid.notebook_params import NotebookParameter
from cvlab.grid.schema import each_value
from cvlab.train.schedules import ScheduleError, parse_schedule

# An undeclared parameter with one of these names takes that registry's names.
IMPLICIT_KINDS = {
    "model": "model",
    "model_name": "model",
    "dataset": "data set",
    "optimizer": "optimizer",
    "schedule": "schedule",
}


def known_names(kind: str) -> tuple[list[str], bool]:
    """(the registry's names, whether it ignores case) for a kind of cvlab.param_types.KINDS."""
    if kind == "model":
        return cvlab.models.names(), False
    if kind == "data set":
        return cvlab.data.names(), False
    if kind == "optimizer":
        return sorted(cvlab.train.OPTIMIZERS), True
    if kind == "schedule":
        return sorted(cvlab.train.SCHEDULES), True
    raise ValueError(f"no registry of {kind!r}")


def parameter_kind(param: NotebookParameter) -> str | None:
    """The registry whose names `param` takes, or None (see the module's docstring)."""
    if param.declared_kind is not None:
        return param.declared_kind
    kind = IMPLICIT_KINDS.get(param.name)
    if kind is None:
        return None
    known, fold = known_names(kind)
    default = param.default
    if default is None or default is ...:
        return kind
    if kind == "schedule" and isinstance(default, dict):
        return kind
    if isinstance(default, str) and (default.lower() if fold else default) in known:
        return kind
    return None


def unknown_name(kind: str, value: str, known: list[str], fold: bool) -> str | None:
    """Why `value` is not a name of the registry (with the closest name), or None if it is."""
    if (value.lower() if fold else value) in known:
        return None
    close = difflib.get_close_matches(value.lower() if fold else value, known, n=1, cutoff=0.6)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    return f"unknown {kind} {value!r}{hint}; known {kind}s: {', '.join(known)}"


def name_problems(
    file: str, raw: dict[str, Any], parameters: dict[str, NotebookParameter]
) -> list[SpecProblem]:
    """Model, data set, optimizer and schedule names that no cvlab registry knows."""
    problems: list[SpecProblem] = []
    for field_name, name, values, _ in each_value(raw):
        kind = parameter_kind(parameters[name]) if name in parameters else None
        if kind is None:
            continue
        known, fold = known_names(kind)
        for value in values:
            if kind == "schedule" and isinstance(value, dict):
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
                    break
                continue
            if not isinstance(value, str) or not value:  # None or "": no name given
                continue
            why = unknown_name(kind, value, known, fold)
            if why:
                problems.append(
                    SpecProblem(file, field_name, why, f"use one of the known {kind} names")
                )
                break
    return problems
