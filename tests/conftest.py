"""Shared fixtures: small notebooks that need no TensorFlow, grid files, the CLI in-process, and
the Keras backend the suite runs on (`make test` runs the `backends`-marked core under each)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
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


# ---- the Keras backend the suite runs on ----------------------------------------------------
# `make test` runs the whole suite under TensorFlow, then the tests marked `backends` again under
# KERAS_BACKEND=jax and KERAS_BACKEND=torch. A `backends` test that truly cannot run on one
# backend says so with `@pytest.mark.backends(skip={"torch": "why, and which backend works"})`:
# it is then skipped there with that reason, never silently.
# Under JAX or PyTorch, TensorFlow is made unimportable (tests/no_tensorflow/sitecustomize.py, on
# PYTHONPATH for this process and every subprocess and papermill kernel it starts): the GPU
# machines issue 19 targets have none, and cvlab paths used there must not need it. A test that
# needs TensorFlow anyway is marked `@pytest.mark.backends(tensorflow=True)`.

BACKENDS = ("tensorflow", "jax", "torch")
BACKEND_MODULES = {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}
NO_TENSORFLOW = Path(__file__).parent / "no_tensorflow"
ALLOW_TF = "CVLAB_TEST_ALLOW_TENSORFLOW"
SUITE_BACKEND = os.environ.get("KERAS_BACKEND", "tensorflow")


def _block_tensorflow() -> None:
    """Here and in every child process: `import tensorflow` fails (see NO_TENSORFLOW)."""
    os.environ["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(NO_TENSORFLOW), os.environ.get("PYTHONPATH", "")) if p
    )
    spec = importlib.util.spec_from_file_location(
        "_cvlab_no_tensorflow", NO_TENSORFLOW / "sitecustomize.py"
    )
    spec.loader.exec_module(importlib.util.module_from_spec(spec))


if SUITE_BACKEND != "tensorflow" and not os.environ.get(ALLOW_TF):
    _block_tensorflow()


def running_backend() -> str:
    """The backend Keras runs on in this process (KERAS_BACKEND, else keras.json, else tensorflow)."""
    import keras  # lazy: keras

    return keras.config.backend()


def backend_installed(backend: str) -> bool:
    return importlib.util.find_spec(BACKEND_MODULES[backend]) is not None


def pytest_ignore_collect(collection_path: Path, config):
    """Under `-m backends` on JAX or PyTorch, test files with no `backends` test are not even
    imported: some import tensorflow at the top."""
    if SUITE_BACKEND == "tensorflow" or "backends" not in (config.option.markexpr or ""):
        return None
    if collection_path.suffix == ".py" and collection_path.name.startswith("test_"):
        try:
            return None if "backends" in collection_path.read_text(encoding="utf-8") else True
        except OSError:
            return None
    return None


def pytest_collection_modifyitems(config, items):
    for item in items:
        marker = item.get_closest_marker("backends")
        if marker is None:
            continue
        skips = marker.kwargs.get("skip", {})
        unknown = set(skips) - set(BACKENDS)
        if unknown:
            raise pytest.UsageError(
                f"{item.nodeid}: backends(skip=...) names {sorted(unknown)}; "
                f"the backends are {', '.join(BACKENDS)}"
            )
        if SUITE_BACKEND in skips:
            reason = f"cannot run on {SUITE_BACKEND}: {skips[SUITE_BACKEND]}"
            item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture(scope="session")
def keras_backend() -> str:
    """The backend Keras runs on in this test process: "tensorflow", "jax" or "torch"."""
    return running_backend()


@pytest.fixture(autouse=True)
def _tensorflow_where_allowed(request, monkeypatch):
    """`backends(tensorflow=True)` lets a test import TensorFlow under JAX or PyTorch."""
    marker = request.node.get_closest_marker("backends")
    if marker is not None and marker.kwargs.get("tensorflow"):
        monkeypatch.setenv(ALLOW_TF, "1")


def backend_env(backend: str, **extra: str) -> dict[str, str]:
    """This process's environment for a subprocess on `backend` (TensorFlow blocked off it)."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", **extra}
    paths = [
        p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p and p != str(NO_TENSORFLOW)
    ]
    if backend != "tensorflow" and not env.get(ALLOW_TF):
        paths.insert(0, str(NO_TENSORFLOW))
    env["PYTHONPATH"] = os.pathsep.join([*paths, str(REPO / "lib")])
    return env


def require_backend(backend: str) -> None:
    """Skip when `backend`'s package is not installed here, except on CI, where it fails."""
    if backend_installed(backend):
        return
    why = f"{BACKEND_MODULES[backend]} is not installed (the {backend} backend)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"cannot check the {backend} backend on CI: {why}", pytrace=False)
    pytest.skip(why)


def start_backend_python(backend: str, args, *, cwd: Path | None = None) -> subprocess.Popen:
    """`python ARGS...` started under KERAS_BACKEND=`backend` (output to pipes)."""
    require_backend(backend)
    return subprocess.Popen(
        [sys.executable, *map(str, args)],
        env=backend_env(backend),
        cwd=cwd or REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish_backend_python(proc: subprocess.Popen, backend: str, *, timeout: float = 300):
    """Wait for a process from start_backend_python; the test fails with its output if it failed."""
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"KERAS_BACKEND={backend} {proc.args[1:]} ran past {timeout}s:\n{err[-3000:]}")
    if proc.returncode != 0:
        pytest.fail(
            f"KERAS_BACKEND={backend} python {' '.join(proc.args[1:])} exited "
            f"{proc.returncode}:\n{out[-3000:]}\n{err[-3000:]}",
            pytrace=False,
        )
    return out, err


@pytest.fixture
def backend_python():
    """Run `python ARGS...` under another Keras backend and wait; fails with its output when it
    fails. A backend that is not installed skips the test here, and fails it on CI (CI=true)."""

    def _run(backend: str, args, *, timeout: float = 300, cwd: Path | None = None):
        return finish_backend_python(
            start_backend_python(backend, args, cwd=cwd), backend, timeout=timeout
        )

    return _run
