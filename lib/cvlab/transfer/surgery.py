"""Network surgery for fine-tuning (Practitioner Bundle, ch. 5): a new head on a pretrained body,
the body frozen while the head warms up, then its top N blocks unfrozen, trained stage by stage.

    body = cvlab.models.build("efficientnet_lite0", include_top=False, input_shape=(224, 224, 3))
    model = attach_head(body, 17, pooling="flatten", units=(256,), dropout=0.5)  # FCHeadNet
    freeze(body)                                       # warm-up: only the head learns
    warm = train_stage(run, model, train, val, optimizer="rmsprop", learning_rate=1e-3, epochs=25)
    unfreeze_top(body, 3)                              # top, block7, block6 (VGG16: N=1)
    tune = train_stage(run, model, train, val, learning_rate=1e-3, epochs=100,
                       epoch_offset=warm.epochs)

**Blocks.** N counts blocks from the top of the body. A block is a run of layers whose names
share Keras's block prefix: `block1` ... `block5` in VGG16 (`block5_conv1`, `block5_pool`, ...),
and in EfficientNet-Lite0 (and keras.applications' EfficientNets) `stem`, `block1` ... `block7`
(one block per stage: `block6a_...` to `block6d_...` are block6) and `top` (the last 1×1
convolution); ResNet50's stages are `conv1` ... `conv5`. Layers before the first block (the
input, the built-in rescaling) form a block of their own, `input`. So N = 1 on VGG16 is
`block5`, exactly the book's `baseModel.layers[15:]`; on EfficientNet-Lite0 N = 1 is `top`,
N = 3 is `top`, `block7` and `block6`: every layer that works at the last resolution (7×7 at
224 px), which is what VGG16's block5 is to VGG16. `unit="layer"` counts layers instead, as the
book's index arithmetic does.

**Batch normalisation.** An unfrozen block's BatchNormalization layers stay frozen unless
`train_batchnorm=True`: in Keras 3 a non-trainable BN layer normalises with its ImageNet
statistics, which batches of a few dozen flowers would otherwise replace with noisy estimates.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from cvlab.data.pipeline import make_pipeline, map_images
from cvlab.errors import SurgeryError
from cvlab.figures import new_figure
from cvlab.models.applications import APPLICATIONS, OFFLINE_BACKBONE
from cvlab.models.options import l2
from cvlab.train.optimizers import make_optimizer

if TYPE_CHECKING:
    import keras

    from cvlab.data.dataset import Dataset
    from cvlab.runs.run import Run

HEAD_PREFIX = "head_"
INPUT_BLOCK = "input"
POOLINGS = ("flatten", "avg", "max")
# Keras's block prefixes: VGG `block5_conv1`, EfficientNet `block6a_expand_conv`, `stem_conv`,
# `top_conv`, ResNet50 `conv5_block3_out`. The block is the captured group.
BLOCK_PATTERN = r"^(stem|top|block\d+|conv\d+)(?:[a-z])?_"


# ------------------------------------------------------------------------------ the new head


def attach_head(
    body: keras.Model,
    classes: int,
    *,
    pooling: str = "flatten",
    units: Sequence[int] = (256,),
    dropout: float = 0.5,
    reg: float = 0.0,
) -> keras.Model:
    """The network surgery: a new, randomly initialised head on `body`'s output, as one model
    from the body's input to a softmax over `classes` (the body's layers are shared, not copied).

    `pooling` turns the body's feature maps into a vector: "flatten" (the book's FCHeadNet keeps
    every position: 7×7×512 = 25,088 numbers on VGG16), "avg" or "max" (global pooling: one
    number per channel). Then one FC → ReLU → DROPOUT per entry of `units` (the head's depth; ()
    goes straight to the softmax). The defaults are FCHeadNet: FLATTEN → FC 256 → DROPOUT 0.5.
    Head layers are named `head_*`.
    """
    import keras
    from keras import layers

    if pooling not in POOLINGS:
        raise SurgeryError(f"pooling must be one of {', '.join(POOLINGS)}, got {pooling!r}")
    if int(classes) < 2:
        raise SurgeryError(f"a classifier needs at least 2 classes, got {classes}")
    units = [int(u) for u in units]
    if any(u < 1 for u in units):
        raise SurgeryError(f"head units must be positive, got {units}")
    if not 0.0 <= dropout < 1.0:
        raise SurgeryError(f"dropout must be in [0, 1), got {dropout}")
    if len(body.outputs) != 1:
        raise SurgeryError(f"{body.name} has {len(body.outputs)} outputs; a head needs exactly one")
    features = body.outputs[0]
    if len(features.shape) != 4:
        raise SurgeryError(
            f"{body.name} ends in a {len(features.shape) - 1}-d output {tuple(features.shape[1:])}, "
            f"not feature maps: build it with include_top=False and pooling=None, and choose the "
            f"pooling here"
        )

    if pooling == "flatten":
        x = layers.Flatten(name=f"{HEAD_PREFIX}flatten")(features)
    elif pooling == "avg":
        x = layers.GlobalAveragePooling2D(name=f"{HEAD_PREFIX}avg_pool")(features)
    else:
        x = layers.GlobalMaxPooling2D(name=f"{HEAD_PREFIX}max_pool")(features)
    for i, width in enumerate(units, start=1):
        x = layers.Dense(
            width, activation="relu", kernel_regularizer=l2(reg), name=f"{HEAD_PREFIX}fc{i}"
        )(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"{HEAD_PREFIX}dropout{i}")(x)
    outputs = layers.Dense(
        int(classes), activation="softmax", kernel_regularizer=l2(reg), name=f"{HEAD_PREFIX}softmax"
    )(x)
    return keras.Model(body.inputs, outputs, name=f"{body.name}_new_head")


def head_layers(model: keras.Model) -> list:
    """The layers `attach_head` added (named `head_*`)."""
    return [layer for layer in model.layers if layer.name.startswith(HEAD_PREFIX)]


# ------------------------------------------------------------------------------ blocks


def blocks(body: keras.Model, pattern: str = BLOCK_PATTERN) -> dict[str, list]:
    """The body's layers grouped into blocks, bottom to top (see the module doc).

    A layer whose name the pattern does not match joins the block before it; those before the
    first match form the block `input`. Raises `SurgeryError` when fewer than two blocks are
    recognised (a model whose layer names follow another scheme: pass `pattern`, or count
    layers with `unfreeze_top(..., unit="layer")`).
    """
    regex = re.compile(pattern)
    groups: dict[str, list] = {}
    current = INPUT_BLOCK
    for layer in body.layers:
        match = regex.match(layer.name)
        if match:
            current = match.group(1)
        groups.setdefault(current, []).append(layer)
    named = [name for name in groups if name != INPUT_BLOCK]
    if len(named) < 2:
        raise SurgeryError(
            f"found {len(named)} block(s) in {body.name}'s layer names with pattern {pattern!r}; "
            f"pass a pattern whose first group names the block, or use unit='layer'"
        )
    return groups


def _is_batchnorm(layer) -> bool:
    import keras

    return isinstance(layer, keras.layers.BatchNormalization)


def freeze(model: keras.Model) -> None:
    """Make every layer of `model` non-trainable (the book's warm-up: the body is frozen)."""
    model.trainable = True  # so that per-layer flags decide; then switch every layer off
    for layer in model.layers:
        layer.trainable = False


def unfreeze_top(
    body: keras.Model,
    n: int | str,
    *,
    unit: str = "block",
    train_batchnorm: bool = False,
    pattern: str = BLOCK_PATTERN,
) -> list[str]:
    """Make the top `n` blocks (or layers, `unit="layer"`) of `body` trainable and everything
    below them frozen; returns the names of the layers now trainable. `n` = 0 leaves the body
    frozen, `n` = "all" unfreezes all of it. BatchNormalization layers stay frozen unless
    `train_batchnorm`. Compile the model again afterwards: Keras fixes what it trains when
    compiling.
    """
    if unit not in ("block", "layer"):
        raise SurgeryError(f"unit must be 'block' or 'layer', got {unit!r}")
    groups = blocks(body, pattern) if unit == "block" else None
    total = len(groups) if groups is not None else len(body.layers)
    if n == "all":
        n = total
    if isinstance(n, bool) or not isinstance(n, int | np.integer) or not 0 <= n <= total:
        raise SurgeryError(
            f"n must be an integer from 0 to {total} ({unit}s in {body.name}) or 'all', got {n!r}"
        )
    if groups is not None:
        chosen = [layer for name in list(groups)[len(groups) - n :] for layer in groups[name]]
    else:
        chosen = list(body.layers[len(body.layers) - n :])
    chosen_ids = {id(layer) for layer in chosen}
    freeze(body)
    unfrozen = []
    for layer in body.layers:
        if id(layer) in chosen_ids and (train_batchnorm or not _is_batchnorm(layer)):
            layer.trainable = True
            unfrozen.append(layer.name)
    return unfrozen


def block_table(body: keras.Model, pattern: str = BLOCK_PATTERN):
    """One row per block, bottom to top: its layers, first and last layer index, parameters and
    how many of them are trainable now (a pandas DataFrame; the book's inspect_model.py, grouped)."""
    import pandas as pd

    index = {id(layer): i for i, layer in enumerate(body.layers)}
    rows = []
    groups = blocks(body, pattern)
    for position, (name, members) in enumerate(groups.items()):
        params = sum(int(np.prod(w.shape)) for layer in members for w in layer.weights)
        trainable = sum(int(np.prod(w.shape)) for layer in members for w in layer.trainable_weights)
        rows.append(
            {
                "block": name,
                "n_from_top": len(groups) - position,
                "layers": len(members),
                "indexes": f"{index[id(members[0])]}-{index[id(members[-1])]}",
                "params": params,
                "trainable_params": trainable,
            }
        )
    return pd.DataFrame(rows)


# ------------------------------------------------------------------------------ input pipelines


def backbone_input(name: str | None) -> Callable[[Any], Any]:
    """A tensor function from cvlab's [0, 1] images to backbone `name`'s input: 0-255 pixels
    through its keras.applications `preprocess_input` (VGG16: BGR minus the ImageNet means), or
    0-255 as they are for networks that normalise inside (efficientnet_lite0, efficientnet_b0).
    `None`: the images as they are (a network trained from scratch on [0, 1] inputs)."""
    if name is None:
        return lambda x: x
    import importlib

    if name == OFFLINE_BACKBONE:
        return lambda x: x * 255.0
    if name not in APPLICATIONS:
        raise SurgeryError(
            f"no input scaling known for backbone {name!r}; choose one of "
            f"{', '.join(sorted([*APPLICATIONS, OFFLINE_BACKBONE]))}, or None for [0, 1] inputs"
        )
    module = APPLICATIONS[name].preprocess_module
    if not module:
        return lambda x: x * 255.0
    preprocess = importlib.import_module(f"keras.applications.{module}").preprocess_input
    return lambda x: preprocess(x * 255.0)


def pipelines(
    data: Dataset,
    *,
    batch_size: int = 32,
    augment: dict | None = None,
    preprocess: Callable[[Any], Any] | None = None,
    seed: int | None = None,
):
    """(train, val, test) pipelines over `data` (`make_pipeline`'s: tf.data under TensorFlow, a
    PyDataset under JAX/PyTorch): training shuffled and augmented (on the [0, 1] images), all
    mapped through `preprocess` (e.g. `backbone_input(name)`). Without a validation split, val
    is the test split, as the book validates on its test images (no choice is made on it: the
    reported number is the last epoch's model)."""

    def mapped(ds):
        return ds if preprocess is None else map_images(ds, preprocess)

    train = make_pipeline(
        data.x_train, data.y_train, batch_size=batch_size, training=True, augment=augment,
        seed=seed,
    )  # fmt: skip
    test = mapped(make_pipeline(data.x_test, data.y_test, batch_size=batch_size))
    val = (
        mapped(make_pipeline(data.x_val, data.y_val, batch_size=batch_size))
        if len(data.x_val)
        else test
    )
    return mapped(train), val, test


# ------------------------------------------------------------------------------ staged training


def budget_callback(seconds: float, clock: Callable[[], float] = time.perf_counter):
    """A Keras callback that ends training before an epoch that would not finish within
    `seconds` of wall-clock time, judged by the mean epoch so far (the first epoch always runs).
    Its `stopped` says whether it cut training short, `epoch_ends` when each epoch ended."""
    import keras

    class WallClockBudget(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.seconds, self.clock = float(seconds), clock
            self.start, self.epoch_ends, self.stopped = 0.0, [], False

        def on_train_begin(self, logs=None):
            self.start, self.epoch_ends, self.stopped = self.clock(), [], False

        def on_epoch_end(self, epoch, logs=None):
            elapsed = self.clock() - self.start
            self.epoch_ends.append(elapsed)
            if elapsed + elapsed / len(self.epoch_ends) > self.seconds:
                self.stopped = True
                self.model.stop_training = True

    if seconds < 0:
        raise SurgeryError(f"a time budget cannot be negative, got {seconds} s")
    return WallClockBudget()


@dataclass
class Stage:
    """What one stage of training did: its epochs in the run's history, seconds, per-epoch logs."""

    name: str
    first_epoch: int  # 1-based, in the run's history
    epochs: int
    seconds: float
    history: dict[str, list[float]] = field(default_factory=dict)
    stopped_by_budget: bool = False
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def last_epoch(self) -> int:
        return self.first_epoch + self.epochs - 1


def compile_stage(model: keras.Model, optimizer: str, learning_rate: float, momentum: float = 0.0):
    """Compile `model` with a fresh optimizer (sparse cross-entropy, accuracy, and rank-5 from 5
    classes up): each stage starts its own, as the book switches RMSprop → SGD after warm-up."""
    import keras

    options = {"momentum": momentum} if optimizer.lower() == "sgd" else {}
    metrics: list[Any] = ["accuracy"]
    if model.output_shape[-1] >= 5:
        metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="rank5"))
    model.compile(
        optimizer=make_optimizer(optimizer, learning_rate, **options),
        loss="sparse_categorical_crossentropy",
        metrics=metrics,
    )


