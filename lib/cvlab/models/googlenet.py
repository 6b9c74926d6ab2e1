"""MiniGoogLeNet (CIFAR-10) and DeeperGoogLeNet (Tiny ImageNet), as in the book (Practitioner Bundle, ch. 11).

Both put batch normalisation *before* the activation (the book follows Szegedy et al. / Zhang et al.
here): `conv_module` is CONV → BN → ReLU. CONVs and the FC keep their biases, as in the book.

MiniGoogLeNet, the book's `MiniGoogLeNet.build(width, height, depth, classes)`:

    CONV 3×3 (96) → inception(32, 32) → inception(32, 48) → downsample(80)
    → inception(112, 48) → inception(96, 64) → inception(80, 80) → inception(48, 96) → downsample(96)
    → inception(176, 160) → inception(176, 160) → AVG POOL 7×7 → DROPOUT 0.5 → FLATTEN → FC → softmax

* inception(k1, k3): a 1×1 CONV module (k1) and a 3×3 CONV module (k3) on the same input, "same"
  padded, concatenated on the channels.
* downsample(K): a 3×3/2 "valid" CONV module (K) and a 3×3/2 "valid" MAX POOL on the same input,
  concatenated (K + input channels).
* the book has no weight decay here and Keras's default BN (momentum 0.99, epsilon 1e-3);
  `reg` > 0 adds an L2 penalty to every CONV and the FC kernel.

DeeperGoogLeNet, the book's `DeeperGoogLeNet.build(width, height, depth, classes, reg=0.0005)`:

    CONV 5×5 (64) → MAX POOL 3×3/2 → CONV 1×1 (64) → CONV 3×3 (192) → MAX POOL 3×3/2
    → inception 3a, 3b → MAX POOL 3×3/2 → inception 4a … 4e → MAX POOL 3×3/2
    → AVG POOL 4×4 → DROPOUT 0.4 → FLATTEN → FC(classes) → softmax

* every MAX POOL outside the modules is 3×3/2 "same"; the input is 64×64 (Tiny ImageNet), so the
  volume reaching the 4×4 average pooling is 4×4×832.
* inception(#1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj): four branches — 1×1; 1×1 → 3×3;
  1×1 → 5×5; MAX POOL 3×3/1 "same" → 1×1 — concatenated on the channels (the GoogLeNet table).
* L2 `reg` on every CONV and the FC kernel (book default 0.0005; the Tiny ImageNet script uses
  0.0002, the "tiny-imagenet" preset); layers carry the book's names ("block1_conv", "3a_first_bn",
  "4e_mixed", "pool5", "labels", ...).

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


def _check_input_shape(model: str, input_shape: tuple, final, needed: int) -> None:
    for axis, size in zip(("height", "width"), input_shape[:2], strict=True):
        if final(size) < needed:
            minimum = next(n for n in range(size, 100 * needed) if final(n) >= needed)
            raise ValueError(
                f"input {axis} {size} leaves {final(size)} pixels before {model}'s "
                f"{needed}×{needed} average pooling; use at least {minimum}"
            )


def conv_module(
    x,
    k: int,
    kx: int,
    ky: int,
    stride: int | tuple[int, int],
    *,
    padding: str = "same",
    reg: float = 0.0,
    bn_eps: float = 1e-3,
    bn_momentum: float = 0.99,
    name: str | None = None,
):
    """The book's `conv_module`: CONV (K filters, kX×kY, stride) → BN → ReLU, optionally named."""
    conv_name, bn_name, act_name = (
        (f"{name}_conv", f"{name}_bn", f"{name}_act") if name is not None else (None, None, None)
    )
    x = layers.Conv2D(
        k,
        (kx, ky),
        strides=stride,
        padding=padding,
        kernel_regularizer=_l2(reg),
        data_format=data_format(),
        name=conv_name,
    )(x)
    x = layers.BatchNormalization(
        axis=channel_axis(), epsilon=bn_eps, momentum=bn_momentum, name=bn_name
    )(x)
    return layers.Activation("relu", name=act_name)(x)


