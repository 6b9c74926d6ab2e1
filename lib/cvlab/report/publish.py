"""Publish what the store holds: CSV export, per-grid figures and the HTML page. Driver only."""

from __future__ import annotations

from pathlib import Path

from cvlab.report.page import write_leaderboard_page
from cvlab.report.plots import write_grid_figures
from cvlab.report.store import LeaderboardStore
from cvlab.workspace import Workspace


def publish(ws: Workspace, grids: list[str] | None = None) -> Path:
    """Rebuild the CSV, the figures of `grids` (all when None) and `experiments/index.html`."""
    store = LeaderboardStore(ws.leaderboard_db)
    store.export_csv(ws.leaderboard_csv)
    frame = store.frame()
    for grid in grids if grids is not None else sorted(frame["grid"].unique()):
        write_grid_figures(frame, ws, grid)
    return write_leaderboard_page(frame, store.records(), ws)
