"""Progressive resizing: a network trained on small images becomes the core of a network for
images twice as large, which becomes the core of the next (seed 000's "three layer cake").

    core = cvlab.models.build("minivggnet", input_shape=(48, 48, 3), classes=17)
    model96 = grow(core)          # 96 px in; `core` inside it, with its layers and weights
    model192 = grow(model96)      # 192 px in; model96 (and so core) inside it

`grow` puts a new *stem* in front of the smaller model. The stem shrinks the image by the factor
with an average pool (exactly how `downsample` made the smaller stage's images) and adds a
learned *detail* branch to it: a 3×3 convolution with ReLU at the full size, then a strided 3×3
convolution back to the image's channels, initialised at zero. So right after growing, the
larger model computes exactly what the smaller one did on the shrunk image (it starts from the
smaller stage's accuracy, not from scratch), and training teaches the branch what the extra
pixels add. Nothing of the smaller model is dropped. (The seed replaces the prior model's first
convolution by two new ones at the larger size, throwing that layer's weights away; here every
layer is kept.)

`train_progressive` trains the stages in turn within one wall-clock budget, shared between the
stages by `shares` (time a stage leaves unused passes on to the later ones).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from cvlab.errors import ProgressiveError
from cvlab.transfer.surgery import Stage, pipelines, train_stage

if TYPE_CHECKING:
    import keras

    from cvlab.data.dataset import Dataset
    from cvlab.runs.run import Run

STEM_PREFIX = "grow"


def downsample(images: np.ndarray, factor: int) -> np.ndarray:
    """Shrink (N, H, W, C) images by an integer `factor`: each output pixel is the mean of a
    factor × factor block (area resampling, the same as the grown model's average pool)."""
    images = np.asarray(images)
    factor = int(factor)
    if factor < 1:
        raise ProgressiveError(f"factor must be a positive integer, got {factor}")
    if factor == 1:
        return images
    n, h, w, c = images.shape
    if h % factor or w % factor:
        raise ProgressiveError(
            f"images of {h}×{w} cannot be shrunk by {factor}: load them at a size divisible by "
            f"{factor} (e.g. the largest stage's size)"
        )
    blocks = images.reshape(n, h // factor, factor, w // factor, factor, c)
    return blocks.mean(axis=(2, 4), dtype=np.float64).astype(images.dtype, copy=False)


def downsample_dataset(data: Dataset, factor: int) -> Dataset:
    """`data` with every split shrunk by `factor` (see `downsample`)."""
    from dataclasses import replace

    return replace(
        data,
        x_train=downsample(data.x_train, factor),
        x_val=downsample(data.x_val, factor) if len(data.x_val) else data.x_val,
        x_test=downsample(data.x_test, factor),
    )


def grow(core: keras.Model, factor: int = 2, *, filters: int = 32) -> keras.Model:
    """A model for inputs `factor` times larger, whose core is `core` itself (layers and weights
    shared, not copied): new stem → `core`. See the module doc for the stem; `filters` is the
    width of its detail branch. The new model's name is `<core>_<side>px`."""
    import keras
    from keras import layers

    if len(core.inputs) != 1 or len(core.input_shape) != 4:
        raise ProgressiveError(
            f"{core.name} must take one image input (H, W, C), not {core.input_shape}"
        )
    h, w, channels = core.input_shape[1:]
    if h is None or w is None:
        raise ProgressiveError(f"{core.name} has no fixed input size ({core.input_shape})")
    factor, filters = int(factor), int(filters)
    if factor < 2 or filters < 1:
        raise ProgressiveError(f"factor must be ≥ 2 and filters ≥ 1, got {factor} and {filters}")
    side = f"{h * factor}" if h == w else f"{h * factor}x{w * factor}"
    stem = f"{STEM_PREFIX}{side}"

    inputs = keras.Input(shape=(h * factor, w * factor, channels), name=f"input_{side}px")
    shrunk = layers.AveragePooling2D(factor, name=f"{stem}_pool")(inputs)
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{stem}_conv")(inputs)
    x = layers.BatchNormalization(name=f"{stem}_bn")(x)
    x = layers.ReLU(name=f"{stem}_relu")(x)
    detail = layers.Conv2D(
        channels, 3, strides=factor, padding="same", kernel_initializer="zeros",
        name=f"{stem}_detail",
    )(x)  # fmt: skip
    x = layers.Add(name=f"{stem}_add")([shrunk, detail])
    base = re.sub(r"_\d+(x\d+)?px$", "", core.name)  # minivggnet_96px grows into minivggnet_192px
    return keras.Model(inputs, core(x), name=f"{base}_{side}px")


def cores(model: keras.Model) -> list[keras.Model]:
    """The models nested inside `model` by `grow`, outermost first (192 px → 96 px → 48 px)."""
    import keras

    found = []
    current = model
    while True:
        inner = [layer for layer in current.layers if isinstance(layer, keras.Model)]
        if not inner:
            return found
        current = inner[-1]
        found.append(current)


def stage_budgets(budget_s: float, shares: Sequence[float], used: Sequence[float]) -> float:
    """Seconds for the next stage: what is left of `budget_s` after the stages so far (`used`),
    split among the remaining stages in proportion to their `shares`."""
    k = len(used)
    if not 0 <= k < len(shares):
        raise ProgressiveError(f"{k} stages done of {len(shares)}: no next stage")
    left = max(0.0, float(budget_s) - float(sum(used)))
    remaining = [float(s) for s in shares[k:]]
    return left * remaining[0] / sum(remaining)


def _check_plan(sizes: Sequence[int], shares: Sequence[float] | None) -> list[float]:
    sizes = [int(s) for s in sizes]
    if not sizes:
        raise ProgressiveError("sizes: give at least one image size, e.g. [48, 96, 192]")
    for small, large in zip(sizes, sizes[1:], strict=False):
        if large <= small or large % small:
            raise ProgressiveError(
                f"sizes {sizes}: each size must be a multiple of the one before (e.g. 48, 96, 192)"
            )
    shares = [1.0] * len(sizes) if shares is None else [float(s) for s in shares]
    if len(shares) != len(sizes) or any(s <= 0 for s in shares):
        raise ProgressiveError(f"shares {shares}: one positive share per size ({len(sizes)} sizes)")
    return shares


def train_progressive(
    run: Run,
    core: keras.Model,
    data: Dataset,
    sizes: Sequence[int],
    *,
    budget_s: float,
    shares: Sequence[float] | None = None,
    max_epochs: int = 100,
    filters: int = 32,
    batch_size: int = 32,
    augment: dict | None = None,
    optimizer: str = "sgd",
    learning_rate: float = 0.05,
    momentum: float = 0.0,
    seed: int | None = None,
    evaluate_growth: bool = True,
) -> tuple[keras.Model, list[Stage]]:
    """Train `core` (its input: the first size) on `data` shrunk to `sizes[0]`, grow it, train at
    the next size, and so on; `data` is at the last size. Each stage trains up to `max_epochs`
    within its part of `budget_s` (see `stage_budgets`). With `evaluate_growth`, the test
    accuracy just before and just after each growth is measured (outside the budget) and kept
    in the stage's `info`. Returns the last model and the stages."""
    shares = _check_plan(sizes, shares)
    sizes = [int(s) for s in sizes]
    if tuple(core.input_shape[1:3]) != (sizes[0], sizes[0]):
        raise ProgressiveError(
            f"the core takes {core.input_shape[1:3]} inputs, not the first size {sizes[0]}"
        )
    if data.x_train.shape[1:3] != (sizes[-1], sizes[-1]):
        raise ProgressiveError(
            f"data is {data.x_train.shape[1:3]}, not the last size {sizes[-1]}: load it at "
            f"size={sizes[-1]}"
        )
    model, stages, used = core, [], []
    before = None
    for i, size in enumerate(sizes):
        stage_data = downsample_dataset(data, sizes[-1] // size)
        train, val, _ = pipelines(stage_data, batch_size=batch_size, augment=augment, seed=seed)
        test = (stage_data.x_test, stage_data.y_test, batch_size)
        info: dict[str, Any] = {"size": size}
        if i:
            model = grow(model, size // sizes[i - 1], filters=filters)
            if evaluate_growth:
                info["accuracy_before_growth"] = before
                info["accuracy_after_growth"] = _accuracy(model, *test)
        stage = train_stage(
            run, model, train, val, epochs=max_epochs, optimizer=optimizer,
            learning_rate=learning_rate, momentum=momentum,
            epoch_offset=sum(s.epochs for s in stages),
            budget_s=stage_budgets(budget_s, shares, used), name=f"{size} px",
        )  # fmt: skip
        stage.info.update(info)
        if evaluate_growth and i + 1 < len(sizes):
            before = _accuracy(model, *test)
        stages.append(stage)
        used.append(stage.seconds)
    return model, stages


def _accuracy(model: keras.Model, images: np.ndarray, labels: np.ndarray, batch_size: int) -> float:
    """Top-1 accuracy of `model` on test images and labels."""
    if not len(images):
        return float("nan")
    predicted = np.asarray(model.predict(images, batch_size=batch_size, verbose=0)).argmax(axis=1)
    return float(np.mean(predicted == np.asarray(labels)))


def scratch_model(core: keras.Model, sizes: Sequence[int], *, filters: int = 32) -> keras.Model:
    """The last stage's network built at once from a fresh `core` (`grow` applied for every size
    after the first), to train from scratch at the largest size: the same layers, weights fresh."""
    _check_plan(sizes, None)
    sizes = [int(s) for s in sizes]
    model = core
    for small, large in zip(sizes, sizes[1:], strict=False):
        model = grow(model, large // small, filters=filters)
    return model


__all__ = [
    "ProgressiveError",
    "cores",
    "downsample",
    "downsample_dataset",
    "grow",
    "scratch_model",
    "stage_budgets",
    "train_progressive",
]
