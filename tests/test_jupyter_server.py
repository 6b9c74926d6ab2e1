"""JupyterLab in the default install: a base notebook executed through a real Jupyter server
records itself under experiments/interactive/ and shows up on the page."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from pathlib import Path

import pytest

import cvlab
from cvlab.report.publish import publish
from cvlab.runs.record import RunRecord
from cvlab.workspace import Workspace

ROOT = Path(cvlab.__file__).parents[2]
RECORD_AND_FINISH = """
import cvlab.runs as runs
run = runs.start(params={"x": 3}, seed=1)
run.log_epoch(1, 1, loss=0.5, score=0.75)
run.log_metrics(score=0.75)
print(run.finish().run_id)
"""


def _project(tmp_path: Path) -> Path:
    project = tmp_path / "project"
    project.mkdir()
    (project / "pyproject.toml").write_text('[project]\nname = "mine"\n')
    return project


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "lib"), env.get("PYTHONPATH", "")])
    return env


def _page_run_ids(ws: Workspace) -> str:
    return ws.leaderboard_page.read_text(encoding="utf-8")


def test_publish_shows_interactive_runs(tmp_path):
    project = _project(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", RECORD_AND_FINISH.replace("print(run.finish().run_id)", "")],
        cwd=project,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    ws = Workspace.at(project)
    (run_dir,) = (ws.experiments / "interactive").iterdir()
    assert RunRecord.load(run_dir).status == "running"  # not finished: no page yet
    assert not ws.leaderboard_page.exists()
    publish(ws)
    assert run_dir.name in _page_run_ids(ws)


def test_an_interactive_finish_rebuilds_the_page(tmp_path):
    project = _project(tmp_path)
    done = subprocess.run(
        [sys.executable, "-c", RECORD_AND_FINISH],
        cwd=project,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    run_id = done.stdout.strip().splitlines()[-1]
    ws = Workspace.at(project)
    assert RunRecord.load(ws.experiments / "interactive" / run_id).status == "ok"
    assert run_id in _page_run_ids(ws)


def test_a_failed_page_rebuild_is_a_warning_and_the_run_is_kept(tmp_path):
    project = _project(tmp_path)
    (project / "logs").write_text("not a folder")  # the store cannot be made
    done = subprocess.run(
        [sys.executable, "-W", "always", "-c", RECORD_AND_FINISH],
        cwd=project,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "the page was not rebuilt" in done.stderr
    run_id = done.stdout.strip().splitlines()[-1]
    assert RunRecord.load(project / "experiments" / "interactive" / run_id).status == "ok"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _api(base: str, token: str, path: str, method: str = "GET", body: dict | None = None):
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(
        f"{base}{path}",
        data=data,
        method=method,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read() or b"null")


def _execute(ws_conn, code: str, timeout: float) -> dict:
    """Send one execute_request over the kernel's websocket; return its execute_reply."""
    msg_id = uuid.uuid4().hex
    ws_conn.send(
        json.dumps(
            {
                "header": {
                    "msg_id": msg_id,
                    "msg_type": "execute_request",
                    "username": "test",
                    "session": uuid.uuid4().hex,
                    "version": "5.3",
                },
                "parent_header": {},
                "metadata": {},
                "content": {"code": code, "silent": False, "store_history": True},
                "channel": "shell",
                "buffers": [],
            }
        )
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        msg = json.loads(ws_conn.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "execute_reply":
            return msg["content"]
    raise TimeoutError(f"no execute_reply in {timeout} s for: {code[:80]}")


@pytest.mark.slow
def test_a_base_notebook_runs_through_a_real_jupyter_server(tmp_path):
    import websocket  # installed with jupyter_server

    project = _project(tmp_path)
    (project / "notebooks").mkdir()
    # The quickstart notebook with its own defaults (the cheapest base notebook: 5 epochs of
    # LeNet on the packaged mnist5k), as a user runs it in JupyterLab.
    shutil.copy(ROOT / "notebooks" / "00_quickstart.ipynb", project / "notebooks")
    port, token = _free_port(), uuid.uuid4().hex
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "jupyter_server",
            "--no-browser",
            "--allow-root",  # containers and CI run as root
            f"--port={port}",
            f"--IdentityProvider.token={token}",
            f"--ServerApp.root_dir={project / 'notebooks'}",
        ],
        cwd=project,
        env=_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                _api(base, token, "/api/status")
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.5)
        nb = _api(base, token, "/api/contents/00_quickstart.ipynb?content=1")["content"]
        # A session, as JupyterLab opens a notebook: its kernel starts in the notebook's folder.
        session = _api(
            base,
            token,
            "/api/sessions",
            "POST",
            {
                "path": "00_quickstart.ipynb",
                "type": "notebook",
                "name": "",
                "kernel": {"name": "python3"},
            },
        )
        kernel = session["kernel"]
        conn = websocket.create_connection(
            f"ws://127.0.0.1:{port}/api/kernels/{kernel['id']}/channels?token={token}",
            timeout=600,
        )
        try:
            for cell in nb["cells"]:
                if cell["cell_type"] != "code":
                    continue
                reply = _execute(conn, cell["source"], timeout=600)
                assert reply["status"] == "ok", (cell["source"][:200], reply)
        finally:
            conn.close()
            _api(base, token, f"/api/sessions/{session['id']}", "DELETE")
    finally:
        server.terminate()
        server.wait(timeout=60)
    ws = Workspace.at(project)
    (run_dir,) = (ws.experiments / "interactive").iterdir()
    record = RunRecord.load(run_dir)
    assert record.status == "ok" and record.params["epochs"] == 5  # the default
    assert run_dir.name in _page_run_ids(ws)
