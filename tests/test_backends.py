"""Keras backends: chosen (--backend, `backend:`, $KERAS_BACKEND), checked before any kernel,
given to every kernel (cold and warm), recorded with the device and precision, shown on the page;
mixed precision (float16, bfloat16) and XLA on each backend."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest

from cvlab import backends
from cvlab.backends import BACKENDS, backend_env, check_backend, gpu_warning
from cvlab.errors import BackendNotInstalledError, PrecisionError, UnknownBackendError
from cvlab.grid.expand import RunPlan, expand, notebook_digest, run_id_for
from cvlab.grid.spec import load_grid_spec
from cvlab.runs.record import RunRecord

from notebook_builder import write_notebook

REPO = Path(__file__).resolve().parents[1]

# A notebook that logs which backend its kernel's Keras runs, and whether TensorFlow came along.
BACKEND_CELLS = [
    ("code", "run_dir = None\nx = 1\n"),
    (
        "code",
        """
import os, sys
import keras
import cvlab

run = cvlab.runs.start(run_dir)
run.log_epoch(1, 1, loss=0.5)
run.log_metrics(
    score=x,
    keras_backend=keras.config.backend(),
    env_backend=os.environ.get("KERAS_BACKEND", ""),
    tensorflow_loaded="tensorflow" in sys.modules,
)
run.finish()
""",
    ),
]


def _grid(tmp_path: Path, write_grid, **changes) -> Path:
    write_notebook(BACKEND_CELLS, tmp_path / "nb.ipynb")
    spec = {
        "notebook": "nb.ipynb",
        "grid": {"x": [1, 2]},
        "rank_by": {"metric": "score", "mode": "max"},
        **changes,
    }
    return write_grid(spec)


def _no_runs(out: Path) -> bool:
    return not list((out / "experiments").glob("*/*/record.json")) if out.exists() else True


# -- choosing and checking ------------------------------------------------------------------


def test_unknown_backend_names_the_three_and_the_closest():
    with pytest.raises(UnknownBackendError) as info:
        check_backend("jaxx")
    message = str(info.value)
    assert all(name in message for name in BACKENDS)
    assert "Did you mean 'jax'" in message
    assert check_backend(" JAX ") == "jax"


def test_not_installed_backend_names_its_extra(monkeypatch):
    real = backends.importlib.util.find_spec
    monkeypatch.setattr(
        backends.importlib.util,
        "find_spec",
        lambda name, *a: None if name in {"torch", "jax"} else real(name, *a),
    )
    with pytest.raises(BackendNotInstalledError, match=r"\.\[torch\]"):
        check_backend("torch")
    with pytest.raises(BackendNotInstalledError, match=r"\.\[jax\].*\.\[jax-cuda\]"):
        check_backend("jax")


def test_cli_unknown_backend_exits_2_before_any_kernel(tmp_path, write_grid, run_cli):
    grid = _grid(tmp_path, write_grid)
    code, _, err = run_cli(grid, "--backend", "pytorch")
    assert code == 2
    assert "--backend" in err and all(name in err for name in BACKENDS)
    assert "Did you mean 'torch'" in err and "Nothing was run" in err
    assert _no_runs(run_cli.out)

    grid = _grid(tmp_path, write_grid, backend="tensorfloww")
    code, _, err = run_cli(grid)
    assert code == 2 and "backend" in err and "'tensorflow'" in err
    assert _no_runs(run_cli.out)


def test_cli_backend_not_installed_exits_2_naming_the_extra(
    tmp_path, write_grid, run_cli, monkeypatch
):
    real = backends.importlib.util.find_spec
    monkeypatch.setattr(
        backends.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "jaxlib" else real(name, *a),
    )
    code, _, err = run_cli(_grid(tmp_path, write_grid, backend="jax"))
    assert code == 2
    assert "pip install -e '.[jax]'" in err and "not installed" in err
    assert _no_runs(run_cli.out)


def test_run_notebook_checks_the_backend_first(tmp_path):
    import cvlab

    notebook = write_notebook(BACKEND_CELLS, tmp_path / "nb.ipynb")
    with pytest.raises(UnknownBackendError, match="tensorflow, jax, torch"):
        cvlab.run_notebook(notebook, {"x": 1}, tmp_path / "out", backend="mxnet")
    assert _no_runs(tmp_path / "out")


def test_run_ids_change_only_off_the_default_backend(tmp_path, write_grid, monkeypatch):
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    grid = load_grid_spec(_grid(tmp_path, write_grid))
    digest = notebook_digest(grid.notebook)
    default = expand(grid)
    assert [p.run_id for p in default] == [run_id_for(digest, p.params) for p in default]
    assert [p.run_id for p in expand(grid, backend="tensorflow")] == [p.run_id for p in default]
    jax = expand(grid, backend="jax")
    assert {p.backend for p in jax} == {"jax"}
    assert not {p.run_id for p in jax} & {p.run_id for p in default}
    assert {p.run_id for p in jax}.isdisjoint(p.run_id for p in expand(grid, backend="torch"))


def test_warm_kernel_for_another_backend_never_serves(tmp_path):
    from cvlab.grid.scheduler import _kernel_spec

    plan = RunPlan("a", "a", "g", tmp_path / "nb.ipynb", {}, backend="tensorflow")
    spec_tf = _kernel_spec(plan, ("import keras",))
    spec_jax = _kernel_spec(RunPlan("a", "a", "g", plan.notebook, {}, backend="jax"), ())
    assert ("KERAS_BACKEND", "tensorflow") in spec_tf.env
    assert ("KERAS_BACKEND", "jax") in spec_jax.env
    assert spec_tf != _kernel_spec(
        RunPlan("a", "a", "g", plan.notebook, {}, backend="jax"), ("import keras",)
    )
    assert backend_env("torch") == {"KERAS_BACKEND": "torch"}


def test_gpu_warning_names_what_to_install(monkeypatch):
    monkeypatch.setattr(backends, "nvidia_gpu_present", lambda: True)
    monkeypatch.setattr(backends, "backend_sees_gpu", lambda name: False)
    assert "'.[gpu]'" in gpu_warning("tensorflow")
    assert "'.[jax-cuda]'" in gpu_warning("jax")
    assert "download.pytorch.org" in gpu_warning("torch")
    monkeypatch.setattr(backends, "backend_sees_gpu", lambda name: True)
    assert gpu_warning("jax") is None
    monkeypatch.setattr(backends, "nvidia_gpu_present", lambda: False)
    monkeypatch.setattr(backends, "backend_sees_gpu", lambda name: False)
    assert gpu_warning("tensorflow") is None


def test_backend_sees_gpu_reads_the_installed_builds(monkeypatch):
    versions = {"torch": "2.13.0+cpu", "tensorflow-cpu": "2.21.0"}
    monkeypatch.setattr(backends, "_dist_version", versions.get)
    assert not backends.backend_sees_gpu("torch")
    assert not backends.backend_sees_gpu("tensorflow")
    assert not backends.backend_sees_gpu("jax")
    versions.update({"torch": "2.13.0", "jax-cuda12-plugin": "0.10.2"})
    versions.update({"tensorflow": "2.21.0", "nvidia-cudnn-cu12": "9.3"})
    assert backends.backend_sees_gpu("torch") and backends.backend_sees_gpu("jax")
    assert backends.backend_sees_gpu("tensorflow")


# -- the kernel gets it; the record and the page show it --------------------------------------


def test_backend_reaches_warm_and_cold_kernels_and_the_record(
    tmp_path, write_grid, run_cli, monkeypatch
):
    """Two runs under --backend jax: the first kernel cold, the second the warm spare started
    with KERAS_BACKEND=jax; both compute on JAX, without TensorFlow; record and page say so.
    The GPU warning (probes monkeypatched) is printed at grid start."""
    monkeypatch.delenv("KERAS_BACKEND", raising=False)
    monkeypatch.setattr(backends, "nvidia_gpu_present", lambda: True)
    monkeypatch.setattr(backends, "backend_sees_gpu", lambda name: False)
    grid = _grid(tmp_path, write_grid, prewarm=["keras"])
    code, stdout, err = run_cli(grid, "--backend", "jax")
    assert code == 0, err
    assert "(Keras backend jax)" in stdout
    assert "NVIDIA GPU" in err and "'.[jax-cuda]'" in err
    out = run_cli.out
    records = [RunRecord.load(p.parent) for p in out.glob("experiments/g/*/record.json")]
    assert len(records) == 2
    for record in records:
        assert record.status == "ok"
        assert record.metrics["keras_backend"] == "jax" == record.metrics["env_backend"]
        assert record.metrics["tensorflow_loaded"] is False
        env = record.environment
        assert (env["backend"], env["device"], env["precision"]) == ("jax", "CPU", "float32")
        assert env["jax"] and env["jaxlib"] and env["keras"]
    logs = "".join(p.read_text() for p in out.glob("logs/g/*.log"))
    assert "kernel: warm" in logs  # the second run had the spare made for jax
    page = (out / "experiments" / "index.html").read_text()
    assert "backend · device · precision" in page and "jax · CPU · float32" in page
    data = page.split('type="application/json"', 1)[1]
    assert '"backend":"jax"' in data and '"device":"CPU"' in data

    # The same grid under the default backend: other ids, so nothing is skipped as done.
    code, stdout, err = run_cli(grid, "--dry-run")
    assert code == 0, err
    assert "2 runs, 2 to run" in stdout and "Keras backend tensorflow" in stdout
    code, stdout, err = run_cli(grid, "--dry-run", "--backend", "jax")
    assert code == 0 and "2 runs, 0 to run" in stdout


# -- precision and XLA ------------------------------------------------------------------------


def test_mixed_precision_values_and_refusals(monkeypatch):
    import keras

    from cvlab.train import precision
    from cvlab.train.precision import configure_precision, policy_name

    assert policy_name(True) == policy_name("float16") == "mixed_float16"
    assert policy_name("bfloat16") == "mixed_bfloat16"
    assert policy_name(False) == policy_name(None) == "float32"
    with pytest.raises(PrecisionError, match="'float16' or 'bfloat16'"):
        policy_name("float64")

    before = keras.mixed_precision.global_policy().name
    monkeypatch.setattr(precision, "has_gpu", lambda: False)
    try:
        with pytest.warns(RuntimeWarning, match="bfloat16 on a CPU is slow"):
            configure_precision("bfloat16")
        assert keras.layers.Dense(2).compute_dtype == "bfloat16"

        def no_half(*args, **kwargs):
            raise NotImplementedError("\"slow_conv2d_cpu\" not implemented for 'Half'")

        keras.mixed_precision.set_global_policy("float32")
        monkeypatch.setattr(keras.ops, "conv", no_half)
        cannot = f"{keras.config.backend()} backend cannot compute in float16"
        with pytest.raises(PrecisionError, match=cannot):
            configure_precision("float16")
        assert keras.mixed_precision.global_policy().name == "float32"  # refused: unchanged
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            configure_precision(False)  # float32 needs no probe
    finally:
        keras.mixed_precision.set_global_policy(before)


FIT_SCRIPT = textwrap.dedent(
    """
    import json, sys, warnings
    import numpy as np
    import keras
    from cvlab.train.precision import compile_options, configure_precision
    warnings.simplefilter("ignore")
    out = {}
    x = np.random.default_rng(0).random((16, 8, 8, 3)).astype("float32")
    y = np.arange(16) % 2
    for mode, xla in [("float16", False), ("bfloat16", False), (False, True)]:
        np.random.seed(0)  # not keras.utils.set_random_seed: it imports TensorFlow when installed
        configure_precision(mode)
        model = keras.Sequential([
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(2, activation="softmax", dtype="float32"),
        ])
        options = compile_options(xla, backend=keras.config.backend())
        model.compile("sgd", "sparse_categorical_crossentropy", **options)
        loss = model.fit(x, y, epochs=1, batch_size=8, verbose=0).history["loss"][-1]
        out[str(mode) + ("+xla" if xla else "")] = {
            "policy": keras.mixed_precision.global_policy().name,
            "conv_dtype": model.layers[0].compute_dtype,
            "jit": model.jit_compile,
            "loss": float(loss),
        }
    from cvlab.backends import describe_device, gpu_compute_capability
    out["device"] = [describe_device(), gpu_compute_capability()]
    out["tensorflow_loaded"] = "tensorflow" in sys.modules
    print("RESULT" + json.dumps(out))
    """
)


@pytest.mark.parametrize("backend", ["tensorflow", "jax", "torch"])
def test_mixed_precision_and_xla_fit_on_each_backend(backend):
    """A tiny conv net fits one epoch in float16, bfloat16, and (tensorflow, jax) with XLA."""
    script = FIT_SCRIPT
    if backend == "torch":  # torch.compile on a CPU needs a C compiler and minutes: not here
        script = script.replace("(False, True)]", "(False, False)]")
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO / "lib"), env.get("PYTHONPATH", "")])
    proc = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.split("RESULT", 1)[1])
    assert result["float16"]["policy"] == "mixed_float16"
    assert result["float16"]["conv_dtype"] == "float16"
    assert result["bfloat16"]["policy"] == "mixed_bfloat16"
    assert result["bfloat16"]["conv_dtype"] == "bfloat16"
    for run in result.values():
        if isinstance(run, dict):
            assert run["loss"] == run["loss"] and run["loss"] < 10  # finite, trained
    if backend == "jax":
        assert all(r["jit"] is True for r in result.values() if isinstance(r, dict))
    if backend == "tensorflow":
        assert result["False+xla"]["jit"] is True and result["float16"]["jit"] is False
    assert result["device"] == ["CPU", None]  # this machine has no GPU
    if backend != "tensorflow":
        assert result["tensorflow_loaded"] is False


def test_grid_takes_precision_names_for_a_bool_default(tmp_path, write_grid):
    from cvlab.errors import GridSpecError

    write_notebook(
        [("code", "run_dir = None\nmixed_precision = False\n"), ("code", "pass")],
        tmp_path / "mp.ipynb",
    )
    spec = {"notebook": "mp.ipynb", "rank_by": {"metric": "score"}}
    ok = load_grid_spec(write_grid({**spec, "grid": {"mixed_precision": [False, "bfloat16"]}}))
    assert ok.spec.grid["mixed_precision"] == [False, "bfloat16"]
    with pytest.raises(GridSpecError, match="float64.*is no precision") as info:
        load_grid_spec(write_grid({**spec, "params": {"mixed_precision": "float64"}}))
    assert "params.mixed_precision" in str(info.value)


def test_page_hardware_of_old_and_new_records():
    from cvlab.report.page_data import run_hardware

    old = RunRecord(run_id="a", environment={"tensorflow": "2.21.0"})  # before backends existed
    assert run_hardware(old)["hardware"] == "tensorflow"
    new = RunRecord(
        run_id="b",
        environment={"backend": "jax", "device": "NVIDIA H200", "precision": "mixed_bfloat16"},
    )
    assert run_hardware(new) == {
        "backend": "jax",
        "device": "NVIDIA H200",
        "precision": "mixed_bfloat16",
        "hardware": "jax · NVIDIA H200 · mixed_bfloat16",
    }


def test_mixed_precision_warns_on_a_gpu_without_fast_dtype(monkeypatch):
    import keras

    from cvlab.train import precision

    before = keras.mixed_precision.global_policy().name
    monkeypatch.setattr(precision, "has_gpu", lambda: True)
    monkeypatch.setattr(precision, "gpu_compute_capability", lambda: (7, 5))  # a T4
    try:
        with pytest.warns(RuntimeWarning, match=r"compute capability 7\.5.*float16 may be fast"):
            precision.configure_precision("bfloat16")
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            precision.configure_precision("float16")  # Turing has float16 tensor cores
            monkeypatch.setattr(precision, "gpu_compute_capability", lambda: (9, 0))
            precision.configure_precision("bfloat16")  # an H100/H200
        assert keras.mixed_precision.global_policy().name == "mixed_bfloat16"
    finally:
        keras.mixed_precision.set_global_policy(before)


def test_the_driver_checks_backends_without_importing_a_framework():
    code = (
        "import sys\n"
        "from cvlab.backends import check_backend, gpu_warning\n"
        "import cvlab.grid.runner\n"
        "for name in ('tensorflow', 'jax', 'torch'):\n"
        "    check_backend(name); gpu_warning(name)\n"
        "print(sorted(m for m in ('keras', 'tensorflow', 'jax', 'torch') if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO / "lib")}
    proc = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert proc.stdout.strip() == "[]"


def test_compile_options_per_backend():
    from cvlab.train.precision import compile_options

    assert compile_options(False, backend="jax") == {"jit_compile": True}  # never eager on JAX
    assert compile_options(False, backend="torch") == {"jit_compile": False}
    assert compile_options(True, backend="torch") == {"jit_compile": True}  # torch.compile
    assert compile_options(True, backend="tensorflow") == {"jit_compile": True}  # XLA
    assert compile_options(False) == {"jit_compile": False}  # as given, without a backend
