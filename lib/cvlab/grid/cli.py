"""`python run_grid.py GRID.yaml [options]`: validate, expand, execute, record, publish."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading
from collections import Counter
from pathlib import Path

from cvlab.atomic_io import DiskFullError
from cvlab.errors import GridSpecError
from cvlab.grid.expand import (
    RunFilterError,
    RunPlan,
    expand,
    filter_plans,
    notebook_digest,
    run_count,
)
from cvlab.grid.lock import GridLock, GridLockedError
from cvlab.grid.preflight import OutputFolderError, check_output_folder
from cvlab.grid.prewarm import prewarm_statements
from cvlab.grid.publisher import RunPublisher, runs_missing_html
from cvlab.grid.scheduler import DaskUnavailableError, make_executor, run_plans
from cvlab.grid.spec import ValidatedGrid, load_grid_spec
from cvlab.grid.staleness import stale_note, stale_runs
from cvlab.runs.epoch_metrics import resolve_metric
from cvlab.runs.record import FINISHED_STATUSES, RunRecord, utc_now
from cvlab.workspace import Workspace

EXIT_OK, EXIT_RUN_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
# A grid that expands to more runs than this needs --max-runs (a typo can multiply a grid);
# beyond HARD_RUN_LIMIT it is refused outright (its product would not even fit in memory).
RUN_LIMIT, HARD_RUN_LIMIT = 1000, 100_000


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="run_grid.py",
        description="Run a notebook once per combination of a YAML grid, record every run, "
        "and publish the leaderboard (experiments/index.html).",
    )
    parser.add_argument("grid", nargs="?", help="grid file, e.g. grids/quickstart.yaml")
    parser.add_argument(
        "--dry-run", action="store_true", help="print the runs and their state; run nothing"
    )
    parser.add_argument("--force", action="store_true", help="re-run runs that already finished")
    parser.add_argument(
        "--only", action="append", default=[], metavar="KEY=VALUE",
        help="run only runs whose parameter KEY equals VALUE (repeatable; same KEY twice means either)",
    )  # fmt: skip
    parser.add_argument("--max-runs", type=int, metavar="N", help="run at most N runs this time")
    parser.add_argument(
        "--workers", type=int, default=1, metavar="N",
        help="runs in parallel (local processes; with --scheduler local, Dask worker processes)",
    )  # fmt: skip
    parser.add_argument(
        "--scheduler", metavar="ADDRESS",
        help="run on a Dask cluster: tcp://HOST:8786, or `local` for a local Dask cluster of "
        "--workers processes (needs the [dask] extra; see docs/dask.md)",
    )  # fmt: skip
    parser.add_argument(
        "--shared-out", action="store_true",
        help="with --scheduler: workers write into --out themselves (a folder every worker sees "
        "at the same path); default: workers send each run's files back to this driver",
    )  # fmt: skip
    parser.add_argument(
        "--timeout", type=float, metavar="SECONDS", help="per-run limit; overrides the grid's"
    )
    parser.add_argument(
        "--out", default=".", metavar="DIR",
        help="folder that receives experiments/, logs/ and figs/ (default: current folder)",
    )  # fmt: skip
    parser.add_argument(
        "--leaderboard", action="store_true", help="only rebuild the leaderboard page"
    )
    parser.add_argument(
        "--report", metavar="DIR",
        help="after the grid, write a self-contained copy of its results to DIR (page, figures, "
        "executed notebooks as HTML, CSV) to share; same as `cvlab report GRID --out DIR`",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="do not echo epoch progress")
    parser.add_argument(
        "--no-prewarm", action="store_true",
        help="start each run's kernel when the run begins, not during the previous run "
        "(for notebooks whose imports must not run early)",
    )  # fmt: skip
    return parser


def run_state(ws: Workspace, plan: RunPlan) -> str:
    """`new`, or the status on disk; a `running` record nobody is running is `interrupted`."""
    record = RunRecord.load_if_present(ws.run_dir(plan.grid, plan.run_id))
    if record is None:
        return "new"
    return "interrupted" if record.status in {"running", "pending"} else record.status


def _table(plans: list[RunPlan], states: dict[str, str], todo: list[RunPlan]) -> str:
    import pandas as pd

    chosen = {p.run_id for p in todo}
    frame = pd.DataFrame(
        {
            "run_id": [p.run_id for p in plans],
            "name": [p.name for p in plans],
            "state": [states[p.run_id] for p in plans],
            "action": ["run" if p.run_id in chosen else "skip" for p in plans],
        }
    )
    frame.index = range(1, len(frame) + 1)
    return frame.to_string()


def _register(store, grid: ValidatedGrid, ws: Workspace) -> None:
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


def _publish_safely(ws: Workspace, grid: str) -> Path:
    """Publish the page; a plotting or rendering problem must not hide the grid's results."""
    from cvlab.report.publish import publish

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


