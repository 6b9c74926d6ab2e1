"""AlexNet as in the book (Practitioner Bundle, ch. 10: Kaggle Dogs vs. Cats).

Layer for layer the book's `AlexNet.build(width, height, depth, classes, reg=0.0002)`
(pyimagesearch/nn/conv/alexnet.py):

    CONV 11×11/4 (96, "same") → ReLU → BN → MAX POOL 3×3/2 → DROPOUT 0.25
    CONV 5×5 (256, "same") → ReLU → BN → MAX POOL 3×3/2 → DROPOUT 0.25
    CONV 3×3 (384) → ReLU → BN → CONV 3×3 (384) → ReLU → BN → CONV 3×3 (256) → ReLU → BN
        → MAX POOL 3×3/2 → DROPOUT 0.25
    FLATTEN → (FC 4096 → ReLU → BN → DROPOUT 0.5) × 2 → FC(classes) → softmax

* every CONV is "same"-padded, every MAX POOL "valid"; BN comes after the ReLU.
* L2 `reg` on every CONV and FC kernel (book default 0.0002); biases kept; BN with Keras's defaults
  (momentum 0.99, epsilon 1e-3), which the book keeps.

The book's Table 10.1 lists 55×55 → 27×27 → 13×13 → 6×6; the printed code ("same" padding on the
11×11/4 CONV) gives 57×57 → 28×28 → 13×13 → 6×6 on 227×227 inputs. This module builds the code;
both reach the same 6×6×256 volume, so the parameter count is the same either way.

Channels-last only: the book's `chanDim = -1` branch (the channels-first branch is not built).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cvlab.models.layout import (
    channel_axis,
    channel_order,
    check_channels,
    data_format,
    to_model_order,
)
from cvlab.models.options import l2 as _l2
from cvlab.models.options import register_model, resolve_options
from cvlab.registry import lazy_module

keras = lazy_module("keras")  # lazy: keras (listing models needs no Keras)
layers = lazy_module("keras.layers")  # lazy: keras

# train_alexnet.py: AlexNet.build(width=227, height=227, depth=3, classes=2, reg=0.0002)
PRESETS: dict[str, dict[str, Any]] = {
    "dogs-vs-cats": {"input_shape": (227, 227, 3), "classes": 2, "reg": 0.0002},
}

# Without a preset: the book's `build` default reg, at the size and class count it trains with.
DEFAULTS: dict[str, Any] = {
    "input_shape": (227, 227, 3),
    "classes": 2,
    "reg": 0.0002,
    "bn_eps": 1e-3,
    "bn_momentum": 0.99,
}

# (filters, kernel, stride) per CONV; a POOL + DROPOUT follows the CONVs of each block
CONV_BLOCKS = (
    ((96, 11, 4),),
    ((256, 5, 1),),
    ((384, 3, 1), (384, 3, 1), (256, 3, 1)),
)
FC_UNITS = (4096, 4096)
CONV_DROPOUT = 0.25
FC_DROPOUT = 0.5


def _final_size(size: int) -> int:
    """Spatial size after the three POOLs ("same" 11×11/4 CONV, then 3×3/2 "valid" POOLs)."""
    size = -(-size // 4)
    for _ in range(3):
        size = (size - 3) // 2 + 1
    return size


@register_model
def alexnet(
    input_shape: Sequence[int] | None = None,
    classes: int | None = None,
    *,
    reg: float | None = None,
    bn_eps: float | None = None,
    bn_momentum: float | None = None,
    preset: str | None = None,
    channels: str = "last",
) -> keras.Model:
    """The book's `AlexNet.build(width, height, depth, classes, reg=0.0002)`.

    Arguments left as None take the preset's value, else the defaults: input (227, 227, 3),
    2 classes (the book trains it on Dogs vs. Cats only), reg 0.0002, bn_eps 1e-3, bn_momentum 0.99.
    `preset="dogs-vs-cats"`: the same, as train_alexnet.py calls it. reg 0 adds no penalty.
    Inputs need at least 57×57 pixels (the three 3×3/2 poolings need 15×15 after the stride-4 CONV).

    `channels="first"` builds it channels-first (the book's `chanDim = 1`; inputs stay HWC, see
    `cvlab.models.layout`).
    """
    cfg = resolve_options(
        "AlexNet",
        PRESETS,
        DEFAULTS,
        preset,
        input_shape=input_shape,
        classes=classes,
        reg=reg,
        bn_eps=bn_eps,
        bn_momentum=bn_momentum,
    )
    input_shape, classes = cfg["input_shape"], cfg["classes"]
    reg, bn_eps, bn_momentum = cfg["reg"], cfg["bn_eps"], cfg["bn_momentum"]
    for axis, size in zip(("height", "width"), input_shape[:2], strict=True):
        if _final_size(size) < 1:
            raise ValueError(
                f"input {axis} {size} is too small for AlexNet's stride-4 CONV and three 3×3/2 "
                f"poolings; use at least 57 (the book uses 227)"
            )

    def bn(x):
        return layers.BatchNormalization(axis=channel_axis(), epsilon=bn_eps, momentum=bn_momentum)(
            x
        )

    with channel_order(check_channels("AlexNet", channels)):
        inputs = keras.Input(shape=input_shape)
        x = to_model_order(inputs)
        for block in CONV_BLOCKS:  # (CONV => RELU => BN) × n => POOL => DO
            for filters, kernel, stride in block:
                x = layers.Conv2D(
                    filters,
                    (kernel, kernel),
                    strides=(stride, stride),
                    padding="same",
                    kernel_regularizer=_l2(reg),
                    data_format=data_format(),
                )(x)
                x = layers.Activation("relu")(x)
                x = bn(x)
            x = layers.MaxPooling2D(pool_size=(3, 3), strides=(2, 2), data_format=data_format())(x)
            x = layers.Dropout(CONV_DROPOUT)(x)

        x = layers.Flatten(data_format=data_format())(x)
        for units in FC_UNITS:  # FC => RELU => BN => DO
            x = layers.Dense(units, kernel_regularizer=_l2(reg))(x)
            x = layers.Activation("relu")(x)
            x = bn(x)
            x = layers.Dropout(FC_DROPOUT)(x)

        x = layers.Dense(classes, kernel_regularizer=_l2(reg))(x)
        outputs = layers.Activation("softmax")(x)
        return keras.Model(inputs, outputs, name="alexnet")


__all__ = ["PRESETS", "alexnet"]
