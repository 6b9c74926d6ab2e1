"""FCHeadNet, the book's new fully-connected head for fine-tuning (Practitioner Bundle, ch. 5).

The book's `FCHeadNet.build(baseModel, classes, D)` (pyimagesearch/nn/conv/fcheadnet.py):

    baseModel.output → FLATTEN → FC(D) ReLU → DROPOUT 0.5 → FC(classes) softmax

and finetune_flowers17.py does the "network surgery" `Model(inputs=baseModel.input,
outputs=headModel)` on VGG16 without its top (224×224×3 input, so a 7×7×512 body output), D = 256,
17 classes. `fchead` returns that surgery's model. The book's head has no weight decay; `reg` > 0
adds an L2 penalty to its two FC kernels.

    fchead(backbone("vgg16", weights="imagenet", freeze=True), 17)   # the book's warm-up model
    fchead("vgg16", 17, weights="imagenet", freeze=True)             # the same, by name
    fchead((7, 7, 512), 17)                                          # the head alone, on features
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from cvlab.models.applications import backbone, freeze_layers
from cvlab.models.options import l2 as _l2
from cvlab.models.options import register_model
from cvlab.registry import lazy_module

keras = lazy_module("keras")  # lazy: keras (listing models needs no Keras)
layers = lazy_module("keras.layers")  # lazy: keras

# finetune_flowers17.py: FCHeadNet.build(baseModel, len(classNames), 256) on VGG16's body
DEFAULTS: dict[str, Any] = {
    "input_shape": (7, 7, 512),  # VGG16 without its top, on 224×224×3
    "classes": 17,
    "units": 256,
    "dropout": 0.5,
}


def _is_shape(value: Any) -> bool:
    return isinstance(value, Sequence) and not isinstance(value, str)


@register_model
def fchead(
    base: keras.Model | Sequence[int] | str | None = None,
    classes: int | None = None,
    *,
    input_shape: Sequence[int] | None = None,
    units: int = 256,
    dropout: float = 0.5,
    reg: float = 0.0,
    weights: str | os.PathLike | None = "none",
    freeze: bool = False,
) -> keras.Model:
    """The book's FCHeadNet on `base`, as one model from the base's input to the softmax.

    `base` is a Keras model (the head goes on its output: the book's fine-tuning), an input shape
    (the head alone, e.g. on saved features), a `keras.applications` backbone name such as "vgg16"
    (built headless by `cvlab.models.applications.backbone` with `input_shape`, `weights` and
    `freeze`), or None: the head alone on `input_shape`, by default (7, 7, 512), the VGG16 body output
    the book attaches it to. `classes` defaults to 17 (Flowers-17), `units` (the book's D) to 256.
    `freeze=True` makes the base's layers non-trainable (the book's warm-up before unfreezing).
    """
    classes = DEFAULTS["classes"] if classes is None else int(classes)
    if units < 1 or classes < 1:
        raise ValueError(
            f"units and classes must be positive, got units={units}, classes={classes}"
        )
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must be in [0, 1), got {dropout}")
    if weights not in (None, "none") and not isinstance(base, str):
        raise ValueError(
            "weights= applies only when base is a backbone name (e.g. fchead('vgg16', ...)); "
            "load a model's weights before passing it as base"
        )

    if isinstance(base, str):
        base = backbone(base, input_shape, weights=weights, include_top=False, freeze=freeze)
    elif base is None or _is_shape(base):
        if base is not None and input_shape is not None and tuple(base) != tuple(input_shape):
            raise ValueError(f"two different input shapes given: {tuple(base)} and {input_shape}")
        shape = tuple(base if base is not None else input_shape or DEFAULTS["input_shape"])
        if not shape or not all(isinstance(d, int) and d > 0 for d in shape):
            raise ValueError(f"input_shape must be positive ints, got {shape}")
        base = None
        inputs = keras.Input(shape=shape)
        features = inputs
    elif isinstance(base, keras.Model):
        if input_shape is not None and tuple(base.input_shape[1:]) != tuple(input_shape):
            raise ValueError(
                f"base takes inputs of shape {tuple(base.input_shape[1:])}, not {tuple(input_shape)}"
            )
        if freeze:
            freeze_layers(base)
    else:
        raise ValueError(
            f"base must be a Keras model, an input shape or a backbone name, got {type(base).__name__}"
        )

    if base is not None:
        if len(base.outputs) != 1:
            raise ValueError(f"base has {len(base.outputs)} outputs; the head needs exactly one")
        inputs, features = base.inputs, base.outputs[0]

    # FLATTEN → FC(D) ReLU → DROPOUT → FC(classes) softmax
    x = layers.Flatten()(features)
    x = layers.Dense(units, activation="relu", kernel_regularizer=_l2(reg))(x)
    x = layers.Dropout(dropout)(x)
    outputs = layers.Dense(classes, activation="softmax", kernel_regularizer=_l2(reg))(x)
    name = "fchead" if base is None else f"{base.name}_fchead"
    return keras.Model(inputs, outputs, name=name)


__all__ = ["DEFAULTS", "fchead"]