def _states(ws: Workspace, plans: list[RunPlan], force: bool, max_runs: int | None):
    states = {p.run_id: run_state(ws, p) for p in plans}
    todo = [p for p in plans if force or states[p.run_id] not in FINISHED_STATUSES]
    return states, todo if max_runs is None else todo[:max_runs]


def _size_problem(grid: ValidatedGrid, max_runs: int | None) -> str | None:
    """Why the grid is too large to run as given, or None."""
    count = run_count(grid)
    if count > HARD_RUN_LIMIT:
        return (
            f"{grid.path}: the grid expands to {count:,} runs, more than {HARD_RUN_LIMIT:,}. "
            "Fix: shorten the lists under `grid:` (or `seeds:`), or split it into several grids"
        )
    if count > RUN_LIMIT and max_runs is None:
        return (
            f"{grid.path}: the grid expands to {count:,} runs, more than {RUN_LIMIT:,}. "
            f"Fix: give --max-runs N to run N of them now (the rest on the next calls), or "
            "shorten the lists under `grid:`"
        )
    return None


@contextlib.contextmanager
def _signals_interrupt():
    """SIGTERM interrupts the grid as Ctrl-C does (finished runs kept, the others recorded
    `interrupted`); a second signal during that clean-up is noted, not obeyed, so the clean-up
    completes (SIGKILL still stops the driver, and the next call resumes)."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def interrupt(signum, frame):
        for sig in old:  # from now on: clean up, whatever comes
            signal.signal(sig, lambda *_: print("still cleaning up...", file=sys.stderr))
        raise KeyboardInterrupt(signal.Signals(signum).name)

    for sig in old:
        signal.signal(sig, interrupt)
    try:
        yield
    finally:
        for sig, handler in old.items():
            signal.signal(sig, handler)


def _write_report(ws: Workspace, grid: str, folder: str) -> int:
    """`--report DIR`: the grid's shareable copy; a refused folder is an error (exit 1), the
    runs themselves are kept either way."""
    from cvlab.report.static_report import ReportError, write_report

    try:
        index = write_report([grid], folder, source=ws.root)
    except ReportError as exc:
        print(f"error: --report: {exc}", file=sys.stderr)
        return EXIT_RUN_FAILED
    print(f"Report: {index.as_uri()}")
    return EXIT_OK


def _bad_input(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    print("Nothing was run.", file=sys.stderr)
    return EXIT_BAD_INPUT


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    ws = Workspace.at(args.out)

    from cvlab.report.publish import publish

    if args.leaderboard:
        page = publish(ws)
        print(f"Leaderboard: {page.as_uri()}")
        return EXIT_OK
    if not args.grid:
        build_parser().error("give a grid file (e.g. grids/quickstart.yaml), or --leaderboard")
    if args.workers < 1 or (args.max_runs is not None and args.max_runs < 0):
        build_parser().error("--workers must be at least 1 and --max-runs at least 0")
    if args.timeout is not None and not 0 < args.timeout < float("inf"):
        build_parser().error("--timeout must be a positive number of seconds")
    if args.shared_out and not args.scheduler:
        build_parser().error("--shared-out goes with --scheduler (local runs write into --out)")

    try:
        grid = load_grid_spec(args.grid)
        if (problem := _size_problem(grid, args.max_runs)) is not None:
            return _bad_input(problem)
        plans = filter_plans(expand(grid, timeout=args.timeout), args.only)
    except (GridSpecError, RunFilterError) as exc:
        return _bad_input(str(exc))

    if args.dry_run:
        states, todo = _states(ws, plans, args.force, args.max_runs)
        print(f"grid {grid.name}: {len(plans)} runs, {len(todo)} to run (notebook {grid.notebook})")
        print(_table(plans, states, todo))
        if note := stale_note(stale_runs(grid, plans, ws), grid.notebook):
            print(note)
        return EXIT_OK

    try:
        check_output_folder(ws)
        lock = GridLock(ws, grid.name).acquire()
    except (OutputFolderError, GridLockedError, DiskFullError) as exc:
        return _bad_input(str(exc))
    try:
        with _signals_interrupt():
            status = _run_grid(args, ws, grid, plans)
        if args.report and status != EXIT_INTERRUPTED:
            status = max(status, _write_report(ws, grid.name, args.report))
        return status
    except DiskFullError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(
            "Finished runs are kept; run the same command again once there is room.",
            file=sys.stderr,
        )
        return EXIT_RUN_FAILED
    finally:
        lock.release()


def _run_grid(args, ws: Workspace, grid: ValidatedGrid, plans: list[RunPlan]) -> int:
    """Run what is left of the grid, holding its lock."""
    # Read under the lock: a driver that just finished may have completed some.
    states, todo = _states(ws, plans, args.force, args.max_runs)
    prewarm = _prewarm_statements(grid, enabled=not args.no_prewarm)
    try:
        executor = make_executor(
            ws.root,
            args.workers if todo else 1,
            echo=not args.quiet,
            prewarm=prewarm,
            scheduler=args.scheduler if todo else None,  # nothing to run: no cluster to reach
            shared_out=args.shared_out,
        )
    except DaskUnavailableError as exc:
        return _bad_input(str(exc))

    from tqdm import tqdm

    from cvlab.report.store import LeaderboardStore

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
    print(f"grid {grid.name}: {len(plans)} runs, {len(todo)} to run, {skipped} already finished")
    resumed = [p for p in todo if states[p.run_id] == "interrupted"]
    if resumed:
        names = ", ".join(f"{p.name} [{p.run_id}]" for p in resumed[:10])
        more = f" and {len(resumed) - 10} more" if len(resumed) > 10 else ""
        print(f"{len(resumed)} interrupted by a stopped driver, resumed now: {names}{more}")
    counts: Counter[str] = Counter()
    interrupted = False
    grid_log_path = ws.grid_log(grid.name)
    grid_log_path.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(todo), desc=grid.name, unit="run", dynamic_ncols=True)
    with open(grid_log_path, "a", encoding="utf-8") as grid_log:
        grid_log.write(f"=== {utc_now().isoformat()} start: {len(todo)} of {len(plans)} runs\n")
        if resumed:
            grid_log.write(f"resuming {len(resumed)} interrupted runs\n")
        runs = run_plans(todo, ws.root, executor=executor)
        try:
            for record in runs:
                publisher.submit(record)
                counts[record.status] += 1
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
        except KeyboardInterrupt:
            interrupted = True
            bar.write("interrupted: finished runs are kept; run the same command again to resume")
            grid_log.write("interrupted\n")
        finally:
            runs.close()  # stops the workers and kills any warm spare kernel
            executor.close(interrupted=True)  # in case the loop never started: no-op otherwise
            bar.close()
            if interrupted:
                for record in _settle_unfinished(ws, todo):
                    publisher.submit(record)
            publisher.close()
            page = _publish_safely(ws, grid.name)
    _warn_unranked(ws, grid, plans)
    summary = ", ".join(f"{n} {status}" for status, n in sorted(counts.items())) or "nothing run"
    print(f"grid {grid.name}: {summary}")
    print(f"Leaderboard: {page.as_uri()}")
    if interrupted:
        return EXIT_INTERRUPTED
    return EXIT_RUN_FAILED if counts["failed"] or counts["timeout"] else EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
