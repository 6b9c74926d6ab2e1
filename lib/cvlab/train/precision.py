"""Mixed precision and XLA, both off unless asked for (grid parameters `mixed_precision`, `xla`),
on each Keras backend (tensorflow, jax, torch).

Call `configure_precision` before building the model: Keras layers take the global dtype policy
when they are made, so a model built earlier keeps float32. Under a mixed policy keep the last
(softmax) layer in float32 (`dtype="float32"`) for a stable loss; `compile` wraps the optimizer
in a `LossScaleOptimizer` by itself for float16 (`auto_scale_loss=True`, the default).
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

from cvlab.backends import gpu_compute_capability, has_gpu
from cvlab.errors import PrecisionError

# The oldest CUDA compute capability that computes in each dtype at speed: tensor cores for
# float16 came with Volta (7.0), bfloat16 with Ampere (8.0); older GPUs emulate them slowly.
FAST_FROM = {"float16": (7, 0), "bfloat16": (8, 0)}

__all__ = ["compile_options", "configure_precision", "has_gpu", "policy_name", "precision_probe"]

# `mixed_precision` values -> Keras's global dtype policy
_POLICIES = {
    False: "float32",
    True: "mixed_float16",  # as before: True means float16
    "float32": "float32",
    "float16": "mixed_float16",
    "bfloat16": "mixed_bfloat16",
    "mixed_float16": "mixed_float16",
    "mixed_bfloat16": "mixed_bfloat16",
}


def policy_name(mixed_precision: bool | str | None) -> str:
    """The Keras dtype policy that `mixed_precision` asks for; PrecisionError for other values."""
    key = False if mixed_precision is None else mixed_precision
    if isinstance(key, str):
        key = key.strip().lower()
    try:
        return _POLICIES[key]
    except (KeyError, TypeError):
        raise PrecisionError(
            f"mixed_precision: expected False, True (= float16), 'float16' or 'bfloat16', got "
            f"{mixed_precision!r}; fix the parameter in the grid file or the notebook"
        ) from None


def precision_probe(dtype: str) -> None:
    """A 3x3 convolution and its gradient's matmul in `dtype` on the running backend: raises
    PrecisionError when the backend or processor cannot compute in it (before any training)."""
    import keras  # lazy: keras
    import numpy as np

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # NumPy 2's __array__(copy=) note
            x = keras.ops.convert_to_tensor(np.ones((1, 5, 5, 2)), dtype=dtype)
            k = keras.ops.convert_to_tensor(np.ones((3, 3, 2, 2)), dtype=dtype)
            y = keras.ops.conv(x, k, padding="same")
            keras.ops.convert_to_numpy(keras.ops.matmul(keras.ops.reshape(y, (25, 2)), k[0, 0]))
    except Exception as exc:  # noqa: BLE001 - any backend's "not implemented for dtype"
        raise PrecisionError(
            f"mixed_precision: the {keras.config.backend()} backend cannot compute in {dtype} "
            f"on this processor ({type(exc).__name__}: {str(exc)[:200]}); use mixed_precision: "
            "False here, or 'bfloat16'/'float16' on a GPU that has it"
        ) from exc


def configure_precision(mixed_precision: bool | str = False) -> str:
    """Set Keras's global dtype policy: `"mixed_float16"` (True or "float16"), `"mixed_bfloat16"`
    ("bfloat16"), else `"float32"`.

    Returns the policy that was in force before, so `configure_precision(...)` can be undone with
    `keras.mixed_precision.set_global_policy(previous)`. Before setting a mixed policy, a tiny
    probe op in its dtype runs on the backend (PrecisionError if it cannot); warns when asked for
    without a GPU: float16/bfloat16 on a CPU is emulated and much slower than float32.
    """
    import keras  # lazy: keras

    policy = policy_name(mixed_precision)
    previous = keras.mixed_precision.global_policy().name
    if policy != "float32":
        dtype = policy.removeprefix("mixed_")
        precision_probe(dtype)
        if not has_gpu():
            warnings.warn(
                f"mixed_precision={mixed_precision!r} without a GPU: {dtype} on a CPU is slow "
                "(often several times slower than float32); use it on a GPU with tensor cores",
                RuntimeWarning,
                stacklevel=2,
            )
        elif (cc := gpu_compute_capability()) is not None and cc < FAST_FROM[dtype]:
            need = ".".join(map(str, FAST_FROM[dtype]))
            warnings.warn(
                f"mixed_precision={mixed_precision!r}: this GPU (compute capability "
                f"{cc[0]}.{cc[1]}) has no fast {dtype} (it needs {need} or later): expect it to "
                "be no faster, or slower, than float32"
                + ("; float16 may be fast here" if dtype == "bfloat16" and cc >= (7, 0) else ""),
                RuntimeWarning,
                stacklevel=2,
            )
    keras.mixed_precision.set_global_policy(policy)
    return previous


def compile_options(
    xla: bool | Literal["auto"] = False, backend: str | None = None
) -> dict[str, Any]:
    """Keyword arguments for `model.compile`: `{"jit_compile": xla}`, i.e. XLA on TensorFlow and
    `torch.compile` on PyTorch. Given `backend="jax"` (as `train_classifier` passes the running
    backend), always `True`: there `jit_compile=False` would run every step eagerly, many times
    slower, so JAX's steps are always XLA-compiled.

    Off by default. Keras's own default is `"auto"`, which turns XLA on whenever a GPU is there
    (and stays eager on torch); pass `"auto"` to keep that behaviour.
    """
    if xla != "auto" and not isinstance(xla, bool):
        raise ValueError(f"xla: expected True, False or 'auto', got {xla!r}")
    if backend == "jax":
        return {"jit_compile": True}
    return {"jit_compile": xla}
