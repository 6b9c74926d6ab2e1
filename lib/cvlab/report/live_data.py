"""The live page's data: the runs a grid driver is running now, read from their run folders.

Each driver (`cvlab.grid.live_watch.LiveWatch`) writes its grid's snapshot to
`logs/<grid>/live.json`; `write_live` merges every grid's snapshot into `experiments/live.js`
(`window.CVLAB_LIVE = {...};`, which a page opened from file:// loads with a <script>, fetch()
being blocked there) and `experiments/live.json` (what the served page polls). A `running` run
whose driver is gone (its process ended, or its heartbeat stopped) is shown `interrupted`.
"""

from __future__ import annotations

import json
import math
import os
import socket
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from cvlab.atomic_io import write_json_atomic, write_text_atomic
from cvlab.report.page_curves import load_curves
from cvlab.report.page_data import href, to_script_json
from cvlab.runs.record import CURVES_FILE, HISTORY_FILE, HTML_FILE, RunRecord, utc_now
from cvlab.workspace import Workspace

LIVE_FILE = "live.json"  # per grid in logs/<grid>/, and the merged one in experiments/
LIVE_SCRIPT = "live.js"
# A driver on another host cannot be asked whether its process lives: it counts as gone when
# its snapshot is older than this (the watcher rewrites it every HEARTBEAT_S at least).
HEARTBEAT_S = 10.0
STALE_AFTER_S = 6 * HEARTBEAT_S
LIVE_CURVE_POINTS = 60  # epochs kept per live curve (thinned evenly, first and last kept)
ACTIVE = frozenset({"running", "pending"})


def grid_live_path(ws: Workspace, grid: str) -> Path:
    return ws.logs / grid / LIVE_FILE


def driver_info() -> dict[str, Any]:
    """Who writes a snapshot: this process, on this host."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.astimezone(UTC).isoformat(timespec="seconds")


def _latest_row(history: dict[str, list[float | None]] | None) -> dict[str, float]:
    if not history:
        return {}
    return {k: v[-1] for k, v in history.items() if k != "epoch" and v and v[-1] is not None}


def live_entry(ws: Workspace, record: RunRecord, now: datetime | None = None) -> dict[str, Any]:
    """One run as the live panel shows it: epoch k of N, latest values, pace, estimated end,
    its curve (thinned) and links relative to `experiments/`."""
    now = now or utc_now()
    run_dir = ws.run_dir(record.grid, record.run_id)
    curve = load_curves(run_dir / HISTORY_FILE, limit=LIVE_CURVE_POINTS)
    pace = record.seconds_per_epoch()
    end = record.expected_end() if record.status in ACTIVE else None
    links = {"folder": href(record.grid, record.run_id) + "/"}
    for label, name in (("notebook", HTML_FILE), ("curves", CURVES_FILE)):
        if (run_dir / name).is_file():
            links[label] = href(record.grid, record.run_id, name)
    return {
        "key": f"{record.grid}/{record.run_id}",
        "grid": record.grid,
        "id": record.run_id,
        "name": record.name or record.run_id,
        "status": record.status,
        "epoch": record.epochs_completed,
        "epochs_planned": record.epochs_planned,
        "latest": _latest_row(curve),
        "metrics": {
            k: v
            for k, v in record.metrics.items()
            if isinstance(v, int | float) and math.isfinite(v)
        },
        "s_per_epoch": None if pace is None else round(pace, 3),
        "eta": _iso(end),
        "eta_s": None if end is None else max(0.0, round((end - now).total_seconds(), 1)),
        "curve": curve,
        "started": _iso(record.started_at),
        "ended": _iso(record.ended_at),
        "links": links,
    }


def grid_snapshot(
    ws: Workspace, grid: str, run_dirs: Iterable[Path], *, ended: bool = False
) -> dict[str, Any]:
    """A driver's snapshot of its grid: the runs it handed out this call (records read now)."""
    now = utc_now()
    runs = []
    for run_dir in run_dirs:
        record = RunRecord.load_if_present(run_dir)
        if record is not None:
            runs.append(live_entry(ws, record, now))
    return {
        "grid": grid,
        "driver": {**driver_info(), "ended": _iso(now) if ended else None},
        "updated": _iso(now),
        "runs": runs,
    }


def write_grid_snapshot(ws: Workspace, snapshot: dict[str, Any]) -> Path:
    return write_json_atomic(grid_live_path(ws, snapshot["grid"]), snapshot)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process: it exists
        return True
    return True


def driver_alive(snapshot: dict[str, Any], now: datetime | None = None) -> bool:
    """Whether the driver that wrote `snapshot` is still running its grid: on this host, its
    process exists; elsewhere, its heartbeat is recent."""
    driver = snapshot.get("driver") or {}
    if driver.get("ended"):
        return False
    if driver.get("host") == socket.gethostname() and isinstance(driver.get("pid"), int):
        return _pid_alive(driver["pid"])
    try:
        updated = datetime.fromisoformat(snapshot["updated"])
    except (KeyError, TypeError, ValueError):
        return False
    return (now or utc_now()) - updated < timedelta(seconds=STALE_AFTER_S)


def _read_snapshot(path: Path) -> dict[str, Any] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) and isinstance(data.get("runs"), list) else None


def merged_live(ws: Workspace) -> dict[str, Any]:
    """Every grid's snapshot in one: runs of a driver that is gone no longer show `running`."""
    now = utc_now()
    grids, runs = {}, []
    for path in sorted(ws.logs.glob(f"*/{LIVE_FILE}")) if ws.logs.is_dir() else []:
        snapshot = _read_snapshot(path)
        if snapshot is None:
            continue
        alive = driver_alive(snapshot, now)
        grid = str(snapshot.get("grid") or path.parent.name)
        grids[grid] = {
            "driver": snapshot.get("driver"),
            "alive": alive,
            "updated": snapshot.get("updated"),
        }
        for entry in snapshot["runs"]:
            if not alive and entry.get("status") in ACTIVE:
                ended = (snapshot.get("driver") or {}).get("ended") or snapshot.get("updated")
                entry = {
                    **entry,
                    "status": "interrupted",
                    "eta": None,
                    "eta_s": None,
                    "ended": ended,
                }
            runs.append(entry)
    return {"updated": _iso(now), "grids": grids, "runs": runs}


def write_live(ws: Workspace) -> dict[str, Any]:
    """Merge the grids' snapshots into `experiments/live.json` and `experiments/live.js`."""
    data = merged_live(ws)
    write_json_atomic(ws.experiments / LIVE_FILE, data)
    # to_script_json escapes "</" and friends: the data is safe inside any <script>
    write_text_atomic(
        ws.experiments / LIVE_SCRIPT, f"window.CVLAB_LIVE = {to_script_json(data)};\n"
    )
    return data
