"""DeepDream, style transfer and the DCGAN give the same numbers on TensorFlow, JAX and PyTorch,
and need no TensorFlow under JAX or PyTorch.

One tiny deterministic case per chapter (`cases()`): small networks whose weights come from a
seeded NumPy generator (so every backend starts from the same ones), 2-3 steps each. TensorFlow
runs them in this process (when it is this process's backend); JAX and PyTorch each in a fresh
subprocess with `KERAS_BACKEND` set, which reports its numbers as JSON.

Tolerances (float32 on CPU; the backends' convolution kernels sum in different orders):
losses rtol 1e-4 (style transfer's L-BFGS rounds 1e-3: its line search amplifies the round-off),
gradients atol 1e-4 of their largest magnitude, DeepDream's pixels (0-255) atol 1e-2, the DCGAN's
generated images ([-1, 1]) atol 1e-4."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

HERE = Path(__file__).resolve().parent
LIB = HERE.parent / "lib"
OTHERS = ("jax", "torch")
RTOL = {"loss": 1e-4, "lbfgs": 1e-3}
GRAD_ATOL = 1e-4  # relative to the gradient's largest magnitude
DREAM_ATOL = 1e-2  # 0-255 pixels
GAN_ATOL = 1e-4  # tanh outputs in [-1, 1]


def _set_weights(model, seed: int, scale: float) -> None:
    """Every weight from one seeded NumPy generator: the same model on every backend."""
    rng = np.random.default_rng(seed)
    model.set_weights(
        [
            rng.normal(0.0, scale, w.shape).astype("float32") if w.ndim > 1 else w
            for w in model.get_weights()
        ]
    )


def _convnet(widths: tuple[int, ...]):
    import keras

    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    for i, width in enumerate(widths, start=1):
        strides = 1 if i == 1 else 2
        x = keras.layers.Conv2D(width, 3, strides=strides, padding="same", name=f"c{i}")(x)
        x = keras.layers.Activation("relu", name=f"r{i}")(x)
    model = keras.Model(inputs, x)
    _set_weights(model, 0, 0.3)
    return model


def dream_case() -> dict:
    from cvlab.generative.deepdream import DeepDream
    from cvlab.generative.features import from_model

    net = from_model(_convnet((8, 8)), ["r1", "r2"], name="small")
    dreamer = DeepDream(net, {"r1": 1.0, "r2": 0.5})
    photo = np.random.default_rng(1).uniform(60, 200, (20, 24, 3)).astype("float32")
    image, steps, _ = dreamer.ascend(
        photo, 3, 0.01, jitter=2, rng=np.random.default_rng(2), max_loss=1e9
    )
    # one octave at the photo's size: the compiled functions above serve again (JAX compiles
    # once per image size, the costly part of this case)
    result = dreamer.run(photo, octaves=1, iterations=2, step=0.01, jitter=1, seed=3)
    return {
        "ascend_image": image.tolist(),
        "steps": steps,
        "losses": [h["loss"] for h in result.history],
        "activations": dreamer.activations(photo),
    }


def style_case() -> dict:
    import keras

    from cvlab.generative.features import from_model
    from cvlab.generative.style_transfer import Settings, StyleTransfer

    net = from_model(_convnet((8, 8, 16)), ["r1", "r2", "r3"], name="small")
    settings = Settings("small", "r3", ["r1", "r2"], 1.0, 1e4, 1e-4, "layer", True)
    rng = np.random.default_rng(4)
    content = rng.uniform(0, 255, (16, 20, 3))
    style = rng.uniform(0, 255, (16, 20, 3))  # the photo's size: no resize in this case
    transfer = StyleTransfer(net, content, style, settings)
    image = transfer.initial_image("noise", seed=5)
    terms, grads = transfer._loss_and_grads(image[None])
    out = {
        "terms": {k: float(v) for k, v in terms.items()},
        "grads": keras.ops.convert_to_numpy(grads)[0].tolist(),
    }
    for optimizer in ("lbfgs", "adam"):
        result = transfer.run(2, optimizer=optimizer, evals_per_iteration=3, seed=5)
        out[optimizer] = [h["loss"] for h in result.history]
    return out


def gan_case() -> dict:
    from cvlab.generative import dcgan

    gen = dcgan.build_generator(dim=4, depth=8, latent_dim=16, hidden=32, filters=8)
    disc = dcgan.build_discriminator(width=16, height=16, filters=(8, 16), hidden=32)
    _set_weights(gen, 6, 0.1)
    _set_weights(disc, 7, 0.1)
    trainer = dcgan.GANTrainer(gen, disc, label_noise=0.1, seed=8)
    real = np.random.default_rng(9).uniform(-1, 1, (8, 16, 16, 1)).astype("float32")
    steps = [{k: float(v) for k, v in trainer.train_step(real).items()} for _ in range(3)]
    return {
        "steps": steps,
        "images": trainer.generate(trainer.make_noise(4, 0)).tolist(),
        "iterations": int(trainer.g_optimizer.iterations),
    }


def cases() -> dict:
    """All three cases on this process's backend, and whether TensorFlow was imported."""
    import keras

    out = {"dream": dream_case(), "style": style_case(), "gan": gan_case()}
    out["backend"] = keras.backend.backend()
    out["tensorflow_imported"] = "tensorflow" in sys.modules
    return out