def train_stage(
    run: Run,
    model: keras.Model,
    train,
    val,
    *,
    epochs: int,
    optimizer: str = "sgd",
    learning_rate: float = 1e-3,
    momentum: float = 0.0,
    epoch_offset: int = 0,
    budget_s: float | None = None,
    name: str = "stage",
) -> Stage:
    """Compile `model` afresh (`compile_stage`) and fit it for up to `epochs`, logging every
    epoch to `run` numbered after `epoch_offset` (so stages make one history), stopping early
    when `budget_s` seconds of wall-clock time would be exceeded. Returns the `Stage`."""
    if epochs < 1:
        raise SurgeryError(f"a stage needs at least one epoch, got {epochs}")
    compile_stage(model, optimizer, learning_rate, momentum)
    callbacks: list[Any] = [run.keras_callback(epoch_offset=epoch_offset)]
    budget = budget_callback(budget_s) if budget_s is not None else None
    if budget is not None:
        callbacks.append(budget)
    start = time.perf_counter()
    history = model.fit(
        train, validation_data=val, epochs=int(epochs), callbacks=callbacks, verbose=0,
        shuffle=False,  # the pipeline shuffles; Keras would only warn that it cannot
    )  # fmt: skip
    seconds = time.perf_counter() - start
    logs = {key: [float(v) for v in values] for key, values in history.history.items()}
    done = len(next(iter(logs.values()), []))
    return Stage(
        name=name,
        first_epoch=epoch_offset + 1,
        epochs=done,
        seconds=seconds,
        history=logs,
        stopped_by_budget=bool(budget is not None and budget.stopped),
    )


