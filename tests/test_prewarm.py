"""Warm kernels and the background HTML worker: runs stay isolated, a dead spare costs no run,
every run has its HTML when the command returns, and a killed driver's missing HTML is made."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import cvlab
from cvlab.grid.prewarm import prewarm_statements, scan_notebook_imports
from cvlab.runs import RunRecord
from cvlab.workspace import Workspace

from conftest import LIGHT_CELLS, light_spec
from notebook_builder import write_notebook

# Run 1 has no spare to take (cold); from run 2 on, the spare started during the previous run.
PROBE_CELLS = [
    ("code", 'run_dir = None\nx = 1\nmode = "ok"'),
    (
        "code",
        """
names_at_start = sorted(dir())
import sys
early = sorted(m for m in ("tomllib", "netrc") if m in sys.modules)
import json, os
import tomllib
import cvlab
""",
    ),
    (
        "code",
        """
leaked = "secret" in globals()
secret = x
probe = {
    "names": names_at_start,
    "early": early,
    "pid": os.getpid(),
    "leaked": leaked,
    "count": get_ipython().execution_count,
}
with open(os.path.join(run_dir, "probe.json"), "w") as f:
    json.dump(probe, f)
run = cvlab.runs.start(run_dir)
run.log_metrics(score=x)
run.finish()
""",
    ),
]


def _records(out: Path, grid: str = "g") -> dict[str, RunRecord]:
    """The runs recorded in `out` (a killed driver may leave a run folder without a record)."""
    found = (RunRecord.load_if_present(d) for d in (out / "experiments" / grid).iterdir())
    return {r.name: r for r in found if r is not None}


def _run_log(out: Path, record: RunRecord) -> str:
    return Workspace.at(out).run_log(record.grid, record.run_id).read_text()


def _kernel_children() -> list[int]:
    """Kernel processes this test process started that are still running (leaks)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if int(fields[1]) == os.getpid() and fields[0] != "Z" and b"ipykernel" in cmdline:
            found.append(int(entry))
    return found


def test_import_lines_are_found_up_to_what_changes_resolution(tmp_path):
    notebook = write_notebook(
        [
            ("code", "run_dir = None"),
            (
                "code",
                """
%matplotlib inline
import json, os.path as osp
from collections import OrderedDict as OD
from . import sibling
from __future__ import annotations
if True:
    import csv
x = json.dumps({})
""",
            ),
            ("code", "import json\nfrom sklearn import datasets"),
            ("code", 'os.environ["KERAS_BACKEND"] = "jax"\nimport keras'),
            ("code", "import numpy"),
        ],
        tmp_path / "n.ipynb",
    )
    scan = scan_notebook_imports(notebook)
    assert scan.statements == (
        "import json, os.path as osp",
        "from collections import OrderedDict as OD",
        "import json",
        "from sklearn import datasets",
    )
    assert scan.stopped_at == "cell 4, line 1 (os.environ)"
    extra = prewarm_statements(notebook, ["keras", "json"])
    assert extra.statements == (*scan.statements, "import keras")  # json is there already
    assert extra.stopped_at == scan.stopped_at
    harmless = 'import sys\nok = "keras" in sys.modules or os.environ.get("X")\nimport json'
    nb = write_notebook([("code", "run_dir = None"), ("code", harmless)], tmp_path / "r.ipynb")
    assert scan_notebook_imports(nb).statements == ("import sys", "import json")  # reads only
    for source, why in [
        ("!pip install foo", "a shell command"),
        ("%cd ..", "%cd"),
        ('sys.path.insert(0, "..")', "sys.path.insert"),
        ('os.environ.update(X="1")', "os.environ.update"),
        ("del os.environ['X']", "os.environ"),
    ]:
        nb = write_notebook(
            [("code", "run_dir = None"), ("code", source + "\nimport a")], tmp_path / "m.ipynb"
        )
        assert scan_notebook_imports(nb) == type(scan)((), f"cell 2, line 1 ({why})")


