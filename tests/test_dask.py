"""Grids on a Dask cluster: a LocalCluster of 2 worker processes runs a 4-run grid, each run
recorded once, with the files sent back to the driver or written into a shared --out; GPU
placement gives each run one device of its worker; a missing or silent Dask is a clear exit 2."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path

import pytest
import yaml

from cvlab.grid.cli import main
from cvlab.runs import RunRecord
from cvlab.workspace import Workspace

from notebook_builder import write_notebook

distributed = pytest.importorskip("distributed")

# Sleeps a little, and logs where it ran: its worker (the kernel's parent process), the GPU it
# was given, and when it started and ended.
CELLS = [
    ("code", "run_dir = None\nx = 1\nsleep_s = 0.5\n"),
    (
        "code",
        """
import os, time
import cvlab

run = cvlab.runs.start(run_dir)
started = time.time()
time.sleep(sleep_s)
run.log_epoch(1, 1, loss=1.0 / x)
run.log_metrics(
    score=float(x),
    started=started,
    ended=time.time(),
    worker_pid=os.getppid(),
    device=int(os.environ.get("CUDA_VISIBLE_DEVICES", "-1")),
)
run.finish()
""",
    ),
]


@pytest.fixture
def grid_file(tmp_path: Path) -> Path:
    write_notebook(CELLS, tmp_path / "where.ipynb")
    path = tmp_path / "g.yaml"
    spec = {"notebook": "where.ipynb", "grid": {"x": [1, 2, 3, 4]}, "rank_by": {"metric": "score"}}
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.fixture(scope="module")
def cluster():
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
    ) as local:
        yield local


def _records(out: Path) -> list[RunRecord]:
    return [RunRecord.load(d) for d in sorted((Path(out) / "experiments" / "g").iterdir())]


def _check_four_runs_once(out: Path) -> list[RunRecord]:
    ws = Workspace.at(out)
    records = _records(out)
    assert sorted(r.metrics["score"] for r in records) == [1.0, 2.0, 3.0, 4.0]
    assert {r.status for r in records} == {"ok"}
    for record in records:
        run_dir = ws.run_dir("g", record.run_id)
        for name in ("run.ipynb", "run.html", "history.csv", "curves.png"):
            assert (run_dir / name).is_file(), name
        log = ws.run_log("g", record.run_id).read_text()
        assert log.count(f"run {record.run_id} (") == 1  # executed once
        assert record.notebook == str((out.parent / "where.ipynb").resolve())
    with sqlite3.connect(ws.leaderboard_db) as conn:
        rows = conn.execute("SELECT run_id, status FROM runs").fetchall()
    assert sorted(rows) == sorted((r.run_id, "ok") for r in records)  # once each, by the driver
    assert ws.leaderboard_page.is_file() and ws.leaderboard_csv.is_file()
    return records


def test_two_workers_return_the_runs_to_the_driver(cluster, grid_file, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [str(grid_file), "--out", str(out), "--quiet", "--scheduler", cluster.scheduler_address]
    )
    printed = capsys.readouterr().out
    assert code == 0 and "workers sending files back" in printed
    records = _check_four_runs_once(out)
    assert len({r.metrics["worker_pid"] for r in records}) == 2  # both workers took runs
    for record in records:  # the files came back from a worker's scratch folder
        log = Workspace.at(out).run_log("g", record.run_id).read_text()
        assert log.startswith("--- (executed on worker ")
    # a second call finds everything finished and runs nothing
    assert (
        main(
            [str(grid_file), "--out", str(out), "--quiet", "--scheduler", cluster.scheduler_address]
        )
        == 0
    )
    assert "4 already finished" in capsys.readouterr().out
    assert _records(out) == records


def test_two_workers_write_into_a_shared_out(cluster, grid_file, tmp_path, capsys):
    out = tmp_path / "out"
    args = ["--scheduler", cluster.scheduler_address, "--shared-out", "--no-prewarm"]
    code = main([str(grid_file), "--out", str(out), "--quiet", *args])
    assert code == 0 and "writing into --out (shared)" in capsys.readouterr().out
    records = _check_four_runs_once(out)
    for record in records:
        log = Workspace.at(out).run_log("g", record.run_id).read_text()
        assert "executed on worker" not in log  # written in place by the worker


def test_shared_out_that_workers_cannot_see(cluster, tmp_path):
    from cvlab.grid.scheduler import DaskUnavailableError, check_shared_out

    with distributed.Client(cluster.scheduler_address) as client:
        check_shared_out(client, tmp_path)  # same machine: they see it
        ghost = tmp_path / "not-mounted-here"
        with pytest.raises(DaskUnavailableError, match="do not see") as info:
            check_shared_out(client, ghost)
    assert (
        str(ghost) in str(info.value)
        and str(len(cluster.workers))
        and "--shared-out" in str(info.value)
    )


def test_local_dask_cluster_from_the_command_line(grid_file, tmp_path, capsys):
    out = tmp_path / "out"
    code = main(
        [str(grid_file), "--out", str(out), "--quiet", "--scheduler", "local", "--workers", "2"]
    )
    assert code == 0 and "a local Dask cluster" in capsys.readouterr().out
    _check_four_runs_once(out)


def test_each_run_gets_one_gpu_of_its_worker(grid_file, tmp_path, capsys, monkeypatch):
    """One worker with GPU=2 (devices 3 and 5) and 3 threads: at most two runs at a time, each
    with CUDA_VISIBLE_DEVICES set to its own device."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5")  # the worker process inherits it
    with distributed.LocalCluster(
        n_workers=1,
        threads_per_worker=3,
        processes=True,
        resources={"GPU": 2},
        dashboard_address=":0",
    ) as local:
        out = tmp_path / "out"
        code = main(
            [str(grid_file), "--out", str(out), "--quiet", "--scheduler", local.scheduler_address]
        )
    assert code == 0 and "one GPU per run" in capsys.readouterr().out
    records = _check_four_runs_once(out)
    spans = [(r.metrics["started"], r.metrics["ended"], r.metrics["device"]) for r in records]
    assert {device for *_, device in spans} <= {3, 5}
    for i, (start_a, end_a, dev_a) in enumerate(spans):
        overlapping = [s for s in spans[i + 1 :] if s[0] < end_a and start_a < s[1]]
        assert len(overlapping) <= 1  # never 3 at once
        assert all(dev_b != dev_a for _, _, dev_b in overlapping)  # never sharing a device
    assert {r.environment["cuda_visible_devices"] for r in records} <= {"3", "5"}


def test_missing_dask_is_a_clear_error(grid_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "distributed", None)  # as if not installed
    out = tmp_path / "out"
    code = main([str(grid_file), "--out", str(out), "--scheduler", "tcp://127.0.0.1:8786"])
    err = capsys.readouterr().err
    assert code == 2 and "pip install 'cvlab[dask]'" in err and "Nothing was run" in err
    assert not (out / "experiments" / "g").exists()


def test_unreachable_scheduler_is_a_clear_error(grid_file, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr("cvlab.grid.scheduler.DASK_CONNECT_TIMEOUT_S", 2.0)
    out = tmp_path / "out"
    code = main([str(grid_file), "--out", str(out), "--scheduler", "tcp://127.0.0.1:9"])
    err = capsys.readouterr().err
    assert code == 2 and "no Dask scheduler answered" in err and "tcp://127.0.0.1:9" in err
    assert "docs/dask.md" in err and not (out / "experiments" / "g").exists()