def stage_figure(stages: Sequence[Stage], title: str = ""):
    """Loss and accuracy per epoch (training solid, validation dashed) across `stages`, each in
    its own colour and labelled with its name and seconds: one figure for a staged training."""

    fig, axes = new_figure(1, 2, figsize=(12, 4.2))
    colors = ["tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown"]
    for i, stage in enumerate(stages):
        color = colors[i % len(colors)]
        epochs = np.arange(stage.first_epoch, stage.first_epoch + stage.epochs)
        label = f"{stage.name} ({stage.epochs} ep, {stage.seconds:.0f} s)"
        for ax, key in zip(axes[0], ("loss", "accuracy"), strict=True):
            for prefix, style in (("", "-"), ("val_", "--")):
                if f"{prefix}{key}" in stage.history:
                    ax.plot(
                        epochs, stage.history[f"{prefix}{key}"], color=color, linestyle=style,
                        marker="o", markersize=2.5, label=f"{label} {prefix.strip('_') or 'train'}",
                    )  # fmt: skip
            if i:
                ax.axvline(stage.first_epoch - 0.5, color="grey", linewidth=0.8, linestyle=":")
    for ax, key in zip(axes[0], ("loss", "accuracy"), strict=True):
        ax.set_xlabel("epoch")
        ax.set_ylabel(key)
        ax.grid(alpha=0.3)
    axes[0][1].legend(fontsize=7, loc="lower right")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


__all__ = [
    "BLOCK_PATTERN",
    "Stage",
    "SurgeryError",
    "attach_head",
    "backbone_input",
    "block_table",
    "blocks",
    "budget_callback",
    "compile_stage",
    "freeze",
    "head_layers",
    "pipelines",
    "stage_figure",
    "train_stage",
    "unfreeze_top",
]
