"""`prune:` as an Optuna pruner: ASHA (successive halving), Hyperband or the median rule.

Optuna's pruners take every decision; the driver and the run's kernel build the same pruner
from the same `PruneSpec`, because a study keeps its trials in storage but not its pruner.
"""

from __future__ import annotations

import optuna

from cvlab.search.spec import PruneSpec


def make_pruner(spec: PruneSpec, max_epochs: int | None = None) -> optuna.pruners.BasePruner:
    """The pruner `spec` names. Epochs are Optuna's steps and resources: a run's first rung is
    at `min_epochs`, the next at `min_epochs * reduction_factor`, and so on; Hyperband's brackets
    span `min_epochs` to `max_epochs` (the runs' epoch count; None: learnt from the first run)."""
    if spec.method == "asha":
        return optuna.pruners.SuccessiveHalvingPruner(
            min_resource=spec.min_epochs, reduction_factor=spec.reduction_factor
        )
    if spec.method == "hyperband":
        return optuna.pruners.HyperbandPruner(
            min_resource=spec.min_epochs,
            max_resource=max_epochs if max_epochs is not None else "auto",
            reduction_factor=spec.reduction_factor,
        )
    # median: cut a run whose best value so far is worse than the median of other runs' at the
    # same epoch, from epoch `min_epochs` on, once `startup_runs` runs have finished (Optuna
    # skips steps < n_warmup_steps; epochs are steps from 1, so epoch min_epochs is the first)
    return optuna.pruners.MedianPruner(
        n_startup_trials=spec.startup_runs, n_warmup_steps=spec.min_epochs
    )


def rung_of(trial: optuna.trial.FrozenTrial) -> int | None:
    """The successive-halving rung a trial last reached (0: the first), or None if it reached
    none (or the pruner has no rungs, as the median rule)."""
    rungs = [
        int(key.rsplit("_", 1)[1])
        for key in trial.system_attrs
        if key.startswith("completed_rung_") and key.rsplit("_", 1)[1].isdigit()
    ]
    return max(rungs) if rungs else None
