"""The driver's side of a searched or pruned grid: its Optuna study (ask-and-tell), and the
queue that hands its runs out one at a time, a search's sampled only when a slot is free.

Each run is one trial. The driver alone creates trials and tells their results; the run's
kernel only reports epochs (cvlab.search.trial_link), so a run executes the same in-process,
in a `--workers` pool or on a Dask worker. The study lives in `logs/optuna.db`: a search
stopped by Ctrl-C or SIGKILL resumes from it with every trial, none run twice.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import replace
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from cvlab.grid.expand import RunPlan, make_plan, notebook_digest
from cvlab.grid.plan_queue import PlanQueue
from cvlab.grid.search_checks import epoch_counts
from cvlab.grid.spec import ValidatedGrid
from cvlab.runs.epoch_metrics import resolve_metric
from cvlab.runs.record import FINISHED_STATUSES, RunRecord
from cvlab.search.space import (
    categorical_value,
    full_space,
    grid_space,
    make_sampler,
    param_value,
    space_size,
    to_distributions,
)
from cvlab.search.spec import Distribution
from cvlab.search.storage import STUDY_DB, open_storage, sqlite_address
from cvlab.search.trial_link import TrialLink
from cvlab.workspace import Workspace

RUN_ID_ATTR = "run_id"
# a sampled trial whose run the search already has: told that run's result, not run again
DUPLICATE_ATTR = "duplicate_of"
# proposals in a row of runs the search already has before it stops sampling: the sampler
# keeps proposing what it has (a small discrete space exhausted, or TPE settled on one point)
MAX_DUPLICATES = 50


def study_name(grid: ValidatedGrid, backend: str) -> str:
    """`<grid>.<hash>`: a new study when the notebook's code, the fixed params, the space, the
    sampler or the pruner change (the old one stays in the file, for optuna-dashboard); raising
    `trials` goes on with the same study."""
    spec = grid.spec
    search = (
        spec.search.model_dump(mode="json", by_alias=True, exclude={"trials"})
        if spec.search
        else None
    )
    content = {
        "notebook": notebook_digest(grid.notebook),
        "params": spec.params,
        "grid": spec.grid,
        "search": search,
        "prune": spec.prune.model_dump(mode="json") if spec.prune else None,
        "backend": backend,
    }
    digest = hashlib.sha256(json.dumps(content, sort_keys=True, default=str).encode())
    return f"{grid.name}.{digest.hexdigest()[:8]}"


class GridStudy:
    """A grid's Optuna study: its trials by run id, new trials, and their results."""

    def __init__(self, grid: ValidatedGrid, ws: Workspace, backend: str, *, create: bool = True):
        self.grid = grid
        self.backend = backend
        spec = grid.spec
        self.mode = (spec.prune.mode if spec.prune and spec.prune.mode else None) or (
            spec.rank_by.mode
        )
        self.direction = "maximize" if self.mode == "max" else "minimize"
        self.space: dict[str, Distribution] = (
            full_space(spec.search, spec.grid) if spec.search else grid_space(spec.grid)
        )
        self.distributions = to_distributions(self.space)
        self.name = study_name(grid, backend)
        self.address = sqlite_address(ws.logs)
        self.digest = notebook_digest(grid.notebook)
        counts = epoch_counts(spec, grid.parameters)
        self.max_epochs = max(counts) if counts else None
        self.study: optuna.Study | None = None
        self.storage: optuna.storages.BaseStorage | None = None
        if create or (ws.logs / STUDY_DB).exists():
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            ws.logs.mkdir(parents=True, exist_ok=True)
            storage = self.storage = open_storage(self.address)
            sampler = make_sampler(spec.search, self.space) if spec.search else None
            if spec.search is not None and spec.search.seed is not None:
                # a resumed search: a sampler seeded as at the start would propose the first
                # trials again; offset the seed by the trials so far (still reproducible)
                done = _trial_count(storage, self.name)
                if done:
                    seed = spec.search.seed + done
                    sampler = make_sampler(
                        spec.search.model_copy(update={"seed": seed}), self.space
                    )
            if create:
                self.study = optuna.create_study(
                    study_name=self.name,
                    storage=storage,
                    sampler=sampler,
                    direction=self.direction,
                    load_if_exists=True,
                )
                # trials queued (trial_for) by a driver stopped before it asked for them: the
                # next ask would take them, with another run's values; they are no run's trial
                for _ in self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,)):
                    self.study.tell(self.study.ask(), state=TrialState.FAIL)
                self.study.set_user_attr("grid_file", str(grid.path))
                self.study.set_user_attr("space", {n: d.as_dict() for n, d in self.space.items()})
            else:
                try:
                    self.study = optuna.load_study(
                        study_name=self.name, storage=storage, sampler=sampler
                    )
                except KeyError:  # no such study yet: nothing sampled
                    self.study = None

    # -- trials ---------------------------------------------------------------------------
    def trials(self) -> list[FrozenTrial]:
        return [] if self.study is None else self.study.get_trials(deepcopy=False)

    def latest_by_run(self) -> dict[str, FrozenTrial]:
        """The newest trial of each run id, in the order runs were first sampled."""
        first: dict[str, int] = {}
        latest: dict[str, FrozenTrial] = {}
        for trial in self.trials():
            rid = trial.user_attrs.get(RUN_ID_ATTR)
            if rid is None:
                continue
            first.setdefault(rid, trial.number)
            latest[rid] = trial
        return {rid: latest[rid] for rid in sorted(first, key=first.__getitem__)}

    def name_keys(self) -> list[str]:
        return list(self.space)

    def plan_of(self, params: dict[str, Any], timeout: float | None) -> RunPlan:
        full = {**self.grid.spec.params, **params}
        return make_plan(
            self.grid, full, self.name_keys(), self.digest, timeout=timeout, backend=self.backend
        )

    def search_params(self, trial: FrozenTrial | optuna.trial.Trial) -> dict[str, Any]:
        return {n: param_value(d, trial.params[n]) for n, d in self.space.items()}

    def searched_plans(self, timeout: float | None) -> list[RunPlan]:
        """The runs a search has sampled so far, one per run id, oldest first."""
        return [
            self.plan_of(self.search_params(trial), timeout)
            for trial in self.latest_by_run().values()
            if set(self.space) <= set(trial.params)
        ]

    def _link(
        self, plan: RunPlan, trial: FrozenTrial | optuna.trial.Trial, storage: str
    ) -> RunPlan:
        link = TrialLink(
            storage=storage,
            study=self.name,
            number=trial.number,
            trial_id=trial._trial_id,
            direction=self.direction,
            grid_file=str(self.grid.path),
            prune=self.grid.spec.prune,
            max_epochs=self.max_epochs,
        )
        return replace(plan, trial=link)

    def trial_for(self, plan: RunPlan, storage: str) -> RunPlan:
        """`plan` with its trial: the one it was running (a resumed run), else a new one with
        the plan's values fixed (a grid's run, a failed trial run again)."""
        assert self.study is not None
        current = self.latest_by_run().get(plan.run_id)
        if current is not None and current.state == TrialState.RUNNING:
            return self._link(plan, current, storage)
        fixed = {n: plan.params[n] for n in self.space if n in plan.params}
        self.study.enqueue_trial(
            {n: categorical_value(v) for n, v in fixed.items()}, skip_if_exists=False
        )
        trial = self.study.ask({n: self.distributions[n] for n in fixed})
        trial.set_user_attr(RUN_ID_ATTR, plan.run_id)
        return self._link(plan, trial, storage)

    def sample(self, storage: str, timeout: float | None) -> RunPlan | None:
        """A new trial from the sampler, as the run it is. A proposal of a run the search has
        already (a small discrete space) is told that run's result and not run twice; None
        when the sampler proposes only such runs MAX_DUPLICATES times in a row."""
        assert self.study is not None
        if len(self.latest_by_run()) >= space_size(self.space):
            return None  # every point of a discrete space has its run
        for _ in range(MAX_DUPLICATES):
            trial = self.study.ask(self.distributions)
            plan = self.plan_of(self.search_params(trial), timeout)
            earlier = self.latest_by_run().get(plan.run_id)
            if earlier is None:
                trial.set_user_attr(RUN_ID_ATTR, plan.run_id)
                return self._link(plan, trial, storage)
            self._tell_duplicate(trial, earlier)
        return None

    def _tell_duplicate(self, trial: optuna.trial.Trial, earlier: FrozenTrial) -> None:
        """A proposal of a run the search has: its trial gets that run's result (what the
        sampler learns), or fails when that run has none yet; it is no run of its own."""
        assert self.study is not None
        trial.set_user_attr(DUPLICATE_ATTR, earlier.user_attrs[RUN_ID_ATTR])
        if earlier.state == TrialState.COMPLETE and earlier.value is not None:
            self.study.tell(trial, earlier.value)
        elif earlier.state == TrialState.PRUNED:
            self.study.tell(trial, state=TrialState.PRUNED)
        else:
            self.study.tell(trial, state=TrialState.FAIL)

    def tell(self, record: RunRecord) -> None:
        """The run's result into its trial: its rank value (complete), pruned, or failed; an
        interrupted run's trial stays running, to resume."""
        if self.study is None or record.trial is None or record.trial.study != self.name:
            return
        if record.status in {"running", "pending", "interrupted"}:
            return
        frozen = self.storage.get_trial(record.trial.trial_id)
        if frozen.state != TrialState.RUNNING:
            return  # told already (a driver stopped between the tell and the page)
        number = record.trial.number
        if record.status == "pruned":
            self.study.tell(number, state=TrialState.PRUNED)
            return
        spec = self.grid.spec
        value = resolve_metric(
            spec.rank_by.metric, record.metrics, record.epoch_metrics, spec.rank_by.mode
        )
        if record.status == "ok" and isinstance(value, int | float):
            # the study's direction is the prune metric's; the rank metric's direction wins
            # for the told value only when they agree (a search: checked when validated)
            self.study.tell(number, float(value))
        else:
            self.study.tell(number, state=TrialState.FAIL)

    def reconcile(self, ws: Workspace) -> None:
        """Trials still running whose run finished (a driver killed between the run's end and
        its tell) get their result now; trials asked but never given a run (a driver killed
        between the two) fail."""
        assert self.study is not None
        for trial in self.trials():
            if trial.state == TrialState.RUNNING and RUN_ID_ATTR not in trial.user_attrs:
                self.study.tell(trial.number, state=TrialState.FAIL)
        for trial in self.latest_by_run().values():
            if trial.state != TrialState.RUNNING:
                continue
            record = RunRecord.load_if_present(
                ws.run_dir(self.grid.name, trial.user_attrs[RUN_ID_ATTR])
            )
            if record is not None and record.status in FINISHED_STATUSES | {"failed", "timeout"}:
                self.tell(record)


