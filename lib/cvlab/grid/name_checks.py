"""Values that name a registry entry (a model, data set, optimizer or schedule), checked against
the registry before any run starts, with the known names and the closest one.

Which parameters name one is what the notebook declares (`net: ModelName = "resnet"`, see
cvlab.param_types), never a guess from the parameter's name: a notebook whose `optimizer` is its
own (e.g. "lbfgs") declares nothing and is left alone.
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


REGISTRY_KINDS = ("model", "data set", "optimizer", "schedule")


def parameter_kind(param: NotebookParameter) -> str | None:
    """The registry whose names `param` takes, as its notebook declares it, or None."""
    kind = param.declared_kind
    return kind if kind in REGISTRY_KINDS else None


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
