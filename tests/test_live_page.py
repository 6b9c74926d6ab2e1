"""The live page: runs in progress on experiments/index.html (issue 21, point 1)."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from datetime import timedelta
from pathlib import Path

import pytest
import yaml

from cvlab.grid.live_watch import LiveWatch
from cvlab.report.live_data import (
    grid_snapshot,
    live_entry,
    merged_live,
    write_grid_snapshot,
    write_live,
)
from cvlab.report.page import ensure_leaderboard_page
from cvlab.report.serve import make_server, page_url
from cvlab.runs.record import RunRecord, utc_now
from cvlab.runs.run import Run
from cvlab.workspace import Workspace

from notebook_builder import write_notebook

REPO = Path(__file__).resolve().parents[1]


def _running_run(ws: Workspace, grid: str = "g", run_id: str = "r1", epochs: int = 3) -> Run:
    run_dir = ws.run_dir(grid, run_id)
    run_dir.mkdir(parents=True)
    record = RunRecord(run_id=run_id, name=f"x={run_id}", grid=grid, started_at=utc_now())
    run = Run(run_dir, record)
    for epoch in range(1, epochs + 1):
        run.log_epoch(epoch, 10, loss=1.0 / epoch, val_loss=1.2 / epoch)
    return run


def test_log_epoch_records_progress_and_the_entry_shows_epoch_pace_and_end(tmp_path):
    ws = Workspace.at(tmp_path)
    run = _running_run(ws)
    record = RunRecord.load(run.run_dir)
    assert record.epochs_planned == 10
    assert len(record.epoch_seconds) == 3 and record.last_epoch_at is not None
    # the pace leaves out the first epoch (data loading, compilation) once there are others
    record.epoch_seconds = [30.0, 2.0, 4.0]
    assert record.seconds_per_epoch() == pytest.approx(3.0)
    assert record.expected_end() == record.last_epoch_at + timedelta(seconds=3.0 * 7)
    entry = live_entry(ws, record, now=record.last_epoch_at)
    assert (entry["epoch"], entry["epochs_planned"], entry["status"]) == (3, 10, "running")
    assert entry["s_per_epoch"] == 3.0 and entry["eta_s"] == pytest.approx(21.0)
    assert entry["latest"] == {"loss": pytest.approx(1 / 3, rel=1e-4), "val_loss": 0.4}
    assert entry["curve"]["epoch"] == [1, 2, 3]
    assert entry["links"]["folder"] == "g/r1/"


def test_runs_of_a_dead_driver_turn_interrupted(tmp_path):
    ws = Workspace.at(tmp_path)
    run = _running_run(ws)
    snapshot = grid_snapshot(ws, "g", [run.run_dir])
    write_grid_snapshot(ws, snapshot)
    assert [r["status"] for r in merged_live(ws)["runs"]] == ["running"]  # this process lives
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    snapshot["driver"]["pid"] = int(dead.stdout)  # a process that has ended
    write_grid_snapshot(ws, snapshot)
    data = write_live(ws)  # any next call (run_grid, --leaderboard, cvlab serve) does this
    assert [r["status"] for r in data["runs"]] == ["interrupted"]
    assert data["runs"][0]["eta"] is None and data["grids"]["g"]["alive"] is False
    assert json.loads((ws.experiments / "live.json").read_text())["runs"][0]["status"] == (
        "interrupted"
    )
    script = (ws.experiments / "live.js").read_text()
    assert script.startswith("window.CVLAB_LIVE = {") and '"interrupted"' in script
    # a driver on another host: alive while its heartbeat is recent, gone once it stops
    snapshot["driver"] = {"pid": 1, "host": "elsewhere", "ended": None}
    write_grid_snapshot(ws, snapshot)
    assert merged_live(ws)["runs"][0]["status"] == "running"
    snapshot["updated"] = (utc_now() - timedelta(minutes=5)).isoformat()
    write_grid_snapshot(ws, snapshot)
    assert merged_live(ws)["runs"][0]["status"] == "interrupted"


def test_the_watcher_writes_at_each_epoch_and_ends_with_the_final_state(tmp_path):
    ws = Workspace.at(tmp_path)
    run = _running_run(ws, epochs=1)
    handed = [type("P", (), {"grid": "g", "run_id": "r1"})()]
    watch = LiveWatch(ws, "g", lambda: handed, poll_s=0.05)
    watch.write()
    assert watch.poll() is False  # nothing changed: no write
    time.sleep(0.01)
    run.log_epoch(2, 10, loss=0.4, val_loss=0.5)
    assert watch.poll() is True
    assert merged_live(ws)["runs"][0]["epoch"] == 2
    run.finish()
    watch.stop()
    data = merged_live(ws)
    assert data["runs"][0]["status"] == "ok" and data["grids"]["g"]["driver"]["ended"]
    assert data["runs"][0]["eta"] is None


def test_serve_answers_without_caching_and_refreshes_the_live_data(tmp_path):
    ws = Workspace.at(tmp_path)
    server = make_server(ws, port=0)  # the page is made when there is none
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = page_url(server, ws)
        assert url.endswith("/experiments/index.html")
        with urllib.request.urlopen(url) as response:
            assert "no-store" in response.headers["Cache-Control"]
            page = response.read().decode()
        assert 'id="live"' in page and 'src="live.js"' in page
        with urllib.request.urlopen(url.replace("index.html", "live.json")) as response:
            assert json.loads(response.read())["runs"] == []
    finally:
        server.shutdown()
        server.server_close()


def test_a_page_from_file_shows_the_latest_state_on_reload(tmp_path, browser):
    ws = Workspace.at(tmp_path)
    run = _running_run(ws, epochs=2)
    ensure_leaderboard_page(ws)
    handed = [type("P", (), {"grid": "g", "run_id": "r1"})()]
    watch = LiveWatch(ws, "g", lambda: handed)
    watch.write()
    page = browser.new_page()
    try:
        page.goto(ws.leaderboard_page.as_uri())
        row = page.locator('#live tr[data-key="g/r1"]')
        assert row.locator(".live-epoch").inner_text() == "2/10"
        assert row.locator(".status").inner_text() == "running"
        assert page.locator("#live svg.live-curve polyline").count() == 2
        run.log_epoch(3, 10, loss=0.3, val_loss=0.35)
        watch.write()
        page.reload()
        assert page.locator('#live tr[data-key="g/r1"] .live-epoch').inner_text() == "3/10"
    finally:
        page.close()


SLOW_CELLS = [
    ("code", "run_dir = None\nseed = 0\nx = 1\nepochs = 4\nsleep_s = 1.5\n"),
    (
        "code",
        "import time\nimport cvlab\nrun = cvlab.runs.start(run_dir)\n"
        "for epoch in range(1, epochs + 1):\n"
        "    time.sleep(sleep_s)\n"
        "    run.log_epoch(epoch, epochs, loss=1.0 / epoch, val_loss=1.2 / epoch)\n"
        "run.log_metrics(score=float(x))\nrun.finish()\n",
    ),
]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
def test_a_running_grid_appears_on_the_served_page_and_its_epochs_grow(tmp_path, browser):
    write_notebook(SLOW_CELLS, tmp_path / "slow.ipynb")
    spec = {"notebook": "slow.ipynb", "grid": {"x": [1]}, "rank_by": {"metric": "score"}}
    (tmp_path / "g.yaml").write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    env = {
        **os.environ,
        "PYTHONPATH": f"{REPO / 'lib'}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
    }
    grid = subprocess.Popen(
        [sys.executable, str(REPO / "run_grid.py"), str(tmp_path / "g.yaml"), "--out", str(out),
         "--quiet", "--no-prewarm"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    port = _free_port()
    serve = None
    page = browser.new_page()
    try:
        deadline = time.monotonic() + 120
        while not (out / "experiments" / "index.html").is_file():
            assert grid.poll() is None, grid.stdout.read()
            assert time.monotonic() < deadline
            time.sleep(0.2)
        serve = subprocess.Popen(
            [sys.executable, "-m", "cvlab.cli", "serve", "--out", str(out), "--port", str(port)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        assert "open http://127.0.0.1" in serve.stdout.readline()
        page.goto(f"http://127.0.0.1:{port}/experiments/index.html")
        epoch = page.locator("#live tr.live-running .live-epoch")
        epoch.wait_for(timeout=90_000)  # the run appears as running, on the open page
        first = int(epoch.inner_text().split("/")[0])
        page.wait_for_function(
            f"() => {{ const c = document.querySelector('#live tr.live-running .live-epoch');"
            f" return c && parseInt(c.textContent) > {first}; }}",
            timeout=30_000,
        )  # its epoch count grows without a reload by the test
        assert epoch.inner_text().endswith("/4")
        assert grid.wait(timeout=120) == 0
        # then it shows finished: the served page reloads itself onto the rebuilt page
        page.locator('#runs td[data-col="status"] .status').filter(has_text="ok").wait_for(
            timeout=30_000
        )
    finally:
        page.close()
        if grid.poll() is None:
            grid.kill()
        if serve is not None:
            serve.terminate()
            serve.wait(timeout=10)
