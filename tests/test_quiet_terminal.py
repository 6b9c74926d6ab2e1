"""A quiet terminal: a grid's console shows its progress and one line per epoch, not the C++
start-up lines of each kernel (they stay in the run's log); Ctrl-C ends with the resume line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

import cvlab
from cvlab.runs.record import RunRecord
from cvlab.workspace import Workspace

from notebook_builder import write_notebook

ROOT = Path(cvlab.__file__).parents[2]
RUN_GRID = ROOT / "run_grid.py"
# What TensorFlow's C++ side writes to fd 2 at import on this machine (absl, oneDNN).
CPP_LINES = ("absl::InitializeLog", "oneDNN custom operations", "cpu_feature_guard")
EPOCHS = 3

TF_CELLS = [
    ("code", "run_dir = None\nseed = 0\nx = 1\nsleep_s = 0.0\n"),
    (
        "code",
        f"""
import time
import tensorflow as tf
import cvlab.runs as runs

run = runs.start(params=dict(x=x), run_dir=run_dir, seed=seed)
for epoch in range(1, {EPOCHS} + 1):
    time.sleep(sleep_s)
    run.log_epoch(epoch, {EPOCHS}, loss=float(tf.constant(1.0 / epoch)), score=float(epoch * x))
run.log_metrics(score=float({EPOCHS} * x))
run.finish()
""",
    ),
]


def _grid(tmp_path: Path, **params) -> Path:
    write_notebook(TF_CELLS, tmp_path / "tf.ipynb")
    spec = {
        "notebook": "tf.ipynb",
        "params": params,
        "grid": {"x": [1, 2]},
        "rank_by": {"metric": "score", "mode": "max"},
    }
    path = tmp_path / "g.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return path


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user's shell: nothing set
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "lib"), env.get("PYTHONPATH", "")])
    return env


def _run_logs(ws: Workspace) -> str:
    return "".join(p.read_text() for p in sorted((ws.logs / "g").glob("*.log")))


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_console_has_epoch_lines_not_the_kernels_cpp_lines(tmp_path, workers):
    grid = _grid(tmp_path)
    out = tmp_path / "out"
    cmd = [sys.executable, str(RUN_GRID), str(grid), "--out", str(out), "--workers", str(workers)]
    proc = subprocess.run(cmd, capture_output=True, text=True, env=_env(), timeout=600)
    console = proc.stdout + proc.stderr
    assert proc.returncode == 0, console
    for line in CPP_LINES[:2]:
        assert line not in console, console
    epoch_lines = [ln for ln in console.splitlines() if " epoch " in ln and ln.startswith("[")]
    assert len(epoch_lines) == 2 * EPOCHS, console
    logs = _run_logs(Workspace.at(out))
    for line in CPP_LINES[:2]:
        assert line in logs  # kept in the runs' logs


@pytest.mark.slow
@pytest.mark.parametrize("workers", [1, 2])
def test_ctrl_c_ends_with_the_resume_line_and_counts_the_interrupted_run(tmp_path, workers):
    grid = _grid(tmp_path, sleep_s=20.0)
    out = tmp_path / "out"
    ws = Workspace.at(out)
    cmd = [sys.executable, str(RUN_GRID), str(grid), "--out", str(out), "--workers", str(workers)]
    # Its own session: SIGINT goes to the whole process group, as Ctrl-C in a terminal sends it.
    proc = subprocess.Popen(
        cmd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=_env(),
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 240
        # Interrupt once the first run's kernel is in its epochs (its record.json is written).
        while time.monotonic() < deadline:
            if list((ws.experiments / "g").glob("*/record.json")) and any(
                (ws.logs / "g").glob("*.log")
            ):
                break
            time.sleep(0.5)
        time.sleep(8.0)  # well inside the first epoch's sleep
        os.killpg(proc.pid, signal.SIGINT)
        console, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, console
    assert "Traceback" not in console and "Task exception" not in console, console
    assert "nothing run" not in console, console
    statuses = [RunRecord.load(d).status for d in (ws.experiments / "g").iterdir()]
    assert statuses == ["interrupted"] * workers  # the runs it had started
    assert f"grid g: {workers} interrupted" in console, console
    lines = [ln for ln in console.splitlines() if ln.strip()]
    assert lines[-1].startswith("interrupted: finished runs are kept"), console


def test_the_package_builds_without_setuptools_warnings(tmp_path):
    """`make setup`'s pip step: the project's metadata raises no deprecation warning."""
    proc = subprocess.run(
        [sys.executable, "-W", "always", "-c", _BUILD_METADATA, str(ROOT), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    printed = proc.stdout + proc.stderr
    assert "Deprecat" not in printed and "BuildBackendWarning" not in printed, printed


# The metadata step of a pip install (setuptools' PEP 517 hook), in this process: no network,
# no build isolation, where setuptools warns about `project.license` and friends.
_BUILD_METADATA = """
import os, sys, warnings
os.chdir(sys.argv[1])
warnings.simplefilter("always")
from setuptools import build_meta
print(build_meta.prepare_metadata_for_build_wheel(sys.argv[2]))
"""
