"""ResNet with pre-activation bottleneck residual modules, as in the book (Practitioner Bundle, ch. 12).

Layer for layer the book's `ResNet.build` / `ResNet.residual_module` (pyimagesearch/nn/conv/resnet.py):

    input → BN → stem → stage 1 … stage n → BN → ReLU → AVG POOL 8×8 → FLATTEN → FC(classes) → softmax

* stem "cifar": CONV 3×3 (filters[0], "same"); stem "tiny_imagenet": CONV 5×5 (filters[0], "same")
  → BN → ReLU → ZERO PAD 1 → MAX POOL 3×3 stride 2 (64×64 inputs become 32×32, the CIFAR size).
* stage i stacks `stages[i]` residual modules of K = filters[i + 1]; its first module has `red=True`
  (a 1×1 CONV shortcut) and stride 1 in the first stage, 2 in the later ones.
* residual module: BN → ReLU → CONV 1×1 (K/4) → BN → ReLU → CONV 3×3 (K/4, stride, "same") → BN → ReLU
  → CONV 1×1 (K), added to the shortcut: the input itself, or, when reducing, CONV 1×1 (K, stride) of
  the *first* ReLU's output (pre-activation shortcut).
* every CONV has no bias (the following BN has one) and an L2 penalty `reg` on its kernel, as does the
  final FC; every BN has epsilon `bn_eps` (book: bnEps=2e-5) and momentum `bn_momentum` (book:
  bnMom=0.9; Keras 3's `momentum` is the same moving-average momentum as Keras 2's).

Channels-last only: the book's `chanDim = -1` branch (the channels-first branch is not built).

One deliberate difference: the book's `build` calls `residual_module` without `reg=reg`, so its printed
code gives the residual modules' CONVs the module default 0.0001 whatever `reg` the training script
asks for (0.0005); only the stem CONV and the FC get `reg`. The text says `reg` is supplied "to all
CONV layers in the residual module", so here `reg` reaches every kernel; pass `module_reg=0.0001` to
reproduce the printed code exactly.
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

STEMS = ("cifar", "tiny_imagenet")

# The book's training scripts: resnet_cifar10*.py (ResNet-56) and Tiny ImageNet train*.py.
PRESETS: dict[str, dict[str, Any]] = {
    "cifar10": {
        "input_shape": (32, 32, 3),
        "classes": 10,
        "stages": (9, 9, 9),
        "filters": (64, 64, 128, 256),
        "reg": 0.0005,
        "stem": "cifar",
    },
    "tiny-imagenet": {
        "input_shape": (64, 64, 3),
        "classes": 200,
        "stages": (3, 4, 6),
        "filters": (64, 128, 256, 512),
        "reg": 0.0005,
        "stem": "tiny_imagenet",
    },
}

# Without a preset: the book's `build` defaults, with the CIFAR-10 stages and filters.
DEFAULTS: dict[str, Any] = {
    "input_shape": (32, 32, 3),
    "classes": 10,
    "stages": (9, 9, 9),
    "filters": (64, 64, 128, 256),
    "reg": 0.0001,
    "bn_eps": 2e-5,
    "bn_momentum": 0.9,
    "stem": "cifar",
}

POOL_SIZE = 8  # the book's AveragePooling2D((8, 8)) before the classifier


def _bn(x, bn_eps: float, bn_momentum: float):
    return layers.BatchNormalization(axis=channel_axis(), epsilon=bn_eps, momentum=bn_momentum)(x)


def _conv(x, filters: int, kernel: int, reg: float, *, strides: int = 1, padding: str = "valid"):
    return layers.Conv2D(
        filters,
        (kernel, kernel),
        strides=(strides, strides),
        padding=padding,
        use_bias=False,
        kernel_regularizer=_l2(reg),
        data_format=data_format(),
    )(x)


def residual_module(
    data,
    k: int,
    stride: int,
    *,
    red: bool = False,
    reg: float = 0.0001,
    bn_eps: float = 2e-5,
    bn_momentum: float = 0.9,
):
    """The book's `ResNet.residual_module`: a pre-activation bottleneck learning K/4, K/4, K filters."""
    shortcut = data

    # first block: 1×1 CONVs (K/4)
    act1 = layers.Activation("relu")(_bn(data, bn_eps, bn_momentum))
    conv1 = _conv(act1, int(k * 0.25), 1, reg)

    # second block: 3×3 CONVs (K/4), carrying the stride
    act2 = layers.Activation("relu")(_bn(conv1, bn_eps, bn_momentum))
    conv2 = _conv(act2, int(k * 0.25), 3, reg, strides=stride, padding="same")

    # third block: 1×1 CONVs (K)
    act3 = layers.Activation("relu")(_bn(conv2, bn_eps, bn_momentum))
    conv3 = _conv(act3, k, 1, reg)

    # reducing: a strided 1×1 CONV on the first pre-activation replaces the identity
    if red:
        shortcut = _conv(act1, k, 1, reg, strides=stride)

    return layers.add([conv3, shortcut])


