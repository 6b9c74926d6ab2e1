"""Crash safety: a driver killed at random points (SIGINT, SIGTERM, SIGKILL) loses no finished
run and corrupts no file; the next call reports the interrupted runs and resumes them. Files are
written atomically, a full disk stops the grid with a clear error, and two drivers never run
the same grid into the same folder at once."""

from __future__ import annotations

import errno
import json
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pandas as pd
import pytest

import cvlab
from cvlab.atomic_io import DiskFullError, write_atomic, write_text_atomic
from cvlab.grid.cli import main
from cvlab.runs import RunRecord
from cvlab.workspace import Workspace

from conftest import light_spec

RUN_GRID = Path(cvlab.__file__).parents[2] / "run_grid.py"
SLEEPY = {"mode": "sleep", "sleep_s": 0.5}


def _driver(grid: Path, out: Path, log: Path) -> subprocess.Popen:
    cmd = [sys.executable, str(RUN_GRID), str(grid), "--out", str(out), "--quiet"]
    with open(log, "a") as fh:
        return subprocess.Popen(cmd, stdout=fh, stderr=subprocess.STDOUT)


def _check_nothing_corrupt(ws: Workspace, settled: bool) -> dict[str, RunRecord]:
    """Every file the grid wrote reads back whole; returns the run records by run id."""
    records = {}
    grid_dir = ws.experiments / "g"
    for run_dir in grid_dir.iterdir() if grid_dir.exists() else []:
        if not (run_dir / "record.json").exists():
            continue  # a run killed before its first record: nothing to read
        record = RunRecord.load(run_dir)  # raises on a half-written record
        records[record.run_id] = record
        if settled:  # the driver had time to record what it was doing
            assert record.status not in {"running", "pending"}, record
        if (run_dir / "run.ipynb").exists():
            nbformat.read(run_dir / "run.ipynb", as_version=4)
        if (run_dir / "history.csv").exists():
            pd.read_csv(run_dir / "history.csv")
        if record.status == "ok":
            assert record.metrics["score"] > 0  # a finished run has its results
    if ws.leaderboard_db.exists():
        with sqlite3.connect(ws.leaderboard_db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    if ws.leaderboard_csv.exists():
        pd.read_csv(ws.leaderboard_csv)
    if ws.leaderboard_page.exists():
        assert ws.leaderboard_page.read_text().rstrip().endswith("</html>")
    return records


def _kill_trials(tmp_path: Path, write_grid, sig: signal.Signals, seed: int, kills: int) -> int:
    """Kill the driver `kills` times at random (seeded) moments, checking after each kill that
    nothing is corrupt and no run that had finished was lost or run again; then let a driver
    finish. Returns how many kills landed while runs were executing."""
    rng = random.Random(seed)
    grid = write_grid(light_spec(grid={"x": [1, 2, 3, 4]}, params=SLEEPY))
    out, log = tmp_path / "out", tmp_path / "driver.log"
    ws = Workspace.at(out)
    finished: dict[str, RunRecord] = {}
    sent = landed = 0
    for _ in range(kills):
        proc = _driver(grid, out, log)
        time.sleep(rng.uniform(0.5, 7.0))
        if proc.poll() is not None:
            break  # the grid finished before this kill
        proc.send_signal(sig)
        sent += 1
        code = proc.wait(timeout=120)
        records = _check_nothing_corrupt(ws, settled=code == 130)
        for run_id, old in finished.items():  # a finished run is neither lost nor re-run
            assert records[run_id].status == "ok" and records[run_id].started_at == old.started_at
        landed += any(r.status != "ok" for r in records.values())
        finished.update({k: r for k, r in records.items() if r.status == "ok"})
    interrupted = {
        k for k, r in _check_nothing_corrupt(ws, settled=False).items() if r.status != "ok"
    }
    code = main([str(grid), "--out", str(out), "--quiet"])
    assert code == 0
    final = _check_nothing_corrupt(ws, settled=True)
    assert len(final) == 4 and {r.status for r in final.values()} == {"ok"}
    for run_id, old in finished.items():
        assert final[run_id].started_at == old.started_at
    with sqlite3.connect(ws.leaderboard_db) as conn:
        rows = conn.execute("SELECT run_id, status FROM runs WHERE grid = 'g'").fetchall()
    assert sorted(rows) == sorted((k, "ok") for k in final)  # each run once in the store
    assert len(pd.read_csv(ws.leaderboard_csv)) == 4
    log_text = (ws.logs / "g" / "grid.log").read_text()
    if interrupted:
        assert f"resuming {len(interrupted)} interrupted runs" in log_text
    print(
        f"kill trials {sig.name} seed {seed}: {sent} kills survived, {landed} while runs were "
        f"executing; {len(finished)} runs finished before the last kill, none lost or re-run"
    )
    return landed


@pytest.mark.parametrize(
    ("sig", "seed"), [(signal.SIGINT, 1), (signal.SIGTERM, 2), (signal.SIGKILL, 3)]
)
def test_killed_driver_loses_nothing(tmp_path, light_notebook, write_grid, sig, seed):
    _kill_trials(tmp_path, write_grid, sig, seed, kills=2)


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(10, 16))
def test_killed_driver_loses_nothing_many_trials(tmp_path, light_notebook, write_grid, seed):
    sig = [signal.SIGINT, signal.SIGTERM, signal.SIGKILL][seed % 3]
    _kill_trials(tmp_path, write_grid, sig, seed, kills=4)