def _in_subprocess(backend: str) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env["PYTHONPATH"] = os.pathsep.join([str(LIB), env.get("PYTHONPATH", "")])
    code = (
        "import json, sys; sys.path.insert(0, sys.argv[1]); "
        "import test_generative_backends as t; print('RESULT' + json.dumps(t.cases()))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(HERE)],
        env=env, capture_output=True, text=True, timeout=600, cwd=HERE,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    (line,) = [x for x in done.stdout.splitlines() if x.startswith("RESULT")]
    return json.loads(line[len("RESULT") :])


@pytest.fixture(scope="module")
def results() -> dict[str, dict]:
    """{backend: cases()}: TensorFlow in-process where it is this process's backend, JAX and
    PyTorch always in fresh subprocesses (what they import is then theirs alone)."""
    import keras

    found = {}
    if keras.backend.backend() == "tensorflow":
        found["tensorflow"] = json.loads(json.dumps(cases()))
    for backend in ("tensorflow", *OTHERS):
        if backend not in found and importlib.util.find_spec(backend) is not None:
            found[backend] = _in_subprocess(backend)
    return found


def _pairs(results: dict[str, dict]):
    """(reference, other) pairs: TensorFlow is the reference where it is installed."""
    reference = "tensorflow" if "tensorflow" in results else sorted(results)[0]
    others = [b for b in results if b != reference]
    if not others:
        pytest.skip(f"only {reference} is installed: nothing to compare")
    return [(results[reference], results[b]) for b in others]


def test_deepdream_is_the_same_on_every_backend(results):
    for ref, other in _pairs(results):
        a, b = ref["dream"], other["dream"]
        assert a["steps"] == b["steps"] == 3
        np.testing.assert_allclose(b["losses"], a["losses"], rtol=RTOL["loss"])
        for layer, value in a["activations"].items():
            assert b["activations"][layer] == pytest.approx(value, rel=RTOL["loss"])
        np.testing.assert_allclose(b["ascend_image"], a["ascend_image"], atol=DREAM_ATOL)
        assert np.ptp(np.asarray(a["ascend_image"])) > 0  # it is a picture, not a constant


def test_style_transfer_is_the_same_on_every_backend(results):
    for ref, other in _pairs(results):
        a, b = ref["style"], other["style"]
        for key, value in a["terms"].items():
            assert b["terms"][key] == pytest.approx(value, rel=RTOL["loss"]), key
        grads_a, grads_b = np.asarray(a["grads"]), np.asarray(b["grads"])
        scale = np.abs(grads_a).max()
        assert scale > 0
        np.testing.assert_allclose(grads_b, grads_a, atol=GRAD_ATOL * scale)
        np.testing.assert_allclose(b["adam"], a["adam"], rtol=RTOL["loss"])
        np.testing.assert_allclose(b["lbfgs"], a["lbfgs"], rtol=RTOL["lbfgs"])
        assert a["lbfgs"][-1] < a["lbfgs"][0] and a["adam"][-1] < a["adam"][0]


def test_dcgan_is_the_same_on_every_backend(results):
    for ref, other in _pairs(results):
        a, b = ref["gan"], other["gan"]
        assert a["iterations"] == b["iterations"] == 3
        for step_a, step_b in zip(a["steps"], b["steps"], strict=True):
            for key, value in step_a.items():
                assert step_b[key] == pytest.approx(value, rel=RTOL["loss"]), key
        np.testing.assert_allclose(b["images"], a["images"], atol=GAN_ATOL)


def test_no_tensorflow_under_jax_or_torch(results):
    checked = [b for b in OTHERS if b in results]
    if not checked:
        pytest.skip("neither jax nor torch is installed")
    for backend in checked:
        assert results[backend]["backend"] == backend
        assert not results[backend]["tensorflow_imported"], f"{backend} imported tensorflow"
