"""What the live page costs per epoch on a large store: one epoch's live-data update (the grid's
snapshot and the merged live.js / live.json, as LiveWatch writes them), side by side with a full
rebuild of experiments/index.html (what the driver does once, at the grid's end).

A synthetic store of N finished runs (real RunRecords and history.csv files in a temporary
workspace, filled through LeaderboardStore.upsert), plus W runs in progress of one grid.

    python bench/live_page.py [--runs 500] [--running 4] [--epochs 30] [--repeat 20]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from cvlab.grid.live_watch import LiveWatch
from cvlab.report.page import write_leaderboard_page
from cvlab.report.store import LeaderboardStore
from cvlab.runs.record import RunRecord, utc_now
from cvlab.runs.run import Run
from cvlab.workspace import Workspace


class _Plan:
    def __init__(self, grid: str, run_id: str):
        self.grid, self.run_id = grid, run_id


def _history(run_dir: Path, epochs: int) -> None:
    rows = ["epoch,loss,val_loss,accuracy,val_accuracy"]
    rows += [
        f"{e},{1 / e:.5f},{1.2 / e:.5f},{1 - 0.5 / e:.5f},{1 - 0.6 / e:.5f}"
        for e in range(1, epochs + 1)
    ]
    (run_dir / "history.csv").write_text("\n".join(rows) + "\n")


def build(ws: Workspace, runs: int, running: int, epochs: int) -> list[Run]:
    store = LeaderboardStore(ws.leaderboard_db)
    for g in range(5):
        store.register_grid(f"grid{g}", notebook="nb.ipynb", spec_path="g.yaml",
                            rank_metric="val_accuracy", rank_mode="max")  # fmt: skip
    records = []
    for i in range(runs):
        grid = f"grid{i % 5}"
        run_dir = ws.run_dir(grid, f"r{i:04d}")
        run_dir.mkdir(parents=True)
        _history(run_dir, epochs)
        record = RunRecord(run_id=f"r{i:04d}", name=f"lr={i}", grid=grid, status="ok",
                           params={"lr": i / 1000, "width": 16 * (i % 4 + 1)},
                           metrics={"val_accuracy": (i % 97) / 100}, epochs_completed=epochs,
                           started_at=utc_now(), ended_at=utc_now(), duration_s=60.0,
                           artifacts={"history": "history.csv"})  # fmt: skip
        record.save(run_dir)
        records.append(record)
    store.upsert(records)
    live = []
    for j in range(running):
        run_dir = ws.run_dir("grid0", f"live{j}")
        run_dir.mkdir(parents=True)
        run = Run(run_dir, RunRecord(run_id=f"live{j}", grid="grid0", started_at=utc_now()))
        for e in range(1, epochs // 2):
            run.log_epoch(e, epochs, loss=1 / e, val_loss=1.2 / e)
        live.append(run)
    return live


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=500)
    parser.add_argument("--running", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.at(tmp)
        live = build(ws, args.runs, args.running, args.epochs)
        plans = [_Plan("grid0", run.record.run_id) for run in live]
        watch = LiveWatch(ws, "grid0", lambda: plans)
        update = []
        for _ in range(args.repeat):
            start = time.perf_counter()
            watch.write()
            update.append(time.perf_counter() - start)
        store = LeaderboardStore(ws.leaderboard_db)
        rebuild = []
        for _ in range(max(1, args.repeat // 5)):
            start = time.perf_counter()
            write_leaderboard_page(store.frame(), store.records(), ws)
            rebuild.append(time.perf_counter() - start)
        size = (ws.experiments / "live.js").stat().st_size
        page = ws.leaderboard_page.stat().st_size
    print(f"store: {args.runs} finished runs, {args.running} running, {args.epochs} epochs each")
    print(f"{'':32}{'median (ms)':>12}{'max (ms)':>10}{'file (kB)':>11}")
    print(f"{'live update per epoch':32}{statistics.median(update) * 1e3:12.1f}"
          f"{max(update) * 1e3:10.1f}{size / 1e3:11.1f}")  # fmt: skip
    print(f"{'full page rebuild':32}{statistics.median(rebuild) * 1e3:12.1f}"
          f"{max(rebuild) * 1e3:10.1f}{page / 1e3:11.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
