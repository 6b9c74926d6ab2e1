"""`python run_grid.py GRID.yaml [options]`: parse the options, call `cvlab.grid.runner.run_grid`,
map its result to an exit status (0 ok, 1 a run failed, 2 bad input: nothing run, 130 stopped)."""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
import threading

from cvlab.atomic_io import DiskFullError
from cvlab.grid.runner import (
    BAD_INPUT_ERRORS,
    HARD_RUN_LIMIT,
    RUN_LIMIT,
    GridOptions,
    GridResult,
    run_grid,
)
from cvlab.grid.staleness import stale_note
from cvlab.workspace import Workspace

EXIT_OK, EXIT_RUN_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130
# Beyond RUN_LIMIT runs a grid needs --max-runs (read from here at each call, so it can be
# lowered); beyond HARD_RUN_LIMIT it is refused outright.
__all__ = ["HARD_RUN_LIMIT", "RUN_LIMIT", "build_parser", "exit_status", "main"]


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
    parser.add_argument(
        "--backend", metavar="NAME",
        help="Keras backend of every run: tensorflow, jax or torch (overrides the grid's "
        "`backend:`; default: $KERAS_BACKEND, else tensorflow)",
    )  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="do not echo epoch progress")
    parser.add_argument(
        "--no-prewarm", action="store_true",
        help="start each run's kernel when the run begins, not during the previous run "
        "(for notebooks whose imports must not run early)",
    )  # fmt: skip
    return parser


def _table(result: GridResult) -> str:
    import pandas as pd  # lazy: pandas

    frame = pd.DataFrame(
        {
            "run_id": [r.run_id for r in result.runs],
            "name": [r.name for r in result.runs],
            "state": [r.state for r in result.runs],
            "action": ["run" if r.planned else "skip" for r in result.runs],
        }
    )
    frame.index = range(1, len(frame) + 1)
    return frame.to_string()


def _print_dry_run(result: GridResult) -> int:
    """`--dry-run`: the runs, their state and what a real call would do; nothing is run."""
    todo = sum(r.planned for r in result.runs)
    grid = result.grid
    backend = result.plans[0].backend if result.plans else "tensorflow"
    print(
        f"grid {grid.name}: {len(result.runs)} runs, {todo} to run (notebook {grid.notebook}, "
        f"Keras backend {backend})"
    )
    if grid.spec.search is not None:
        search = grid.spec.search
        left = max(0, search.trials - len(result.runs))
        print(
            f"search: {len(result.runs)} of {search.trials} trials sampled so far, {left} more "
            f"to sample ({search.sampler} sampler)"
        )
    if result.runs:
        print(_table(result))
    if note := stale_note(result.stale, grid.notebook):
        print(note)
    for missing in result.missing_data:
        print(f"warning: {missing}", file=sys.stderr)
    return EXIT_OK


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


def _bad_input(message: str) -> int:
    print(f"error: {message}", file=sys.stderr)
    print("Nothing was run.", file=sys.stderr)
    return EXIT_BAD_INPUT


def options_from_args(args: argparse.Namespace) -> GridOptions:
    """The parsed command line as run_grid's typed options."""
    return GridOptions(
        only=list(args.only),
        workers=args.workers,
        out=args.out,
        force=args.force,
        dry_run=args.dry_run,
        max_runs=args.max_runs,
        timeout=args.timeout,
        scheduler=args.scheduler,
        shared_out=args.shared_out,
        report=args.report,
        echo=not args.quiet,
        prewarm=not args.no_prewarm,
        run_limit=RUN_LIMIT,
        backend=args.backend,
    )


def exit_status(result: GridResult) -> int:
    """0 all ran well, 1 some run failed (or the report could not be written), 130 interrupted."""
    if result.interrupted:
        return EXIT_INTERRUPTED
    return EXIT_RUN_FAILED if result.failed or result.report_error else EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)

    if args.leaderboard:
        from cvlab.report.publish import publish  # lazy: scipy, matplotlib

        page = publish(Workspace.at(args.out))
        print(f"Leaderboard: {page.as_uri()}")
        return EXIT_OK
    if not args.grid:
        parser.error("give a grid file (e.g. grids/quickstart.yaml), or --leaderboard")
    if args.workers < 1 or (args.max_runs is not None and args.max_runs < 0):
        parser.error("--workers must be at least 1 and --max-runs at least 0")
    if args.timeout is not None and not 0 < args.timeout < float("inf"):
        parser.error("--timeout must be a positive number of seconds")
    if args.shared_out and not args.scheduler:
        parser.error("--shared-out goes with --scheduler (local runs write into --out)")

    try:
        with _signals_interrupt():
            result = run_grid(args.grid, options_from_args(args))
    except BAD_INPUT_ERRORS as exc:
        return _bad_input(str(exc))
    except DiskFullError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(
            "Finished runs are kept; run the same command again once there is room.",
            file=sys.stderr,
        )
        return EXIT_RUN_FAILED
    if result.dry_run:
        return _print_dry_run(result)
    if result.report_error is not None:
        print(f"error: --report: {result.report_error}", file=sys.stderr)
    elif result.report is not None:
        print(f"Report: {result.report.as_uri()}")
    return exit_status(result)


if __name__ == "__main__":
    sys.exit(main())
