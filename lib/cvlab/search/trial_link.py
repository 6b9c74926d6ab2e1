"""A run's link to its Optuna trial, written into its record by the driver before the kernel
starts, so that a notebook's ordinary `log_epoch` (the Keras callback's) reports each epoch to
the study and learns at once whether the pruner cut it. Chapter notebooks need no change."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel

from cvlab.errors import PruneMetricError
from cvlab.search.spec import PruneSpec


class TrialLink(BaseModel):
    """Which trial of which study a run is, and what it reports (the record's `trial`)."""

    storage: str  # sqlite:///.../logs/optuna.db, or grpc://HOST:PORT (a Dask run)
    study: str
    number: int  # the trial's number in the study (what optuna-dashboard shows)
    trial_id: int
    direction: Literal["maximize", "minimize"]
    grid_file: str = ""  # named in the errors a run reports
    prune: PruneSpec | None = None
    max_epochs: int | None = None  # Hyperband's largest bracket


class PruneVerdict(BaseModel):
    epoch: int
    value: float
    rung: int | None = None
    message: str


class EpochReporter:
    """Reports a run's epochs to its trial (kernel side) and says when the pruner cuts it."""

    def __init__(self, link: TrialLink):
        self.link = link
        self._trial: Any = None
        self._study: Any = None
        self._storage: Any = None

    def _open(self) -> Any:
        if self._trial is None:
            import optuna  # lazy: only runs of a pruned grid need it

            from cvlab.search.pruners import make_pruner  # lazy: optuna
            from cvlab.search.storage import open_storage  # lazy: optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
            assert self.link.prune is not None
            self._storage = open_storage(self.link.storage)
            self._study = optuna.load_study(
                study_name=self.link.study,
                storage=self._storage,
                pruner=make_pruner(self.link.prune, self.link.max_epochs),
            )
            self._trial = optuna.trial.Trial(self._study, self.link.trial_id)
        return self._trial

    def report(self, epoch: int, values: dict[str, float]) -> PruneVerdict | None:
        """Report `epoch`'s value of the prune metric; the verdict if the pruner cuts the run
        here, else None. Raises PruneMetricError when the run does not log the metric."""
        prune = self.link.prune
        if prune is None:
            return None
        if prune.metric not in values:
            logged = ", ".join(k for k in values if k not in {"epoch", "time_s"}) or "(none)"
            raise PruneMetricError(
                f"{self.link.grid_file or 'the grid'}: prune.metric {prune.metric!r} is not a "
                f"per-epoch metric this run logs (it logs: {logged}). Fix: set prune.metric "
                "in the grid file to one of those"
            )
        value = float(values[prune.metric])
        if not math.isfinite(value):
            return None  # a NaN run is `diverged`, which says more than pruned
        trial = self._open()
        trial.report(value, int(epoch))
        if not trial.should_prune():
            return None
        from cvlab.search.pruners import rung_of  # lazy: optuna

        frozen = self._storage.get_trial(self.link.trial_id)
        rung = rung_of(frozen)
        where = f" at rung {rung}" if rung is not None else ""
        return PruneVerdict(
            epoch=int(epoch),
            value=value,
            rung=rung,
            message=(
                f"pruned by {prune.method} after epoch {epoch}{where}: {prune.metric}="
                f"{value:.4g} is not among the best runs there"
            ),
        )