def test_warm_kernel_is_a_fresh_cold_kernel_with_modules_loaded(tmp_path, write_grid, capsys):
    """Same namespace, execution counts and folder as a cold kernel; its own process; nothing
    from an earlier run; the notebook's and the grid's `prewarm:` modules already imported."""
    write_notebook(PROBE_CELLS, tmp_path / "probe.ipynb")
    spec = light_spec(notebook="probe.ipynb", params={}, grid={"x": [1, 2, 3]}, prewarm=["netrc"])
    path = write_grid(spec)
    probes: dict[str, dict[str, dict]] = {}
    from cvlab.grid.cli import main

    for mode, args in [("warm", []), ("cold", ["--no-prewarm"])]:
        out = tmp_path / mode
        code = main([str(path), "--out", str(out), "--quiet", *args])
        assert code == 0, capsys.readouterr().err
        ws = Workspace.at(out)
        records = _records(out)
        probes[mode] = {
            name: json.loads((ws.run_dir("g", r.run_id) / "probe.json").read_text())
            for name, r in records.items()
        }
        for name, record in records.items():  # the HTML is there when the command returns
            assert record.status == "ok" and record.artifacts.get("html") == "run.html", name
            assert (ws.run_dir("g", record.run_id) / "run.html").stat().st_size > 0
        logs = {name: _run_log(out, r) for name, r in records.items()}
        if mode == "warm":
            assert "kernel: cold start" in logs["x=1"]
            assert "kernel: warm" in logs["x=2"] and "kernel: warm" in logs["x=3"]
        assert _kernel_children() == []  # no spare outlives the command
    warm, cold = probes["warm"], probes["cold"]
    loaded = ["netrc", "tomllib"]  # the notebook's import line, and the grid's `prewarm:`
    assert [warm[n]["early"] for n in ("x=1", "x=2", "x=3")] == [[], loaded, loaded]
    assert all(p["early"] == [] for p in cold.values())
    reference = cold["x=1"]
    for probe in [*warm.values(), *cold.values()]:
        assert probe["names"] == reference["names"]  # no helper name, no extra history entry
        assert probe["count"] == reference["count"]
        assert probe["leaked"] is False
    assert len({p["pid"] for p in warm.values()}) == 3


def test_keras_globals_do_not_leak_into_the_next_run(tmp_path, write_grid, run_cli):
    cells = [
        ("code", 'run_dir = None\nmode = "set"'),
        (
            "code",
            """
import sys
keras_was_loaded = "keras" in sys.modules
import os
import keras
import cvlab
""",
        ),
        (
            "code",
            """
floatx, policy = keras.config.floatx(), keras.mixed_precision.global_policy().name
leaked = "secret" in globals()
if mode == "set":
    secret = 1
    keras.config.set_floatx("float16")
    keras.mixed_precision.set_global_policy("mixed_float16")
run = cvlab.runs.start(run_dir)
run.log_metrics(
    pid=os.getpid(), warm=int(keras_was_loaded), leaked=int(leaked), floatx=floatx, policy=policy
)
run.finish()
""",
        ),
    ]
    write_notebook(cells, tmp_path / "k.ipynb")
    spec = light_spec(
        notebook="k.ipynb", params={}, grid={"mode": ["set", "check"]}, rank_by={"metric": "pid"}
    )
    code, _, err = run_cli(write_grid(spec))
    assert code == 0, err
    first, second = (_records(run_cli.out)[f"mode={m}"].metrics for m in ("set", "check"))
    assert second["warm"] == 1  # keras came from prewarm: the isolation below is not trivial
    assert second["pid"] != first["pid"] and second["leaked"] == 0
    assert (second["floatx"], second["policy"]) == ("float32", "float32")


KILL_SPARE = """
import os, signal, time
if mode == "killspare":  # find the warm spare (a kernel beside this one) and kill it
    me, parent, victims = os.getpid(), os.getppid(), []
    deadline = time.monotonic() + 60
    while not victims and time.monotonic() < deadline:
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                stat = open(f"/proc/{entry}/stat").read()
                cmdline = open(f"/proc/{entry}/cmdline").read()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            if int(entry) != me and ppid == parent and "ipykernel" in cmdline:
                victims.append(int(entry))
        time.sleep(0.05)
    assert victims, "no warm spare kernel found"
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
"""


def test_a_warm_kernel_killed_before_use_costs_no_run(tmp_path, write_grid, run_cli):
    cells = [*LIGHT_CELLS[:2], ("code", KILL_SPARE), LIGHT_CELLS[2]]
    write_notebook(cells, tmp_path / "light.ipynb")
    code, _, err = run_cli(write_grid(light_spec(grid={"mode": ["killspare", "ok"]})))
    assert code == 0, err
    records = _records(run_cli.out)
    assert {n: r.status for n, r in records.items()} == {"mode=killspare": "ok", "mode=ok": "ok"}
    log = _run_log(run_cli.out, records["mode=ok"])
    assert "cold start" in log and ("died before it was used" in log or "failed to start" in log)
    assert "cold start" in err  # said on the terminal too
    assert _kernel_children() == []


def test_timeout_reaches_a_warm_kernel(light_notebook, write_grid, run_cli, monkeypatch):
    """The watchdog interrupts, then kills, the process group of a pooled kernel too."""
    monkeypatch.setattr("cvlab.grid.execute.INTERRUPT_GRACE_S", 2.0)
    runs = [{"mode": "ok"}, {"mode": "sleep"}, {"mode": "stubborn"}]
    path = write_grid(light_spec(grid={}, runs=runs, params={"sleep_s": 120.0}))
    start = time.monotonic()
    code, _, _ = run_cli(path, "--timeout", "5")
    assert code == 1 and time.monotonic() - start < 90
    records = _records(run_cli.out)
    for name in ("mode=sleep", "mode=stubborn"):
        assert records[name].status == "timeout" and records[name].epochs_completed == 2
        assert "kernel: warm" in _run_log(run_cli.out, records[name])
    assert _kernel_children() == []


