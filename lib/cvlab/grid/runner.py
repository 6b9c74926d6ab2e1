"""`cvlab.run_grid(spec_or_path, ...)`: validate, expand, check the data, execute, record,
publish, and return the runs' results. `run_grid.py` and `cvlab-grid` only parse their
arguments into GridOptions and map the result (or the bad-input error) to an exit status, as
papermill's command line wraps `execute_notebook`.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from tqdm import tqdm

from cvlab.atomic_io import DiskFullError
from cvlab.backends import check_backend, chosen_backend, gpu_warning
from cvlab.errors import (
    BackendError,
    GridSpecError,
    GridTooLargeError,
    MissingDataError,
    PruneMetricError,
)
from cvlab.grid.data_checks import MissingData, missing_data
from cvlab.grid.expand import (
    RunFilterError,
    RunPlan,
    expand,
    filter_plans,
    notebook_digest,
    run_count,
)
from cvlab.grid.live_watch import LiveWatch
from cvlab.grid.lock import GridLock, GridLockedError
from cvlab.grid.notebook_params import NotebookParameter
from cvlab.grid.plan_queue import PlanQueue
from cvlab.grid.preflight import OutputFolderError, check_output_folder
from cvlab.grid.prewarm import prewarm_statements
from cvlab.grid.publisher import RunPublisher, runs_missing_html
from cvlab.grid.scheduler import DaskUnavailableError, make_executor, run_plans
from cvlab.grid.spec import ValidatedGrid, load_grid_spec
from cvlab.grid.staleness import StaleRun, stale_runs
from cvlab.report.store import LeaderboardStore
from cvlab.runs.epoch_metrics import resolve_metric
from cvlab.runs.record import FINISHED_STATUSES, RunError, RunRecord, utc_now
from cvlab.workspace import Workspace

# A grid that expands to more runs than this needs max_runs (a typo can multiply a grid);
# beyond HARD_RUN_LIMIT it is refused outright (its product would not even fit in memory).
RUN_LIMIT, HARD_RUN_LIMIT = 1000, 100_000


# What run_grid raises before any run starts: the command line's exit status 2.
BAD_INPUT_ERRORS: tuple[type[BaseException], ...] = (
    GridSpecError,
    RunFilterError,
    GridTooLargeError,
    MissingDataError,
    OutputFolderError,
    GridLockedError,
    DaskUnavailableError,
    BackendError,
)


@dataclass(frozen=True)
class GridOptions:
    """How to run a grid (the command line's options, typed)."""

    # Runs whose parameter KEY equals VALUE: {"x": 2}, or ["x=2", "x=3"] (same key twice: either).
    only: Mapping[str, Any] | Sequence[str] = ()
    workers: int = 1
    out: str | Path = "."
    force: bool = False  # re-run runs that already finished
    dry_run: bool = False  # plan and report states; run nothing
    max_runs: int | None = None
    timeout: float | None = None  # per run; overrides the grid's
    scheduler: str | None = None  # a Dask scheduler address, or "local"
    shared_out: bool = False
    report: str | Path | None = None  # write a shareable copy of the grid's results here
    echo: bool = True  # echo the runs' epoch progress lines
    prewarm: bool = True  # start the next run's kernel during the current run
    check_data: bool = True  # refuse runs whose file-based data set is not in the cache
    run_limit: int = RUN_LIMIT  # more runs than this need max_runs
    # The Keras backend (tensorflow, jax, torch): overrides the grid's `backend:`; None: the
    # grid's, else $KERAS_BACKEND, else tensorflow.
    backend: str | None = None

    def __post_init__(self) -> None:
        if self.workers < 1 or (self.max_runs is not None and self.max_runs < 0):
            raise ValueError("workers must be at least 1 and max_runs at least 0")
        if self.timeout is not None and not 0 < self.timeout < float("inf"):
            raise ValueError("timeout must be a positive number of seconds")
        if self.shared_out and not self.scheduler:
            raise ValueError("shared_out goes with scheduler (local runs write into out)")

    def only_filters(self) -> list[str]:
        """`only` as filter_plans' KEY=VALUE strings (a mapping's values written as YAML)."""
        if isinstance(self.only, Mapping):
            return [f"{k}={json.dumps(v, default=str)}" for k, v in self.only.items()]
        if isinstance(self.only, str):
            return [self.only]
        return list(self.only)


@dataclass
class RunResult:
    """One run of the grid as it stands after the call."""

    run_id: str
    name: str
    params: dict[str, Any]
    state: str  # "new" (never run), or the record's status: ok, failed, timeout, diverged, ...
    planned: bool  # chosen to run by this call (a dry run: would be run)
    ran: bool  # executed by this call (False: skipped as finished, or a dry run)
    run_dir: Path
    metrics: dict[str, Any] = field(default_factory=dict)
    rank_value: float | None = None  # the grid's rank_by metric, when the run logged it
    error: RunError | None = None

    @property
    def status(self) -> str:
        return self.state


@dataclass
class GridResult:
    """What `run_grid` did: every run of the (filtered) grid, in plan order."""

    grid: ValidatedGrid
    plans: list[RunPlan]
    runs: list[RunResult]
    workspace: Workspace  # the output folder (`out`)
    dry_run: bool = False
    interrupted: bool = False
    leaderboard: Path | None = None
    report: Path | None = None
    report_error: str | None = None
    missing_data: list[MissingData] = field(default_factory=list)
    # finished runs of an older version of the notebook's code (kept; found by dry runs)
    stale: list[StaleRun] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.grid.name

    def __getitem__(self, run_id: str) -> RunResult:
        for run in self.runs:
            if run.run_id == run_id:
                return run
        raise KeyError(run_id)

    def by_name(self) -> dict[str, RunResult]:
        return {run.name: run for run in self.runs}

    @property
    def failed(self) -> list[RunResult]:
        """Runs executed now that failed or ran out of time."""
        return [r for r in self.runs if r.ran and r.state in {"failed", "timeout"}]

    @property
    def ok(self) -> bool:
        return not self.interrupted and not self.failed and self.report_error is None


def run_state(ws: Workspace, plan: RunPlan) -> str:
    """`new`, or the status on disk; a `running` record nobody is running is `interrupted`."""
    record = RunRecord.load_if_present(ws.run_dir(plan.grid, plan.run_id))
    if record is None:
        return "new"
    return "interrupted" if record.status in {"running", "pending"} else record.status


def plan_states(
    ws: Workspace, plans: list[RunPlan], force: bool, max_runs: int | None
) -> tuple[dict[str, str], list[RunPlan]]:
    """Each plan's state on disk, and the plans to run now."""
    states = {p.run_id: run_state(ws, p) for p in plans}
    todo = [p for p in plans if force or states[p.run_id] not in FINISHED_STATUSES]
    return states, todo if max_runs is None else todo[:max_runs]


def size_problem(
    grid: ValidatedGrid, max_runs: int | None, run_limit: int = RUN_LIMIT
) -> str | None:
    """Why the grid is too large to run as given, or None."""
    count = run_count(grid)
    if count > HARD_RUN_LIMIT:
        return (
            f"{grid.path}: the grid expands to {count:,} runs, more than {HARD_RUN_LIMIT:,}. "
            "Fix: shorten the lists under `grid:` (or `seeds:`), or split it into several grids"
        )
    if count > run_limit and max_runs is None:
        return (
            f"{grid.path}: the grid expands to {count:,} runs, more than {run_limit:,}. "
            f"Fix: give --max-runs N to run N of them now (the rest on the next calls), or "
            "shorten the lists under `grid:`"
        )
    return None


def plan_grid(
    spec_or_path: ValidatedGrid | str | Path, options: GridOptions
) -> tuple[ValidatedGrid, list[RunPlan]]:
    """The validated grid and its runs after `only` (a search: the trials sampled so far);
    raises a BAD_INPUT_ERRORS error."""
    grid = spec_or_path if isinstance(spec_or_path, ValidatedGrid) else load_grid_spec(spec_or_path)
    if (problem := size_problem(grid, options.max_runs, options.run_limit)) is not None:
        raise GridTooLargeError(problem)
    backend = grid_backend(grid, options)
    if grid.spec.search is not None:
        if options.only_filters():
            raise RunFilterError(
                f"--only {' '.join(options.only_filters())}: {grid.path} searches, and a search "
                "samples its runs. Fix: drop --only, or narrow search.space in the grid file"
            )
        from cvlab.grid.study import GridStudy  # lazy: optuna

        study = GridStudy(grid, Workspace.at(options.out), backend, create=False)
        return grid, study.searched_plans(options.timeout)
    plans = expand(grid, timeout=options.timeout, backend=backend)
    return grid, filter_plans(plans, options.only_filters())


def grid_backend(grid: ValidatedGrid, options: GridOptions) -> str:
    """The Keras backend the grid's runs get (--backend, `backend:`, $KERAS_BACKEND, default),
    checked: BackendError (unknown, or not installed: the extra to install) before any kernel."""
    where = "--backend" if options.backend else f"{grid.path}: backend"
    if not options.backend and not grid.spec.backend:
        where = "KERAS_BACKEND"
    return check_backend(chosen_backend(options.backend, grid.spec.backend), where=where)


def _results(
    ws: Workspace, grid: ValidatedGrid, plans: list[RunPlan], planned: set[str], ran: set[str]
) -> list[RunResult]:
    results = []
    for plan in plans:
        run_dir = ws.run_dir(plan.grid, plan.run_id)
        record = RunRecord.load_if_present(run_dir)
        value = None
        if record is not None:
            value = resolve_metric(
                grid.spec.rank_by.metric,
                record.metrics,
                record.epoch_metrics,
                grid.spec.rank_by.mode,
            )
        results.append(
            RunResult(
                run_id=plan.run_id,
                name=plan.name,
                params=dict(plan.params),
                state=run_state(ws, plan),
                planned=plan.run_id in planned,
                ran=plan.run_id in ran,
                run_dir=run_dir,
                metrics=dict(record.metrics) if record is not None else {},
                rank_value=value if isinstance(value, int | float) else None,
                error=record.error if record is not None else None,
            )
        )
    return results


def reserve(
    ws: Workspace, grid: str, plans: list[RunPlan], parameters: dict[str, NotebookParameter]
) -> GridLock:
    """What every run of `grid` needs before a kernel starts, or the refusal: the data sets the
    `plans` name are in the cache (MissingDataError), `ws` is writable with room
    (OutputFolderError), no other driver holds the grid (GridLockedError). Returns the lock,
    held: the caller releases it."""
    if missing := missing_data(plans, parameters):
        raise MissingDataError(missing)
    try:
        check_output_folder(ws)
        return GridLock(ws, grid).acquire()
    except DiskFullError as exc:
        raise OutputFolderError(str(exc)) from exc


def run_grid(
    spec_or_path: ValidatedGrid | str | Path,
    options: GridOptions | None = None,
    **changes: Any,
) -> GridResult:
    """Run what is left of a grid and return every run's result.

    `spec_or_path`: a grid YAML file, or a grid already validated by `load_grid_spec`.
    `options` and keyword arguments (`only=`, `workers=`, `out=`, `force=`, `dry_run=`, ...):
    see GridOptions. Raises one of BAD_INPUT_ERRORS before any run starts (bad spec, filter,
    data set not in the cache, output folder, lock held, no Dask), DiskFullError when the disk
    fills during the runs (finished runs are kept). Ctrl-C ends it with `interrupted=True`.
    """
    options = replace(options or GridOptions(), **changes)
    ws = Workspace.at(options.out)
    grid, plans = plan_grid(spec_or_path, options)

    if options.dry_run:
        states, todo = plan_states(ws, plans, options.force, options.max_runs)
        missing = missing_data(todo, grid.parameters) if options.check_data else []
        runs = _results(ws, grid, plans, {p.run_id for p in todo}, set())
        stale = stale_runs(grid, plans, ws)
        return GridResult(grid, plans, runs, ws, dry_run=True, missing_data=missing, stale=stale)

    _, todo = plan_states(ws, plans, options.force, options.max_runs)
    lock = reserve(ws, grid.name, todo if options.check_data else [], grid.parameters)
    try:
        result = _run_locked(ws, grid, plans, options)
        if options.report and not result.interrupted:
            from cvlab.report.static_report import ReportError, write_report  # lazy: scipy

            try:
                result.report = write_report([grid.name], options.report, source=ws.root)
            except ReportError as exc:
                result.report_error = str(exc)
        return result
    finally:
        lock.release()


def _register(store: LeaderboardStore, grid: ValidatedGrid, ws: Workspace) -> None:
    def rel(path: Path) -> str:
        try:
            return str(path.resolve().relative_to(ws.root))
        except ValueError:
            return str(path.resolve())

    store.register_grid(
        grid.name,
        notebook=rel(grid.notebook),
        spec_path=rel(grid.path),
        rank_metric=grid.spec.rank_by.metric,
        rank_mode=grid.spec.rank_by.mode,
        description=grid.spec.description,
        code_digest=notebook_digest(grid.notebook),  # the grid's runs of other code are stale
    )


def _settle_unfinished(ws: Workspace, plans: list[RunPlan]) -> list[RunRecord]:
    """After an interruption: records left `running` become `interrupted`; return all on disk."""
    records = []
    for plan in plans:
        run_dir = ws.run_dir(plan.grid, plan.run_id)
        record = RunRecord.load_if_present(run_dir)
        if record is None:
            continue
        if record.status in {"running", "pending"}:
            record.status = "interrupted"
            record.ended_at = utc_now()
            record.save(run_dir)
        records.append(record)
    return records


def publish_safely(ws: Workspace, grid: str) -> Path:
    """Publish the page; a plotting or rendering problem must not hide the grid's results."""
    from cvlab.report.publish import publish  # lazy: scipy, matplotlib

    try:
        return publish(ws, [grid])
    except Exception as exc:  # noqa: BLE001 - reported, and the runs are safe in the store
        print(
            f"warning: the leaderboard page could not be rebuilt ({type(exc).__name__}: {exc}); "
            "the runs are recorded in logs/leaderboard.db. Retry with: run_grid.py --leaderboard",
            file=sys.stderr,
        )
        return ws.leaderboard_page


def _warn_unranked(ws: Workspace, grid: ValidatedGrid, plans: list[RunPlan]) -> None:
    """Say so when no finished run logged the metric the grid ranks by (a typo in rank_by?)."""
    metric = grid.spec.rank_by.metric
    logged: set[str] = set()
    for plan in plans:
        record = RunRecord.load_if_present(ws.run_dir(plan.grid, plan.run_id))
        if record is not None and record.status == "ok":
            value = resolve_metric(
                metric, record.metrics, record.epoch_metrics, grid.spec.rank_by.mode
            )
            if isinstance(value, int | float):
                return
            logged.update(record.metrics)
            logged.update(f"{name}:best" for name in record.epoch_metrics)
    if logged:
        print(
            f"warning: {grid.path}: rank_by.metric {metric!r} is not a number any run logged; "
            f"logged metrics: {', '.join(sorted(logged))}. Fix rank_by.metric in the grid file",
            file=sys.stderr,
        )


def _prewarm_statements(grid: ValidatedGrid, enabled: bool) -> tuple[str, ...] | None:
    """What warm kernels import (the notebook's import lines, then the grid's `prewarm:`), or
    None for no warm kernels."""
    if not enabled:
        return None
    scan = prewarm_statements(grid.notebook, grid.spec.prewarm or [])
    if scan.stopped_at:
        print(
            f"note: prewarm imports only the import lines before {scan.stopped_at} of "
            f"{grid.notebook.name}, which may change how later imports resolve",
            file=sys.stderr,
        )
    return scan.statements


def _run_locked(
    ws: Workspace, grid: ValidatedGrid, plans: list[RunPlan], options: GridOptions
) -> GridResult:
    """Run what is left of the grid, holding its lock."""
    study = None
    if grid.spec.search is not None or grid.spec.prune is not None:
        from cvlab.grid.study import GridStudy  # lazy: optuna
        from cvlab.search.space import space_size  # lazy: optuna

        backend = plans[0].backend if plans else grid_backend(grid, options)
        study = GridStudy(grid, ws, backend)
        study.reconcile(ws)  # trials whose runs ended as a driver was killed get their result
        if grid.spec.search is not None:  # read under the lock, as the states below
            plans = study.searched_plans(options.timeout)
    # Read under the lock: a driver that just finished may have completed some.
    states, todo = plan_states(ws, plans, options.force, options.max_runs)
    new_trials, space_note = 0, ""
    if study is not None and grid.spec.search is not None:
        new_trials = max(0, grid.spec.search.trials - len(plans))
        # a small discrete space has fewer new points than trials left
        points = space_size(study.space)
        if new_trials > points - len(plans):
            new_trials = int(max(0, points - len(plans)))
            space_note = f" (the space has {int(points)} points, each run once)"
        if options.max_runs is not None:
            new_trials = max(0, min(new_trials, options.max_runs - len(todo)))
    prewarm = _prewarm_statements(grid, enabled=options.prewarm)
    anything = bool(todo) or new_trials > 0
    executor = make_executor(
        ws.root,
        options.workers if anything else 1,
        echo=options.echo,
        prewarm=prewarm,
        scheduler=options.scheduler if anything else None,  # nothing to run: no cluster to reach
        shared_out=options.shared_out,
    )
    try:
        store = LeaderboardStore(ws.leaderboard_db)
        _register(store, grid, ws)
        todo_ids = {p.run_id for p in todo}
        earlier = [
            RunRecord.load_if_present(ws.run_dir(p.grid, p.run_id))
            for p in plans
            if p.run_id not in todo_ids
        ]
        store.upsert([r for r in earlier if r is not None])
        # Each finished run's HTML, leaderboard row and CSV come from this background worker;
        # it also makes the HTML a stopped driver left missing for runs not re-run now.
        publisher = RunPublisher(ws)
    except BaseException:
        executor.close(interrupted=True)  # a local Dask cluster must not outlive the driver
        raise
    for record in runs_missing_html(ws, [r for r in earlier if r is not None]):
        publisher.submit(record)

    skipped = len(plans) - len(todo)
    if todo and (warning := gpu_warning(todo[0].backend)):
        print(f"warning: {warning}", file=sys.stderr)
    backend = f" (Keras backend {plans[0].backend})" if plans else ""
    print(
        f"grid {grid.name}: {len(plans)} runs, {len(todo)} to run, {skipped} already finished"
        + backend
    )
    if study is not None:
        search = grid.spec.search
        what = (
            f"search of {search.trials} trials ({search.sampler} sampler), {new_trials} to sample"
            f"{space_note}"
            if search is not None
            else "every run"
        )
        prune = grid.spec.prune
        cut = f"; pruned by {prune.method} on {prune.metric}" if prune is not None else ""
        print(f"{what}{cut}; study {study.name} in {study.address}")
    resumed = [p for p in todo if states[p.run_id] == "interrupted"]
    if resumed:
        names = ", ".join(f"{p.name} [{p.run_id}]" for p in resumed[:10])
        more = f" and {len(resumed) - 10} more" if len(resumed) > 10 else ""
        print(f"{len(resumed)} interrupted by a stopped driver, resumed now: {names}{more}")
    counts: Counter[str] = Counter()
    counted: set[str] = set()  # the runs in `counts`
    interrupted = False
    grid_log_path = ws.grid_log(grid.name)
    grid_log_path.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(todo) + new_trials, desc=grid.name, unit="run", dynamic_ncols=True)
    with open(grid_log_path, "a", encoding="utf-8") as grid_log:
        grid_log.write(f"=== {utc_now().isoformat()} start: {len(todo)} of {len(plans)} runs\n")
        if resumed:
            grid_log.write(f"resuming {len(resumed)} interrupted runs\n")
        storage = contextlib.ExitStack()
        queue: PlanQueue = PlanQueue(todo)
        if study is not None:
            from cvlab.grid.study import StudyPlans  # lazy: optuna
            from cvlab.search.storage import serve_storage  # lazy: optuna

            # Runs on Dask workers may not see logs/: they reach the study through the driver.
            address = (
                storage.enter_context(serve_storage(study.storage))
                if options.scheduler
                else study.address
            )
            queue = StudyPlans(study, todo, address, new=new_trials, timeout=options.timeout)
        # the live page: the handed-out runs' progress in experiments/live.js(on), each epoch
        live = LiveWatch(ws, grid.name, lambda: queue.handed).start()
        runs = run_plans(queue, ws.root, executor=executor)
        try:
            for record in runs:
                publisher.submit(record)
                counts[record.status] += 1
                counted.add(record.run_id)
                metric = resolve_metric(
                    grid.spec.rank_by.metric,
                    record.metrics,
                    record.epoch_metrics,
                    grid.spec.rank_by.mode,
                )
                line = f"{record.name} [{record.run_id}]: {record.status}"
                line += (
                    f", {grid.spec.rank_by.metric}={metric:.4g}"
                    if isinstance(metric, int | float)
                    else ""
                )
                line += f" ({record.error.type}: {record.error.message})" if record.error else ""
                line += f" in {record.duration_s:.1f} s" if record.duration_s else ""
                bar.write(line)
                grid_log.write(line + "\n")
                grid_log.flush()
                bar.set_postfix(ok=counts["ok"], failed=counts["failed"] + counts["timeout"])
                bar.update()
                if record.error is not None and record.error.type == PruneMetricError.__name__:
                    # every run would train an epoch and fail the same way: stop here
                    message = (
                        "stopping the grid: its prune.metric is not logged by its runs "
                        "(the error above); runs still executing are interrupted"
                    )
                    bar.write(message)
                    grid_log.write(message + "\n")
                    break
        except KeyboardInterrupt:
            interrupted = True
            grid_log.write("interrupted\n")
        finally:
            runs.close()  # stops the workers and kills any warm spare kernel
            executor.close(interrupted=True)  # in case the loop never started: no-op otherwise
            bar.close()
            storage.close()
            if interrupted:
                for record in _settle_unfinished(ws, queue.handed):
                    publisher.submit(record)
                    if record.run_id not in counted:  # settled here: the loop never got it
                        counts[record.status] += 1
            live.stop()
            publisher.close()
            page = publish_safely(ws, grid.name)
    _warn_unranked(ws, grid, plans)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing run"
    print(f"grid {grid.name}: {summary}")
    print(f"Leaderboard: {page.as_uri()}")
    if interrupted:  # the last line after Ctrl-C: how to go on
        print("interrupted: finished runs are kept; run the same command again to resume")
    known = {p.run_id for p in plans}
    plans = [*plans, *(p for p in queue.handed if p.run_id not in known)]
    ran = {p.run_id for p in queue.handed}
    return GridResult(
        grid,
        plans,
        _results(ws, grid, plans, ran, ran),
        ws,
        interrupted=interrupted,
        leaderboard=page,
    )
