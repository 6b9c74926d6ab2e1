"""A grid's `search:` and `prune:` against the rest of it and the notebook: what pydantic cannot
see field by field (a search with seeds, min_epochs beyond the runs' epochs, a grid sampler
over continuous ranges, a sampler whose package is missing)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

from cvlab.errors import SpecProblem
from cvlab.grid.notebook_params import NotebookParameter
from cvlab.grid.schema import GridSpec

EPOCHS_PARAM = "epochs"  # the parameter every training notebook names its epoch count
# samplers whose packages are optional: (module, pip package)
SAMPLER_PACKAGES = {"cmaes": [("cmaes", "cmaes")], "gp": [("torch", "torch"), ("scipy", "scipy")]}


def epoch_counts(spec: GridSpec, parameters: dict[str, NotebookParameter]) -> list[int]:
    """Every epoch count the grid's runs can have (params, grid, runs, search, the default)."""
    counts: list[Any] = []
    if EPOCHS_PARAM in spec.params:
        counts.append(spec.params[EPOCHS_PARAM])
    counts += spec.grid.get(EPOCHS_PARAM, [])
    counts += [run[EPOCHS_PARAM] for run in spec.runs or [] if EPOCHS_PARAM in run]
    if spec.search and EPOCHS_PARAM in spec.search.space:
        counts += spec.search.space[EPOCHS_PARAM].values
    if not counts and EPOCHS_PARAM in parameters:
        counts.append(parameters[EPOCHS_PARAM].default)
    return [int(c) for c in counts if isinstance(c, int) and not isinstance(c, bool)]


def search_problems(
    file: str, spec: GridSpec, parameters: dict[str, NotebookParameter], notebook: Path
) -> list[SpecProblem]:
    problems: list[SpecProblem] = []
    search, prune = spec.search, spec.prune
    if prune is not None:
        counts = epoch_counts(spec, parameters)
        # runs of several epoch counts (`epochs` in grid: or search:): an error only when no
        # run trains min_epochs epochs; the shorter ones are simply never cut
        if counts and prune.min_epochs > max(counts):
            problems.append(
                SpecProblem(
                    file,
                    "prune.min_epochs",
                    f"min_epochs {prune.min_epochs} is more than the runs' epochs "
                    f"({max(counts)}): no run would ever be cut",
                    f"give min_epochs of at most {max(counts)}, or train more epochs",
                )
            )
        if search is not None and prune.mode and prune.mode != spec.rank_by.mode:
            problems.append(
                SpecProblem(
                    file,
                    "prune.mode",
                    f"prune.mode {prune.mode!r} differs from rank_by.mode "
                    f"{spec.rank_by.mode!r}: a search optimizes one direction",
                    "remove prune.mode (it follows rank_by), or make the two agree",
                )
            )
    if search is None:
        return problems
    if spec.seeds:
        problems.append(
            SpecProblem(
                file,
                "seeds",
                "`seeds` with `search`: is each trial run once per seed, or the seed searched? "
                "That is ambiguous",
                "fix the seed in `params: {seed: 42}`, or search it: "
                "`search.space: {seed: {choice: [1, 2, 3]}}`; then rerun the best trial's "
                "parameters under `seeds:` in a grid",
            )
        )
    if spec.runs:
        problems.append(
            SpecProblem(
                file,
                "runs",
                "`runs` with `search`: a search samples its own runs",
                "put the listed runs in a grid file of their own, or give them as `choice` "
                "ranges in search.space",
            )
        )
    if not search.space and not spec.grid:
        problems.append(
            SpecProblem(
                file,
                "search.space",
                "nothing to search: the space is empty and there is no `grid:`",
                "map each parameter to one range, e.g. `lr: {loguniform: [1.0e-4, 0.1]}`",
            )
        )
    if search.sampler == "grid":
        continuous = [n for n, d in search.space.items() if d.kind != "choice"]
        if continuous:
            problems.append(
                SpecProblem(
                    file,
                    "search.sampler",
                    f"the grid sampler walks a product of choices, but {', '.join(continuous)} "
                    "is a range",
                    "give those as `choice: [...]`, or use sampler tpe or random",
                )
            )
    for module, package in SAMPLER_PACKAGES.get(search.sampler, []):
        if importlib.util.find_spec(module) is None:
            problems.append(
                SpecProblem(
                    file,
                    "search.sampler",
                    f"sampler {search.sampler!r} needs the {package!r} package, which is not "
                    "installed",
                    f"pip install {package}, or use sampler tpe or random",
                )
            )
    return problems
