"""Publish what the store holds: CSV export, per-grid figures, the runs' output images and the
HTML page. Driver only."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from cvlab.atomic_io import write_atomic
from cvlab.report.interactive_runs import add_interactive_runs
from cvlab.report.page import write_leaderboard_page
from cvlab.report.page_data import workspace_spaces
from cvlab.report.plots import write_grid_figures
from cvlab.report.store import LeaderboardStore
from cvlab.runs.record import RunRecord
from cvlab.workspace import Workspace


def publish(ws: Workspace, grids: list[str] | None = None) -> Path:
    """Rebuild the CSV, the figures of `grids` (all when None) and `experiments/index.html`."""
    store = LeaderboardStore(ws.leaderboard_db)
    add_interactive_runs(ws, store)  # runs made in Jupyter have no driver to upsert them
    store.export_csv(ws.leaderboard_csv)
    frame = store.frame()
    records = store.records()
    spaces = workspace_spaces(ws)  # searched and pruned grids' spaces, from their grid files
    for grid in grids if grids is not None else sorted(frame["grid"].unique()):
        mine = [r for r in records if r.grid == grid]
        write_grid_figures(frame, ws, grid, spaces.get(grid), mine)
        copy_run_images(ws, mine)
    return write_leaderboard_page(frame, records, ws, spaces)


_UNSAFE = re.compile(r"[^\w.=,+-]")  # run names come from parameter values


def copy_run_images(ws: Workspace, records: list[RunRecord]) -> None:
    """The images runs saved (`Run.save_image`) also in `figs/<grid>/images/<run>-<name>.png`,
    beside the grid's plots, so a grid's outputs can be looked through in one folder."""
    for record in records:
        run_dir = ws.run_dir(record.grid, record.run_id)
        for key, rel in record.artifacts.items():
            if not key.startswith("image:") or not (run_dir / rel).is_file():
                continue
            name = f"{record.name or record.run_id}-{key.removeprefix('image:')}"
            target = ws.grid_figs(record.grid) / "images" / f"{_UNSAFE.sub('_', name)}.png"
            if not target.is_file() or target.stat().st_mtime < (run_dir / rel).stat().st_mtime:
                write_atomic(target, lambda tmp, src=run_dir / rel: shutil.copyfile(src, tmp))