def test_next_call_reports_interrupted_runs(light_notebook, write_grid, tmp_path, capsys):
    """A run left `running` by a killed driver is named on the next call, and resumed."""
    grid = write_grid(light_spec(grid={"x": [1, 2]}))
    out = tmp_path / "out"
    assert main([str(grid), "--out", str(out), "--quiet", "--no-prewarm"]) == 0
    ws = Workspace.at(out)
    run_dir = next(d for d in (ws.experiments / "g").iterdir())
    record = RunRecord.load(run_dir)
    record.status = "running"  # as a SIGKILL in the middle of the run leaves it
    record.save(run_dir)
    capsys.readouterr()
    assert main([str(grid), "--out", str(out), "--dry-run"]) == 0
    assert "interrupted" in capsys.readouterr().out
    assert main([str(grid), "--out", str(out), "--quiet", "--no-prewarm"]) == 0
    printed = capsys.readouterr().out
    assert "1 to run" in printed
    assert f"1 interrupted by a stopped driver, resumed now: {record.name} [{record.run_id}]" in (
        printed
    )
    assert RunRecord.load(run_dir).status == "ok"


def _asleep(ws: Workspace) -> bool:
    """Whether the sleeping run has logged both its epochs (then it only sleeps)."""
    histories = list((ws.experiments / "g").glob("*/history.csv"))
    return bool(histories) and len(histories[0].read_text().splitlines()) == 3


def _lasting_files(ws: Workspace) -> list[Path]:
    """The grid's files, leaving out atomic writes' temporaries (`.NAME.XXXX.tmp`)."""
    return sorted(
        p for p in ws.experiments.rglob("*") if p.is_file() and not p.name.startswith(".")
    )


def test_a_second_driver_is_refused(light_notebook, write_grid, tmp_path, capsys):
    grid = write_grid(light_spec(grid={"x": [1, 2]}, params={"mode": "sleep", "sleep_s": 60.0}))
    out = tmp_path / "out"
    ws = Workspace.at(out)
    proc = _driver(grid, out, tmp_path / "first.log")
    owner = ws.logs / "g" / "grid.lock.owner.json"
    try:
        deadline = time.monotonic() + 60
        while not owner.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert json.loads(owner.read_text())["pid"] == proc.pid
        # Snapshot only once the first driver's run is asleep (both epochs logged): before that
        # it is still writing its own files, which must not count against the second driver.
        while not _asleep(ws) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _asleep(ws), "the first driver's run never reached its sleep"
        before = _lasting_files(ws)
        code = main([str(grid), "--out", str(out), "--quiet"])
        err = capsys.readouterr().err
        assert code == 2
        assert str(ws.logs / "g" / "grid.lock") in err
        assert f"PID {proc.pid} on host {socket.gethostname()}" in err and "Nothing was run" in err
        assert _lasting_files(ws) == before
        # the dry run reads, so it is allowed meanwhile
        assert main([str(grid), "--out", str(out), "--dry-run"]) == 0
        # another output folder is another grid instance: not locked
        assert main([str(grid), "--out", str(tmp_path / "other"), "--dry-run"]) == 0
    finally:
        proc.kill()
        proc.wait(timeout=60)
    # SIGKILL leaves no stale lock: the next driver takes it (and resumes the killed run)
    grid = write_grid(light_spec(grid={"x": [1, 2]}))  # same runs would sleep: run others
    assert main([str(grid), "--out", str(out), "--quiet", "--no-prewarm"]) == 0