def _final_size(size: int | None, stem: str, n_stages: int) -> int | None:
    """Spatial size reaching the average pooling (None when the input size is not fixed)."""
    if size is None:
        return None
    if stem == "tiny_imagenet":  # "same" CONV, ZERO PAD 1, MAX POOL 3×3 stride 2
        size = (size + 2 - 3) // 2 + 1
    for _ in range(
        n_stages - 1
    ):  # each later stage halves it ("same" 3×3 and 1×1 shortcut, stride 2)
        size = -(-size // 2)
    return size


@register_model
def resnet(
    input_shape: Sequence[int] | None = None,
    classes: int | None = None,
    *,
    stages: Sequence[int] | None = None,
    filters: Sequence[int] | None = None,
    reg: float | None = None,
    bn_eps: float | None = None,
    bn_momentum: float | None = None,
    stem: str | None = None,
    preset: str | None = None,
    channels: str = "last",
    module_reg: float | None = None,
) -> keras.Model:
    """The book's `ResNet.build(width, height, depth, classes, stages, filters, reg, bnEps, bnMom, dataset)`.

    Arguments left as None take the preset's value, else the defaults: input (32, 32, 3), 10 classes,
    stages (9, 9, 9), filters (64, 64, 128, 256), reg 0.0001, bn_eps 2e-5, bn_momentum 0.9, stem "cifar".
    `preset="cifar10"`: the book's ResNet-56 for CIFAR-10 (reg 0.0005); `preset="tiny-imagenet"`: the
    Tiny ImageNet ResNet ((3, 4, 6), (64, 128, 256, 512), reg 0.0005, 64×64×3 input, 200 classes, the
    5×5 CONV + MAX POOL stem). Explicit arguments override the preset's.

    `filters[0]` is the stem CONV's; `filters[i + 1]` is K for stage i, so len(filters) = len(stages) + 1.
    `module_reg` (default: `reg`) is the L2 strength of the residual modules' CONVs. reg 0 adds no penalty.
    The classifier sits on AVG POOL 8×8 as in the book, so the last stage must be at least 8×8 (32×32
    CIFAR-stem or 64×64 Tiny-ImageNet-stem inputs with three stages give exactly 8×8).

    `channels="first"` builds it channels-first (the book's `chanDim = 1`; inputs stay HWC, see
    `cvlab.models.layout`).
    """
    cfg = resolve_options(
        "ResNet",
        PRESETS,
        DEFAULTS,
        preset,
        input_shape=input_shape,
        classes=classes,
        stages=stages,
        filters=filters,
        reg=reg,
        bn_eps=bn_eps,
        bn_momentum=bn_momentum,
        stem=stem,
    )
    input_shape, classes = cfg["input_shape"], cfg["classes"]
    stages, filters = tuple(cfg["stages"]), tuple(cfg["filters"])
    reg, bn_eps, bn_momentum, stem = cfg["reg"], cfg["bn_eps"], cfg["bn_momentum"], cfg["stem"]
    module_reg = reg if module_reg is None else module_reg

    if stem not in STEMS:
        raise ValueError(f"unknown ResNet stem {stem!r}; choose one of: {', '.join(STEMS)}")
    if not stages or any(int(n) < 1 for n in stages):
        raise ValueError(f"stages must be one or more positive module counts, got {stages}")
    if len(filters) != len(stages) + 1:
        raise ValueError(
            f"filters needs one value for the stem CONV and one per stage ({len(stages) + 1}), "
            f"got {len(filters)}: {filters}"
        )
    for axis, size in zip(("height", "width"), input_shape[:2], strict=True):
        final = _final_size(size, stem, len(stages))
        if final is not None and final < POOL_SIZE:
            raise ValueError(
                f"input {axis} {size} leaves {final} pixels before the book's {POOL_SIZE}×{POOL_SIZE} "
                f"average pooling; use a larger input or fewer stages"
            )

    # input → BN (an extra normalisation of the raw input, as in the book)
    with channel_order(check_channels("ResNet", channels)):
        inputs = keras.Input(shape=input_shape)
        x = _bn(to_model_order(inputs), bn_eps, bn_momentum)

        if stem == "cifar":
            x = _conv(x, filters[0], 3, reg, padding="same")
        else:  # tiny_imagenet: CONV 5×5 → BN → ReLU → ZERO PAD → MAX POOL
            x = _conv(x, filters[0], 5, reg, padding="same")
            x = _bn(x, bn_eps, bn_momentum)
            x = layers.Activation("relu")(x)
            x = layers.ZeroPadding2D((1, 1), data_format=data_format())(x)
            x = layers.MaxPooling2D((3, 3), strides=(2, 2), data_format=data_format())(x)

        for i, n_modules in enumerate(stages):
            stride = 1 if i == 0 else 2
            options = {"reg": module_reg, "bn_eps": bn_eps, "bn_momentum": bn_momentum}
            x = residual_module(x, filters[i + 1], stride, red=True, **options)
            for _ in range(int(n_modules) - 1):
                x = residual_module(x, filters[i + 1], 1, **options)

        # BN → ReLU → POOL → softmax classifier
        x = _bn(x, bn_eps, bn_momentum)
        x = layers.Activation("relu")(x)
        x = layers.AveragePooling2D((POOL_SIZE, POOL_SIZE), data_format=data_format())(x)
        x = layers.Flatten(data_format=data_format())(x)
        x = layers.Dense(classes, kernel_regularizer=_l2(reg))(x)
        outputs = layers.Activation("softmax")(x)
        return keras.Model(inputs, outputs, name="resnet")


__all__ = ["PRESETS", "residual_module", "resnet"]
