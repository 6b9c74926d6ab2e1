"""Zoo parity: every registered model gives the same outputs from the same weights on TensorFlow,
JAX and PyTorch.

Each model is built small under TensorFlow (the reference backend), its weights saved to a
`.weights.h5` file beside a fixed input batch; then ONE subprocess per other backend builds every
model again, loads those weights and predicts (this file is also that subprocess's script). The
batch-norm moving statistics are set to random values first, so that the normalisation (epsilon,
inference formula) is compared too, not only an identity.

Tolerance: softmax outputs agree within atol 1e-4 (plus rtol 1e-3). Float32 convolutions and
reductions run in a different order on each backend (oneDNN, XLA, ATen); measured here
(2026-12-02, x86-64) the largest difference over all 17 models was 2e-7 on either backend. 1e-4
leaves room for other processors' kernels, while a real difference (padding, epsilon, layer
order, weight layout) moves these outputs by 1e-2 or more.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from cvlab.models import build, names

from conftest import finish_backend_python, start_backend_python

# Tiny options for each registered model: small inputs, 3 classes, tiny widths where the builder
# takes them (a new registration without a row here fails test_every_model_has_options).
CLASSES = 3
OPTIONS: dict[str, dict] = {
    "alexnet": {"input_shape": (67, 67, 3)},
    "deepergooglenet": {"input_shape": (64, 64, 3)},
    "densenet121": {"input_shape": (32, 32, 3)},
    "efficientnet_b0": {"input_shape": (32, 32, 3)},
    "efficientnet_lite0": {"input_shape": (32, 32, 3), "weights": "none"},
    "fchead": {"base": (4, 4, 8), "units": 16},
    "inception_v3": {"input_shape": (75, 75, 3)},
    "lenet": {"input_shape": (28, 28, 1)},
    "minigooglenet": {"input_shape": (32, 32, 3)},
    "minivggnet": {"input_shape": (32, 32, 3)},
    "mobilenet_v2": {"input_shape": (32, 32, 3)},
    "resnet": {"input_shape": (32, 32, 3), "stages": (1, 1, 1), "filters": (8, 8, 16, 32)},
    "resnet50": {"input_shape": (32, 32, 3)},
    "shallownet": {"input_shape": (32, 32, 3)},
    "vgg16": {"input_shape": (32, 32, 3)},
    "vgg19": {"input_shape": (32, 32, 3)},
    "xception": {"input_shape": (71, 71, 3)},
}
BATCH = 2
ATOL, RTOL = 1e-4, 1e-3
OTHER_BACKENDS = ("jax", "torch")
WORKER_TIMEOUT_S = 840  # under pytest-timeout's 900 s; about 2 min of CPU on CI's 2 cores


def _input_shape(options: dict) -> tuple[int, ...]:
    return tuple(options.get("input_shape") or options["base"])


def _build(name: str, options: dict):
    """The model `name` with its tiny options and `weights="none"`."""
    import keras  # lazy: keras

    keras.utils.set_random_seed(0)
    opts = {"classes": CLASSES, **options}
    if name != "fchead":
        opts.setdefault("weights", "none")
    return build(name, **opts)


def _randomise_moving_stats(model, rng: np.random.Generator) -> None:
    """Batch-norm statistics away from (0, 1), so that inference-mode normalisation is compared."""
    for var in model.non_trainable_variables:
        path = getattr(var, "path", var.name)
        if path.endswith("moving_mean"):
            var.assign(rng.normal(0.0, 0.1, var.shape).astype("float32"))
        elif path.endswith("moving_variance"):
            var.assign(rng.uniform(0.5, 1.5, var.shape).astype("float32"))


def _predict(model, batch: np.ndarray) -> np.ndarray:
    """One eager inference call: compiling each model for one batch (XLA under JAX) costs more."""
    import keras  # lazy: keras

    return keras.ops.convert_to_numpy(model(batch, training=False)).astype("float32")


def worker(folder: Path) -> None:
    """The subprocess: rebuild every model on this backend, load the reference weights, predict."""
    import keras  # lazy: keras

    manifest = json.loads((folder / "manifest.json").read_text())
    results = {}
    for name, options in manifest.items():
        try:
            model = _build(
                name, {k: tuple(v) if isinstance(v, list) else v for k, v in options.items()}
            )
            model.load_weights(folder / f"{name}.weights.h5")
            out = _predict(model, np.load(folder / f"{name}.input.npy"))
            np.save(folder / f"{name}.{keras.config.backend()}.npy", out)
            results[name] = "ok"
        except Exception as exc:  # reported per model, so that one failure does not hide the rest
            results[name] = f"{type(exc).__name__}: {exc}"
        keras.backend.clear_session()
    results["_tensorflow_imported"] = "tensorflow" in sys.modules
    (folder / f"results.{keras.config.backend()}.json").write_text(json.dumps(results))


def test_every_model_has_options():
    assert sorted(OPTIONS) == names(), "add tiny build options for the new model to OPTIONS"


@pytest.fixture(scope="module")
def reference(tmp_path_factory, keras_backend):
    """TensorFlow's outputs and weights for every model, written to one folder; the worker on
    each other backend is started at once, so that they run side by side."""
    if keras_backend != "tensorflow":
        pytest.skip(f"the parity reference is built under TensorFlow, not {keras_backend}")
    import keras  # lazy: keras

    folder = tmp_path_factory.mktemp("parity")
    rng = np.random.default_rng(0)
    outputs = {}
    for name, options in OPTIONS.items():
        model = _build(name, options)
        _randomise_moving_stats(model, rng)
        batch = rng.uniform(0.0, 1.0, (BATCH, *_input_shape(options))).astype("float32")
        np.save(folder / f"{name}.input.npy", batch)
        model.save_weights(folder / f"{name}.weights.h5")
        outputs[name] = _predict(model, batch)
        np.save(folder / f"{name}.tensorflow.npy", outputs[name])  # to compare by hand
        keras.backend.clear_session()
    (folder / "manifest.json").write_text(json.dumps(OPTIONS))
    workers = {b: _start(b, folder) for b in OTHER_BACKENDS}
    yield folder, outputs, workers
    for proc in workers.values():
        if not isinstance(proc, BaseException) and proc.poll() is None:
            proc.kill()
            proc.communicate()


def _start(backend: str, folder: Path):
    """The worker process on `backend`, or why it cannot start (raised again in its test)."""
    try:
        return start_backend_python(backend, [__file__, str(folder)])
    except BaseException as exc:  # pytest's skip/fail outcomes, re-raised by the test
        return exc


@pytest.mark.parametrize("backend", OTHER_BACKENDS)
def test_zoo_same_outputs_on_each_backend(reference, backend):
    folder, expected, workers = reference
    if isinstance(workers[backend], BaseException):
        raise workers[backend]
    finish_backend_python(workers[backend], backend, timeout=WORKER_TIMEOUT_S)
    results = json.loads((folder / f"results.{backend}.json").read_text())
    assert results.pop("_tensorflow_imported") is False, (
        f"building the zoo on {backend} imported tensorflow"
    )
    failed = {name: why for name, why in results.items() if why != "ok"}
    assert not failed, f"models that do not build/load/predict on {backend}: {failed}"
    differ = {}
    for name, want in expected.items():
        got = np.load(folder / f"{name}.{backend}.npy")
        assert got.shape == want.shape, (
            f"{name}: shape {got.shape} on {backend}, {want.shape} on TF"
        )
        if not np.allclose(got, want, atol=ATOL, rtol=RTOL):
            differ[name] = float(np.max(np.abs(got - want)))
    assert not differ, (
        f"outputs on {backend} differ from TensorFlow's beyond atol {ATOL} (max abs difference): "
        f"{differ}"
    )


KERNEL_CELLS = [
    ("code", "run_dir = None\nx = 1\n"),
    (
        "code",
        "import os, sys, keras, cvlab\n"
        "run = cvlab.runs.start(run_dir)\n"
        "run.log_params(env_backend=os.environ.get('KERAS_BACKEND', ''),"
        " keras_backend=keras.config.backend(), tensorflow_loaded='tensorflow' in sys.modules)\n"
        "run.log_metrics(score=1.0)\n"
        "run.finish()\n",
    ),
]


@pytest.mark.backends
def test_grid_kernels_run_on_the_suites_backend(tmp_path, keras_backend, write_grid):
    """KERAS_BACKEND reaches every papermill kernel a grid starts (they inherit the environment),
    and off TensorFlow a kernel never loads it."""
    from cvlab.grid.cli import main
    from cvlab.runs import RunRecord

    from notebook_builder import write_notebook

    write_notebook(KERNEL_CELLS, tmp_path / "kb.ipynb")
    grid = write_grid(
        {"notebook": "kb.ipynb", "grid": {"x": [1]}, "rank_by": {"metric": "score", "mode": "max"}}
    )
    assert main([str(grid), "--out", str(tmp_path / "out"), "--quiet"]) == 0
    (record,) = [RunRecord.load(p.parent) for p in tmp_path.glob("out/experiments/*/*/record.json")]
    assert record.params["keras_backend"] == keras_backend
    if keras_backend != "tensorflow":
        assert record.params["tensorflow_loaded"] is False


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    worker(Path(sys.argv[1]))
