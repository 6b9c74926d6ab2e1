"""Shared fixtures: small notebooks that need no TensorFlow, grid files, and the CLI in-process."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, str(Path(__file__).parent))
from notebook_builder import write_notebook  # noqa: E402

REPO = Path(__file__).resolve().parents[1]

# A light base notebook: it logs through cvlab.runs like a real one but trains nothing.
LIGHT_CELLS = [
    ("md", "# A light test notebook"),
    (
        "code",
        """
run_dir = None
seed = 0
x = 1
lr = 0.1
mode = "ok"
sleep_s = 0.0
""",
    ),
    (
        "code",
        """
import math, time
import cvlab

run = cvlab.runs.start(run_dir)
for epoch in (1, 2):
    run.log_epoch(epoch, 2, loss=1.0 / (epoch * x), val_loss=1.5 / (epoch * x), accuracy=0.5 + 0.1 * epoch)
if mode == "fail":
    raise ValueError(f"bad value x={x}")
if mode == "sleep":
    time.sleep(sleep_s)
if mode == "stubborn":  # ignores the timeout's interrupt: only SIGKILL stops it
    import signal
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    time.sleep(sleep_s)
if mode == "image":  # a run whose output is a picture: the page shows it as a thumbnail
    run.save_image([[0.0, 1.0], [1.0, 0.0]], "pattern", thumbnail=True)
if mode == "divfail":
    run.log_epoch(3, 3, loss=float("nan"))
    raise FloatingPointError("weights are NaN")
if mode == "html":
    run.log_metrics(comment="<img src=x onerror=alert(1)>")
if mode == "nan":
    run.log_epoch(3, 3, loss=float("nan"))
if mode == "caught":  # the notebook handles an error itself and ends the run as failed
    try:
        {}["missing"]
    except KeyError as exc:
        run.fail(exc)
else:
    run.log_metrics(score=x * lr + seed / 1000)
    run.finish()
if mode == "delrec":  # a notebook that removes its own record
    (run.run_dir / "record.json").unlink()
""",
    ),
]


@pytest.fixture(autouse=True)
def _quiet_tf(monkeypatch):
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
    monkeypatch.setenv("PYDEVD_DISABLE_FILE_VALIDATION", "1")


@pytest.fixture
def light_notebook(tmp_path: Path) -> Path:
    return write_notebook(LIGHT_CELLS, tmp_path / "light.ipynb")


@pytest.fixture
def write_grid(tmp_path: Path):
    """Write a grid YAML beside the notebooks in tmp_path; `raw=` writes text as it is."""

    def _write(spec: dict | None = None, *, raw: str | None = None, name: str = "g.yaml") -> Path:
        path = tmp_path / name
        path.write_text(raw if raw is not None else yaml.safe_dump(spec, sort_keys=False))
        return path

    return _write


@pytest.fixture
def run_cli(tmp_path: Path, capsys):
    """Run `run_grid.py` in-process with `--out tmp_path/out`; returns (exit code, stdout, stderr)."""
    from cvlab.grid.cli import main

    out = tmp_path / "out"

    def _run(*args: str) -> tuple[int, str, str]:
        code = main([*map(str, args), "--out", str(out), "--quiet"])
        captured = capsys.readouterr()
        return code, captured.out, captured.err

    _run.out = out
    return _run


def light_spec(**overrides) -> dict:
    spec = {
        "notebook": "light.ipynb",
        "params": {"lr": 0.5},
        "grid": {"x": [1, 2]},
        "rank_by": {"metric": "score", "mode": "max"},
    }
    spec.update(overrides)
    return spec


@pytest.fixture
def in_tmp_project(tmp_path: Path, monkeypatch) -> Path:
    """A working directory that looks like a project root (for interactive runs)."""
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


# ---- headless Chromium for the page and report tests ---------------------------------------

CHROMIUM = Path("/usr/bin/chromium")
# The test machines have no network: without these, Chromium keeps trying to reach Google.
# --disable-dev-shm-usage: containers often have a tiny /dev/shm, which crashes the renderer.
CHROMIUM_FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage",
]  # fmt: skip


def browser_unavailable(chromium: Path = CHROMIUM) -> str | None:
    """Why the browser tests cannot run here, or None when they can."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright is not installed (pip install -e '.[dev]')"
    if not chromium.is_file():
        return f"{chromium} is missing (install it with .ci/install-browser.sh)"
    return None


def require_browser(chromium: Path = CHROMIUM) -> None:
    """Skip without a browser, except on CI (CI=true), where a missing browser is a failure."""
    reason = browser_unavailable(chromium)
    if reason is None:
        return
    if os.environ.get("CI") == "true":
        pytest.fail(f"browser tests cannot run on CI: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    """One headless Chromium for the module, with a fresh profile."""
    require_browser()
    from playwright.sync_api import sync_playwright

    profile = tmp_path_factory.mktemp("chromium-profile")
    with sync_playwright() as pw:
        context = pw.chromium.launch_persistent_context(
            str(profile),
            executable_path=str(CHROMIUM),
            headless=True,
            args=CHROMIUM_FLAGS,
            viewport={"width": 1400, "height": 1000},
        )
        yield context
        context.close()


def small_cnn(input_shape, classes: int):
    """A few-parameter classifier for tests that need a trained model, not a good one."""
    import keras

    keras.utils.set_random_seed(0)
    return keras.Sequential(
        [
            keras.Input(input_shape),
            keras.layers.Conv2D(8, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(classes, activation="softmax"),
        ]
    )
