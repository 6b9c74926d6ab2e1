"""Mixed precision and XLA, both off unless asked for (grid parameters `mixed_precision`, `xla`).

Call `configure_precision` before building the model: Keras layers take the global dtype policy
when they are made, so a model built earlier keeps float32. Under `mixed_float16` keep the last
(softmax) layer in float32 (`dtype="float32"`) for a stable loss; `compile` wraps the optimizer
in a `LossScaleOptimizer` by itself (`auto_scale_loss=True`, the default).
"""

from __future__ import annotations

import warnings
from typing import Any, Literal

__all__ = ["compile_options", "configure_precision", "has_gpu"]


def has_gpu() -> bool:
    """Whether the Keras backend sees a GPU."""
    import keras

    if keras.config.backend() == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    if keras.config.backend() == "torch":
        import torch

        return bool(torch.cuda.is_available())
    if keras.config.backend() == "jax":
        import jax

        return any(d.platform == "gpu" for d in jax.devices())
    return False


def configure_precision(mixed_precision: bool = False) -> str:
    """Set Keras's global dtype policy: `"mixed_float16"` when asked, else `"float32"`.

    Returns the policy that was in force before, so `configure_precision(...)` can be undone with
    `keras.mixed_precision.set_global_policy(previous)`. Warns when mixed precision is asked for
    without a GPU: float16 on a CPU is emulated and much slower than float32.
    """
    import keras

    previous = keras.mixed_precision.global_policy().name
    if mixed_precision:
        if not has_gpu():
            warnings.warn(
                "mixed_precision=True without a GPU: float16 on a CPU is slow (often several "
                "times slower than float32); use it on a GPU with tensor cores",
                RuntimeWarning,
                stacklevel=2,
            )
        keras.mixed_precision.set_global_policy("mixed_float16")
    else:
        keras.mixed_precision.set_global_policy("float32")
    return previous


def compile_options(xla: bool | Literal["auto"] = False) -> dict[str, Any]:
    """Keyword arguments for `model.compile`: `{"jit_compile": xla}`.

    Off by default. Keras's own default is `"auto"`, which turns XLA on whenever a GPU is there;
    pass `"auto"` to keep that behaviour.
    """
    if xla != "auto" and not isinstance(xla, bool):
        raise ValueError(f"xla: expected True, False or 'auto', got {xla!r}")
    return {"jit_compile": xla}