# --------------------------------------------------------------------------- MiniGoogLeNet

# googlenet_cifar10.py: MiniGoogLeNet.build(width=32, height=32, depth=3, classes=10)
MINI_PRESETS: dict[str, dict[str, Any]] = {
    "cifar10": {"input_shape": (32, 32, 3), "classes": 10},
}

MINI_DEFAULTS: dict[str, Any] = {
    "input_shape": (32, 32, 3),
    "classes": 10,
    "reg": 0.0,
    "bn_eps": 1e-3,
    "bn_momentum": 0.99,
}

# ("conv", K) | ("inception", numK1x1, numK3x3) | ("downsample", K), in the book's order
MINI_LAYOUT: tuple[tuple, ...] = (
    ("conv", 96),
    ("inception", 32, 32),
    ("inception", 32, 48),
    ("downsample", 80),
    ("inception", 112, 48),
    ("inception", 96, 64),
    ("inception", 80, 80),
    ("inception", 48, 96),
    ("downsample", 96),
    ("inception", 176, 160),
    ("inception", 176, 160),
)
MINI_POOL = 7  # AveragePooling2D((7, 7)) after the last Inception module
MINI_DROPOUT = 0.5


def mini_inception_module(x, num_k1x1: int, num_k3x3: int, **options):
    """The book's `MiniGoogLeNet.inception_module`: 1×1 and 3×3 CONV modules, concatenated."""
    conv_1x1 = conv_module(x, num_k1x1, 1, 1, (1, 1), **options)
    conv_3x3 = conv_module(x, num_k3x3, 3, 3, (1, 1), **options)
    return layers.concatenate([conv_1x1, conv_3x3], axis=channel_axis())


def downsample_module(x, k: int, **options):
    """The book's `MiniGoogLeNet.downsample_module`: a 3×3/2 CONV module beside a 3×3/2 MAX POOL."""
    conv_3x3 = conv_module(x, k, 3, 3, (2, 2), padding="valid", **options)
    pool = layers.MaxPooling2D((3, 3), strides=(2, 2), data_format=data_format())(x)
    return layers.concatenate([conv_3x3, pool], axis=channel_axis())


def _mini_final_size(size: int) -> int:
    for step in MINI_LAYOUT:
        if step[0] == "downsample":  # 3×3/2 "valid"
            size = (size - 3) // 2 + 1
    return size


@register_model
def minigooglenet(
    input_shape: Sequence[int] | None = None,
    classes: int | None = None,
    *,
    reg: float | None = None,
    bn_eps: float | None = None,
    bn_momentum: float | None = None,
    preset: str | None = None,
    channels: str = "last",
) -> keras.Model:
    """The book's `MiniGoogLeNet.build(width, height, depth, classes)`.

    Arguments left as None take the preset's value, else the defaults: input (32, 32, 3), 10 classes,
    reg 0 (the book's MiniGoogLeNet has no weight decay), bn_eps 1e-3, bn_momentum 0.99 (Keras's
    defaults, which the book keeps). `preset="cifar10"`: the same. Inputs need at least 31×31 pixels
    (7×7 left for the average pooling); larger ones leave more than 1×1 after it, which the FLATTEN
    passes on to the FC, as the book's code would.

    `channels="first"` builds it channels-first (the book's `chanDim = 1`; inputs stay HWC, see
    `cvlab.models.layout`).
    """
    cfg = resolve_options(
        "MiniGoogLeNet",
        MINI_PRESETS,
        MINI_DEFAULTS,
        preset,
        input_shape=input_shape,
        classes=classes,
        reg=reg,
        bn_eps=bn_eps,
        bn_momentum=bn_momentum,
    )
    input_shape, classes = cfg["input_shape"], cfg["classes"]
    options = {"reg": cfg["reg"], "bn_eps": cfg["bn_eps"], "bn_momentum": cfg["bn_momentum"]}
    _check_input_shape("MiniGoogLeNet", input_shape, _mini_final_size, MINI_POOL)

    with channel_order(check_channels("MiniGoogLeNet", channels)):
        inputs = keras.Input(shape=input_shape)
        x = to_model_order(inputs)
        for kind, *filters in MINI_LAYOUT:
            if kind == "conv":
                x = conv_module(x, filters[0], 3, 3, (1, 1), **options)
            elif kind == "inception":
                x = mini_inception_module(x, *filters, **options)
            else:
                x = downsample_module(x, filters[0], **options)

        x = layers.AveragePooling2D((MINI_POOL, MINI_POOL), data_format=data_format())(x)
        x = layers.Dropout(MINI_DROPOUT)(x)
        x = layers.Flatten(data_format=data_format())(x)
        x = layers.Dense(classes, kernel_regularizer=_l2(options["reg"]))(x)
        outputs = layers.Activation("softmax")(x)
        return keras.Model(inputs, outputs, name="minigooglenet")


