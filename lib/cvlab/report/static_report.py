"""A shareable, frozen copy of the comparison views: one folder that opens from a USB stick or a
static file host, with nothing fetched from the network.

The folder has the workspace's own layout (`experiments/`, `figs/`, `logs/`), so the page's
relative links work unchanged: `index.html` (opens the leaderboard page), the page for the
chosen grids, each run's executed notebook as HTML, curves, figures and images, the grid figures,
and `logs/leaderboard.csv` with the same rows. Models, backups and raw logs stay behind (large,
and not part of a report); the page links only files that are in the folder.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

from cvlab.atomic_io import write_atomic, write_text_atomic
from cvlab.errors import ReportError
from cvlab.report.page import write_leaderboard_page
from cvlab.report.search_view import grid_spaces
from cvlab.report.store import LeaderboardStore, only_grids
from cvlab.runs.record import CURVES_FILE, HISTORY_FILE, HTML_FILE, RunRecord
from cvlab.workspace import Workspace

# Run files copied besides the artifacts under these folders
RUN_FILES = (HTML_FILE, CURVES_FILE, HISTORY_FILE)
ARTIFACT_FOLDERS = ("figures", "images")
REDIRECT = (
    "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
    "<meta http-equiv='refresh' content='0; url=experiments/index.html'>"
    "<title>cvlab report</title></head><body><p><a href='experiments/index.html'>"
    "Open the leaderboard</a></p></body></html>"
)


def _copy(src: Path, dst: Path) -> None:
    write_atomic(dst, lambda tmp: shutil.copyfile(src, tmp))


def _copy_run(source: Workspace, target: Workspace, record: RunRecord) -> None:
    src = source.run_dir(record.grid, record.run_id)
    dst = target.run_dir(record.grid, record.run_id)
    for name in RUN_FILES:
        if (src / name).is_file():
            _copy(src / name, dst / name)
    for rel in record.artifacts.values():
        path = Path(rel)
        if path.parts and path.parts[0] in ARTIFACT_FOLDERS and (src / path).is_file():
            _copy(src / path, dst / path)
    record.save(dst)


def write_report(grids: Iterable[str] | None, out: str | Path, *, source: str | Path = ".") -> Path:
    """Copy the runs of `grids` (every grid when None) from the workspace at `source` into the
    folder `out` and write its page; returns `out/index.html`.

    Re-writing a report replaces the runs it holds, so a report can be refreshed in place.
    """
    src = Workspace.at(source)
    dst = Workspace.at(out)
    inside = [src.experiments, src.figs, src.logs]
    if dst.root == src.root or any(d == dst.root or d in dst.root.parents for d in inside):
        raise ReportError(
            f"{dst.root}: the report folder cannot be the workspace {src.root} or lie inside its "
            "experiments/, figs/ or logs/ (it would overwrite them); choose e.g. --report report"
        )
    if not src.leaderboard_db.is_file():
        raise ReportError(
            f"{src.leaderboard_db}: no leaderboard here; run a grid first or pass the --out "
            "folder the grid wrote to"
        )
    store = LeaderboardStore(src.leaderboard_db)
    known = store.grids()
    chosen = sorted(known) if grids is None else list(dict.fromkeys(grids))
    unknown = [g for g in chosen if g not in known]
    if unknown:
        raise ReportError(
            f"no grid {', '.join(map(repr, unknown))} in {src.leaderboard_db} "
            f"(grids: {', '.join(sorted(known)) or 'none'})"
        )
    frame = only_grids(store.frame(), chosen)
    records = [r for r in store.records() if r.grid in chosen]
    for grid in chosen:
        shutil.rmtree(dst.experiments / grid, ignore_errors=True)
        shutil.rmtree(dst.grid_figs(grid), ignore_errors=True)
        for fig in sorted(src.grid_figs(grid).glob("*.png")):
            _copy(fig, dst.grid_figs(grid) / fig.name)
    for record in records:
        _copy_run(src, dst, record)
    # The report's own CSV, with exactly the rows its page shows
    write_atomic(dst.leaderboard_csv, lambda tmp: frame.to_csv(tmp, index=False))
    # the grids' spaces from their files in the source workspace (a report has no store)
    write_leaderboard_page(frame, records, dst, grid_spaces(known, src.root))
    return write_text_atomic(dst.root / "index.html", REDIRECT)
