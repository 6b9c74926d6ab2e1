"""`search.space` as Optuna distributions, and `search.sampler` as an Optuna sampler."""

from __future__ import annotations

import json
import math
from typing import Any

import optuna
from optuna.distributions import (
    BaseDistribution,
    CategoricalDistribution,
    FloatDistribution,
    IntDistribution,
)

from cvlab.search.spec import Distribution, SearchSpec


def categorical_value(value: Any) -> Any:
    """Optuna's choices are None, bool, int, float or str: other values (lists, mappings) go
    as their JSON text and come back through `param_value`."""
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return json.dumps(value, sort_keys=True)


def to_distribution(dist: Distribution) -> BaseDistribution:
    low_high = dist.values
    if dist.kind == "choice":
        return CategoricalDistribution([categorical_value(v) for v in dist.values])
    if dist.kind in {"uniform", "loguniform"}:
        return FloatDistribution(
            float(low_high[0]), float(low_high[1]), log=dist.log, step=dist.step
        )
    return IntDistribution(
        int(low_high[0]), int(low_high[1]), log=dist.log, step=int(dist.step or 1)
    )


def to_distributions(space: dict[str, Distribution]) -> dict[str, BaseDistribution]:
    return {name: to_distribution(dist) for name, dist in space.items()}


def param_value(dist: Distribution, value: Any) -> Any:
    """A sampled value as the notebook gets it: a choice's own value (not its JSON text)."""
    if dist.kind == "choice":
        for option in dist.values:
            if categorical_value(option) == value:
                return option
    if dist.kind in {"int", "logint"}:
        return int(value)
    if dist.kind in {"uniform", "loguniform"}:
        return float(value)
    return value


def space_size(space: dict[str, Distribution]) -> float:
    """How many distinct points `space` has (math.inf with a continuous range): a search
    of a small discrete space stops once each point has its run."""
    size = 1.0
    for dist in space.values():
        if dist.kind == "choice":
            size *= len({json.dumps(categorical_value(v)) for v in dist.values})
        elif dist.kind == "logint":
            size *= dist.values[1] - dist.values[0] + 1
        elif dist.kind == "int" or dist.step is not None:
            step = dist.step or 1
            size *= math.floor((dist.values[1] - dist.values[0]) / step + 1e-9) + 1
        else:
            return math.inf
    return size


def grid_space(grid: dict[str, list[Any]]) -> dict[str, Distribution]:
    """A `grid:` beside `search:` joins the space: each key a `choice` of its values."""
    return {name: Distribution(choice=list(values)) for name, values in grid.items()}


def full_space(search: SearchSpec, grid: dict[str, list[Any]]) -> dict[str, Distribution]:
    return {**grid_space(grid), **search.space}


def make_sampler(search: SearchSpec, space: dict[str, Distribution]) -> optuna.samplers.BaseSampler:
    """The sampler `search.sampler` names, seeded with `search.seed` (None: not reproducible).
    `grid` walks the product of the space, which needs every range to be a `choice`."""
    seed = search.seed
    name = search.sampler
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    if name == "tpe":
        # constant_liar: with --workers, runs still training count as bad, so TPE does not
        # propose the running point again (no effect when one run trains at a time)
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)
    # cmaes and gp need packages of their own: the grid's validation (grid.search_checks)
    # refuses them, with the pip command, before anything runs
    if name == "cmaes":
        return optuna.samplers.CmaEsSampler(seed=seed)
    if name == "gp":
        return optuna.samplers.GPSampler(seed=seed)
    choices = {n: [categorical_value(v) for v in d.values] for n, d in space.items()}
    return _AskTellGridSampler(choices, seed=seed)


class _AskTellGridSampler(optuna.samplers.GridSampler):
    """Optuna's grid sampler without its `study.stop()` once the grid is walked, which raises
    outside `study.optimize` (the driver asks and tells, and stops by its own count)."""

    def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
        return None