class StudyPlans(PlanQueue):
    """A searched or pruned grid's runs: each gets its trial when handed out; then, for a
    search, `new` more trials are sampled, each when a slot is free (so TPE learns from the
    runs that ended)."""

    def __init__(
        self,
        study: GridStudy,
        plans: list[RunPlan],
        storage: str,
        *,
        new: int = 0,
        timeout: float | None = None,
    ):
        super().__init__(plans)
        self.study = study
        self.address = storage
        self.new = new
        self.timeout = timeout
        self._template = (
            plans[0]
            if plans
            else study.plan_of({n: _any_value(d) for n, d in study.space.items()}, timeout)
        )

    def pop(self) -> RunPlan | None:
        if self._queue:
            return super().pop()
        if self.new <= 0:
            return None
        self.new -= 1
        plan = self.study.sample(self.address, self.timeout)
        if plan is None:
            runs, size = len(self.study.latest_by_run()), space_size(self.study.space)
            why = (
                f"each of the space's {runs} points has its run"
                if runs >= size
                else f"the sampler proposed only runs the search has, {MAX_DUPLICATES} times "
                "in a row"
            )
            print(f"note: {why}; the search stops at {runs} runs", file=sys.stderr)
            self.new = 0
            return None
        self.handed.append(plan)
        return plan

    def peek(self) -> RunPlan | None:
        if self._queue:
            return self._queue[-1]
        return self._template if self.new > 0 else None  # same kernel, notebook, backend

    def _prepare(self, plan: RunPlan) -> RunPlan:
        return self.study.trial_for(plan, self.address)

    def done(self, record: RunRecord) -> None:
        self.study.tell(record)


def _trial_count(storage: optuna.storages.BaseStorage, name: str) -> int:
    """How many trials the study `name` has in `storage` (0 when there is no such study)."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return 0
    return storage.get_n_trials(study_id)


def _any_value(dist: Distribution) -> Any:
    return dist.values[0]