def test_atomic_write_keeps_the_old_file_when_the_disk_is_full(tmp_path):
    target = tmp_path / "record.json"
    write_text_atomic(target, '{"old": true}\n')

    def half_then_full(tmp: Path) -> None:
        tmp.write_text('{"new": ')  # half written, then:
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(DiskFullError) as info:
        write_atomic(target, half_then_full)
    assert str(target) in str(info.value) and "no space left" in str(info.value)
    assert "intact" in str(info.value) and "--out" in str(info.value)
    assert target.read_text() == '{"old": true}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["record.json"]  # no temporary left


def test_disk_full_during_a_grid_stops_it_with_a_clear_error(
    light_notebook, write_grid, tmp_path, capsys, monkeypatch
):
    grid = write_grid(light_spec(grid={"x": [1, 2, 3]}))
    out = tmp_path / "out"
    from cvlab.grid import execute

    real_copy = execute.copy_atomic
    copies = {"n": 0}

    def copy_until_full(src, dst):  # the second run's curves figure meets a full disk
        copies["n"] += 1
        if copies["n"] != 2:
            return real_copy(src, dst)

        def half_then_full(tmp: Path) -> None:
            tmp.write_bytes(b"\x89PNG half")
            raise OSError(errno.ENOSPC, "No space left on device")

        return write_atomic(dst, half_then_full)

    monkeypatch.setattr(execute, "copy_atomic", copy_until_full)
    code = main([str(grid), "--out", str(out), "--quiet", "--no-prewarm"])
    err = capsys.readouterr().err
    assert code == 1
    assert "no space left on the device while writing" in err and "-curves.png" in err
    ws = Workspace.at(out)
    figs = sorted(p.name for p in (ws.figs / "g").iterdir())
    assert len([f for f in figs if f.endswith("-curves.png")]) == 1 and not [
        f for f in figs if f.endswith(".tmp")
    ]
    _check_nothing_corrupt(ws, settled=False)
    monkeypatch.setattr(execute, "copy_atomic", real_copy)  # space freed
    assert main([str(grid), "--out", str(out), "--quiet", "--no-prewarm"]) == 0
    assert {r.status for r in _check_nothing_corrupt(ws, settled=True).values()} == {"ok"}


def test_the_driver_writes_every_output_file_atomically(
    light_notebook, write_grid, tmp_path, monkeypatch
):
    """Trace every file the driver opens for writing under the output folder: each is a
    temporary file renamed into place, except the append-only logs and the lock."""
    out = tmp_path / "out"
    opened: list[str] = []
    tracing = {"on": False}

    def hook(event: str, args: tuple) -> None:
        if tracing["on"] and event == "open" and isinstance(args[0], str | Path):
            path, mode, flags = str(args[0]), args[1], args[2]
            writes = (mode and any(c in str(mode) for c in "wax+")) or (
                isinstance(flags, int) and flags & 0o3
            )
            if writes and path.startswith(str(out)):
                opened.append(path)

    sys.addaudithook(hook)  # audit hooks cannot be removed: this one is switched off below
    tracing["on"] = True
    try:
        assert main([str(write_grid(light_spec())), "--out", str(out), "--quiet"]) == 0
    finally:
        tracing["on"] = False
    direct = {
        p
        for p in opened
        if not Path(p).name.endswith(".tmp")
        and not p.endswith(".log")
        and Path(p).name not in {"grid.lock", "leaderboard.db", "leaderboard.db-wal"}
        and ".cvlab-write-check." not in p
    }
    assert direct == set(), direct
    kinds = {Path(p).name.split(".")[1] for p in opened if p.endswith(".tmp")}
    assert {"record", "run", "leaderboard", "index"} <= kinds  # record, run.ipynb/html, csv, page
