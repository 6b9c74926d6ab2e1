"""What the model builders share: the model registry they register in, presets overridden by
explicit arguments, and L2."""

from __future__ import annotations

from typing import Any

from cvlab.registry import Registry

# Every model, registered where it is defined (`@register_model`); `cvlab.models` imports the
# registering modules, so `cvlab.models.names()` sees them all.
MODELS = Registry("model")
register_model = MODELS.register


def l2(reg: float):
    """An L2 kernel regularizer, or None when `reg` is 0 (no regularization loss at all)."""
    import keras

    return keras.regularizers.l2(reg) if reg else None


def resolve_options(
    model: str,
    presets: dict[str, dict[str, Any]],
    defaults: dict[str, Any],
    preset: str | None,
    **given: Any,
) -> dict[str, Any]:
    """Defaults, then the preset's values, then every argument given (not None).

    `input_shape` comes back as a tuple of three positive ints and `classes` as an int.
    """
    if preset is None:
        base = dict(defaults)
    else:
        try:
            base = {**defaults, **presets[preset]}
        except KeyError:
            raise ValueError(
                f"unknown {model} preset {preset!r}; choose one of: {', '.join(sorted(presets))}"
            ) from None
    base.update({name: value for name, value in given.items() if value is not None})
    if "input_shape" in base:
        shape = tuple(base["input_shape"])
        if len(shape) != 3 or not all(isinstance(d, int) and d > 0 for d in shape):
            raise ValueError(
                f"{model}: input_shape must be (height, width, channels) of positive ints, "
                f"got {shape}"
            )
        base["input_shape"] = shape
    if "classes" in base:
        base["classes"] = int(base["classes"])
    return base