def test_each_worker_keeps_a_warm_spare(light_notebook, write_grid, run_cli):
    code, _, err = run_cli(write_grid(light_spec(grid={"x": [1, 2, 3, 4]})), "--workers", "2")
    assert code == 0, err
    records = _records(run_cli.out)
    assert {r.status for r in records.values()} == {"ok"} and len(records) == 4
    logs = [_run_log(run_cli.out, r) for r in records.values()]
    assert sum("kernel: warm" in log for log in logs) >= 2  # runs 3 and 4 take a spare
    assert all(
        (Workspace.at(run_cli.out).run_dir("g", r.run_id) / "run.html").exists()
        for r in records.values()
    )


CRASH_AT_FIRST_HTML = """
import os, signal, sys
from cvlab.grid import html_export
from cvlab.grid.cli import main

def crash(notebook, html):  # the driver dies after a run is recorded, before its HTML
    os.kill(os.getpid(), signal.SIGKILL)

html_export.export_run_html = crash
sys.exit(main(sys.argv[1:]))
"""


def test_next_invocation_makes_the_html_a_killed_driver_left_missing(
    light_notebook, write_grid, tmp_path, capsys
):
    path = write_grid(light_spec(grid={"x": [1, 2, 3]}, params={"mode": "sleep", "sleep_s": 2.5}))
    out = tmp_path / "out"
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(CRASH_AT_FIRST_HTML), str(path)]
        + ["--out", str(out), "--quiet"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(cvlab.__file__).parents[1])},
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    ws = Workspace.at(out)
    before = _records(out)
    done = [r for r in before.values() if r.status == "ok"]
    statuses = {n: r.status for n, r in before.items()}
    assert len(done) == 1, (statuses, proc.stdout, proc.stderr)
    assert not (ws.run_dir("g", done[0].run_id) / "run.html").exists()
    assert (ws.run_dir("g", done[0].run_id) / "run.ipynb").exists()
    time.sleep(2)  # the orphaned kernels notice their parent is gone and exit

    from cvlab.grid.cli import main

    assert main([str(path), "--out", str(out), "--quiet"]) == 0, capsys.readouterr()
    after = _records(out)
    assert {r.status for r in after.values()} == {"ok"} and len(after) == 3
    assert after[done[0].name].started_at == done[0].started_at  # made, not re-run
    for record in after.values():
        assert (ws.run_dir("g", record.run_id) / "run.html").exists()
        assert record.artifacts.get("html") == "run.html"


@pytest.fixture(autouse=True)
def _no_kernel_left_behind():
    yield
    for pid in _kernel_children():  # a failing test must not leave kernels to the next one
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)


@pytest.mark.parametrize("warm", [True, False])
def test_interrupt_while_connecting_leaves_no_kernel_or_channel(tmp_path, monkeypatch, warm):
    """Ctrl-C before nbclient's own clean-up is armed: the engine shuts the kernel down and
    closes the client's channels (left open, their zmq context can hang garbage collection)."""
    import nbclient
    import papermill

    from cvlab.grid.engine import ENGINE
    from cvlab.grid.kernel_pool import KernelSpec, start_warm_kernel
    from cvlab.grid.kernels import ipc_kernel_manager_class

    notebook = write_notebook([("code", "run_dir = None"), ("code", "x = 1")], tmp_path / "n.ipynb")
    seen: dict = {}
    connect = nbclient.NotebookClient.start_new_kernel_client

    def connect_then_interrupt(self):
        seen["kc"], seen["km"] = connect(self), self.km
        raise KeyboardInterrupt

    monkeypatch.setattr(nbclient.NotebookClient, "start_new_kernel_client", connect_then_interrupt)
    spare = start_warm_kernel(KernelSpec.current("python3", tmp_path, ())) if warm else None
    options: dict = (
        {"km": spare.km}
        if spare is not None
        else {"kernel_manager_class": ipc_kernel_manager_class(str(tmp_path))}
    )
    with pytest.raises(KeyboardInterrupt):
        papermill.execute_notebook(
            str(notebook), str(tmp_path / "out.ipynb"), engine_name=ENGINE, progress_bar=False,
            kernel_name="python3", **options,
        )  # fmt: skip
    assert not seen["kc"].channels_running
    if spare is None:
        assert not seen["km"].has_kernel and _kernel_children() == []
    else:  # a warm kernel is its owner's to discard (execute_run does)
        assert _kernel_children() == [spare.pid]
        spare.discard()