# --------------------------------------------------------------------------- DeeperGoogLeNet

# Tiny ImageNet train.py: DeeperGoogLeNet.build(width=64, height=64, depth=3,
#                                               classes=config.NUM_CLASSES, reg=0.0002)
DEEPER_PRESETS: dict[str, dict[str, Any]] = {
    "tiny-imagenet": {"input_shape": (64, 64, 3), "classes": 200, "reg": 0.0002},
}

# Without a preset: the book's `build` default reg 0.0005, at the Tiny ImageNet size.
DEEPER_DEFAULTS: dict[str, Any] = {
    "input_shape": (64, 64, 3),
    "classes": 200,
    "reg": 0.0005,
    "bn_eps": 1e-3,
    "bn_momentum": 0.99,
}

# stage: (num1x1, num3x3Reduce, num3x3, num5x5Reduce, num5x5, num1x1Proj); a POOL after 3b and 4e
DEEPER_INCEPTIONS: dict[str, tuple[int, int, int, int, int, int]] = {
    "3a": (64, 96, 128, 16, 32, 32),
    "3b": (128, 128, 192, 32, 96, 64),
    "4a": (192, 96, 208, 16, 48, 64),
    "4b": (160, 112, 224, 24, 64, 64),
    "4c": (128, 128, 256, 24, 64, 64),
    "4d": (112, 144, 288, 32, 64, 64),
    "4e": (256, 160, 320, 32, 128, 128),
}
DEEPER_POOL = 4  # AveragePooling2D((4, 4), name="pool5")
DEEPER_DROPOUT = 0.4


def inception_module(
    x,
    num1x1: int,
    num3x3_reduce: int,
    num3x3: int,
    num5x5_reduce: int,
    num5x5: int,
    num1x1_proj: int,
    stage: str,
    **options,
):
    """The book's `DeeperGoogLeNet.inception_module`: the four-branch GoogLeNet Inception module."""
    first = conv_module(x, num1x1, 1, 1, (1, 1), name=f"{stage}_first", **options)

    second = conv_module(x, num3x3_reduce, 1, 1, (1, 1), name=f"{stage}_second1", **options)
    second = conv_module(second, num3x3, 3, 3, (1, 1), name=f"{stage}_second2", **options)

    third = conv_module(x, num5x5_reduce, 1, 1, (1, 1), name=f"{stage}_third1", **options)
    third = conv_module(third, num5x5, 5, 5, (1, 1), name=f"{stage}_third2", **options)

    fourth = layers.MaxPooling2D(
        (3, 3), strides=(1, 1), padding="same", data_format=data_format(), name=f"{stage}_pool"
    )(x)
    fourth = conv_module(fourth, num1x1_proj, 1, 1, (1, 1), name=f"{stage}_fourth", **options)

    return layers.concatenate(
        [first, second, third, fourth], axis=channel_axis(), name=f"{stage}_mixed"
    )


