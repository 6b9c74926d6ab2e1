"""MiniVGGNet, the book's small VGG-style network (Starter Bundle, ch. 15; reused in the Practitioner Bundle).

Layer for layer the book's `MiniVGGNet.build(width, height, depth, classes)`
(pyimagesearch/nn/conv/minivggnet.py):

    (CONV 3×3 "same" → ReLU → BN) × 2 with 32 filters → MAX POOL 2×2 → DROPOUT 0.25
    (CONV 3×3 "same" → ReLU → BN) × 2 with 64 filters → MAX POOL 2×2 → DROPOUT 0.25
    FLATTEN → FC 512 → ReLU → BN → DROPOUT 0.5 → FC(classes) → softmax

* BN comes *after* the ReLU (the book's VGG/AlexNet order; the GoogLeNets put it before).
* CONVs and FCs keep their biases, as in the book.
* The book's MiniVGGNet has no weight decay and Keras's default BN settings (momentum 0.99, epsilon
  1e-3); `reg` > 0 adds an L2 penalty to every CONV and FC kernel.

The Practitioner Bundle only *uses* MiniVGGNet (Flowers-17 at 64×64×3, the CIFAR-10 ensembles at
32×32×3); its code is printed in the Starter Bundle.

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

# The book's training scripts: minivggnet_cifar10.py / train_models.py (ensembles) and
# minivggnet_flowers17.py / minivggnet_flowers17_data_aug.py.
PRESETS: dict[str, dict[str, Any]] = {
    "cifar10": {"input_shape": (32, 32, 3), "classes": 10},
    "flowers17": {"input_shape": (64, 64, 3), "classes": 17},
}

# Without a preset: the book's `build` (no regularisation, Keras BN defaults) at the CIFAR-10 size.
DEFAULTS: dict[str, Any] = {
    "input_shape": (32, 32, 3),
    "classes": 10,
    "reg": 0.0,
    "bn_eps": 1e-3,
    "bn_momentum": 0.99,
}

BLOCK_FILTERS = (32, 64)  # two CONV => RELU => BN pairs per block, then POOL and DROPOUT
FC_UNITS = 512
CONV_DROPOUT = 0.25
FC_DROPOUT = 0.5


def _check_input_shape(input_shape: tuple, pools: int) -> None:
    smallest = 2**pools
    for axis, size in zip(("height", "width"), input_shape[:2], strict=True):
        if size < smallest:
            raise ValueError(
                f"input {axis} {size} is too small for MiniVGGNet's {pools} 2×2 poolings; "
                f"use at least {smallest}"
            )


@register_model
def minivggnet(
    input_shape: Sequence[int] | None = None,
    classes: int | None = None,
    *,
    reg: float | None = None,
    bn_eps: float | None = None,
    bn_momentum: float | None = None,
    preset: str | None = None,
    channels: str = "last",
) -> keras.Model:
    """The book's `MiniVGGNet.build(width, height, depth, classes)`.

    Arguments left as None take the preset's value, else the defaults: input (32, 32, 3), 10 classes,
    reg 0 (the book has no weight decay), bn_eps 1e-3 and bn_momentum 0.99 (Keras's defaults, which
    the book keeps). `preset="cifar10"`: 32×32×3, 10 classes; `preset="flowers17"`: 64×64×3,
    17 classes. Explicit arguments override the preset's.

    `channels="first"` builds it channels-first (the book's `chanDim = 1`; inputs stay HWC, see
    `cvlab.models.layout`).
    """
    cfg = resolve_options(
        "MiniVGGNet",
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
    _check_input_shape(input_shape, len(BLOCK_FILTERS))

    def bn(x):
        return layers.BatchNormalization(axis=channel_axis(), epsilon=bn_eps, momentum=bn_momentum)(
            x
        )

    with channel_order(check_channels("MiniVGGNet", channels)):
        inputs = keras.Input(shape=input_shape)
        x = to_model_order(inputs)
        for filters in BLOCK_FILTERS:  # CONV => RELU => BN => CONV => RELU => BN => POOL => DO
            for _ in range(2):
                x = layers.Conv2D(
                    filters,
                    (3, 3),
                    padding="same",
                    kernel_regularizer=_l2(reg),
                    data_format=data_format(),
                )(x)
                x = layers.Activation("relu")(x)
                x = bn(x)
            x = layers.MaxPooling2D(pool_size=(2, 2), data_format=data_format())(x)
            x = layers.Dropout(CONV_DROPOUT)(x)

        # FC => RELU => BN => DO, then the softmax classifier
        x = layers.Flatten(data_format=data_format())(x)
        x = layers.Dense(FC_UNITS, kernel_regularizer=_l2(reg))(x)
        x = layers.Activation("relu")(x)
        x = bn(x)
        x = layers.Dropout(FC_DROPOUT)(x)
        x = layers.Dense(classes, kernel_regularizer=_l2(reg))(x)
        outputs = layers.Activation("softmax")(x)
        return keras.Model(inputs, outputs, name="minivggnet")


__all__ = ["PRESETS", "minivggnet"]
