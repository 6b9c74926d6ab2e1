"""`python run_grid.py GRID.yaml [options]`: validate, expand, execute, record, publish."""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from pathlib import Path

from cvlab.errors import GridSpecError
from cvlab.grid.expand import RunFilterError, RunPlan, expand, filter_plans
from cvlab.grid.prewarm import prewarm_statements
from cvlab.grid.publisher import RunPublisher, runs_missing_html
from cvlab.grid.scheduler import run_plans
from cvlab.grid.spec import ValidatedGrid, load_grid_spec
from cvlab.runs.record import FINISHED_STATUSES, RunRecord, utc_now
from cvlab.workspace import Workspace

EXIT_OK, EXIT_RUN_FAILED, EXIT_BAD_INPUT, EXIT_INTERRUPTED = 0, 1, 2, 130


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
        "--workers", type=int, default=1, metavar="N", help="runs in parallel (processes)"
    )
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
            if isinstance(record.metrics.get(metric), int | float):
                return
            logged.update(record.metrics)
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

    try:
        grid = load_grid_spec(args.grid)
        plans = filter_plans(expand(grid, timeout=args.timeout), args.only)
    except (GridSpecError, RunFilterError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("Nothing was run.", file=sys.stderr)
        return EXIT_BAD_INPUT

    states = {p.run_id: run_state(ws, p) for p in plans}
    todo = [p for p in plans if args.force or states[p.run_id] not in FINISHED_STATUSES]
    if args.max_runs is not None:
        todo = todo[: args.max_runs]
    if args.dry_run:
        print(f"grid {grid.name}: {len(plans)} runs, {len(todo)} to run (notebook {grid.notebook})")
        print(_table(plans, states, todo))
        return EXIT_OK

    from tqdm import tqdm

    from cvlab.report.store import LeaderboardStore

    store = LeaderboardStore(ws.leaderboard_db)
    _register(store, grid, ws)
    todo_ids = {p.run_id for p in todo}
    earlier = [
        RunRecord.load_if_present(ws.run_dir(p.grid, p.run_id))
        for p in plans
        if p.run_id not in todo_ids
    ]
    store.upsert([r for r in earlier if r is not None])
    prewarm = _prewarm_statements(grid, enabled=not args.no_prewarm)
    # Each finished run's HTML, leaderboard row and CSV come from this background worker; it
    # also makes the HTML a stopped driver left missing for runs that are not re-run now.
    publisher = RunPublisher(ws)
    for record in runs_missing_html(ws, [r for r in earlier if r is not None]):
        publisher.submit(record)

    skipped = len(plans) - len(todo)
    print(f"grid {grid.name}: {len(plans)} runs, {len(todo)} to run, {skipped} already finished")
    counts: Counter[str] = Counter()
    interrupted = False
    grid_log_path = ws.grid_log(grid.name)
    grid_log_path.parent.mkdir(parents=True, exist_ok=True)
    bar = tqdm(total=len(todo), desc=grid.name, unit="run", dynamic_ncols=True)
    with open(grid_log_path, "a", encoding="utf-8") as grid_log:
        grid_log.write(f"=== {utc_now().isoformat()} start: {len(todo)} of {len(plans)} runs\n")
        runs = run_plans(todo, ws.root, args.workers, echo=not args.quiet, prewarm=prewarm)
        try:
            for record in runs:
                publisher.submit(record)
                counts[record.status] += 1
                metric = record.metrics.get(grid.spec.rank_by.metric)
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