def _pool(x, name: str):
    return layers.MaxPooling2D(
        (3, 3), strides=(2, 2), padding="same", data_format=data_format(), name=name
    )(x)


def _deeper_final_size(size: int) -> int:
    for _ in range(4):  # pool1 … pool4: 3×3/2 "same"
        size = -(-size // 2)
    return size


@register_model
def deepergooglenet(
    input_shape: Sequence[int] | None = None,
    classes: int | None = None,
    *,
    reg: float | None = None,
    bn_eps: float | None = None,
    bn_momentum: float | None = None,
    preset: str | None = None,
    channels: str = "last",
) -> keras.Model:
    """The book's `DeeperGoogLeNet.build(width, height, depth, classes, reg=0.0005)`.

    Arguments left as None take the preset's value, else the defaults: input (64, 64, 3),
    200 classes, reg 0.0005 (the book's `build` default), bn_eps 1e-3, bn_momentum 0.99 (Keras's
    defaults, which the book keeps). `preset="tiny-imagenet"`: the same with reg 0.0002, as the
    book's Tiny ImageNet train.py calls it. reg 0 adds no penalty. Inputs need at least 49×49 pixels
    (4×4 left for the average pooling); larger ones leave more than 1×1 after it, which the FLATTEN
    passes on to the FC, as the book's code would.

    `channels="first"` builds it channels-first (the book's `chanDim = 1`; inputs stay HWC, see
    `cvlab.models.layout`).
    """
    cfg = resolve_options(
        "DeeperGoogLeNet",
        DEEPER_PRESETS,
        DEEPER_DEFAULTS,
        preset,
        input_shape=input_shape,
        classes=classes,
        reg=reg,
        bn_eps=bn_eps,
        bn_momentum=bn_momentum,
    )
    input_shape, classes = cfg["input_shape"], cfg["classes"]
    options = {"reg": cfg["reg"], "bn_eps": cfg["bn_eps"], "bn_momentum": cfg["bn_momentum"]}
    _check_input_shape("DeeperGoogLeNet", input_shape, _deeper_final_size, DEEPER_POOL)

    # CONV => POOL => (CONV * 2) => POOL
    with channel_order(check_channels("DeeperGoogLeNet", channels)):
        inputs = keras.Input(shape=input_shape)
        x = conv_module(to_model_order(inputs), 64, 5, 5, (1, 1), name="block1", **options)
        x = _pool(x, "pool1")
        x = conv_module(x, 64, 1, 1, (1, 1), name="block2", **options)
        x = conv_module(x, 192, 3, 3, (1, 1), name="block3", **options)
        x = _pool(x, "pool2")

        # two Inception modules (3a, 3b) then POOL; five (4a-4e) then POOL
        for stage in ("3a", "3b"):
            x = inception_module(x, *DEEPER_INCEPTIONS[stage], stage, **options)
        x = _pool(x, "pool3")
        for stage in ("4a", "4b", "4c", "4d", "4e"):
            x = inception_module(x, *DEEPER_INCEPTIONS[stage], stage, **options)
        x = _pool(x, "pool4")

        # average POOL → dropout → softmax classifier
        x = layers.AveragePooling2D(
            (DEEPER_POOL, DEEPER_POOL), data_format=data_format(), name="pool5"
        )(x)
        x = layers.Dropout(DEEPER_DROPOUT, name="do")(x)
        x = layers.Flatten(data_format=data_format(), name="flatten")(x)
        x = layers.Dense(classes, kernel_regularizer=_l2(options["reg"]), name="labels")(x)
        outputs = layers.Activation("softmax", name="softmax")(x)
        return keras.Model(inputs, outputs, name="deepergooglenet")


__all__ = [
    "DEEPER_PRESETS",
    "MINI_PRESETS",
    "conv_module",
    "deepergooglenet",
    "downsample_module",
    "inception_module",
    "mini_inception_module",
    "minigooglenet",
]
