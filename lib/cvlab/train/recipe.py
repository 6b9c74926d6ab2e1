"""One training recipe for the book's classification chapters: data pipeline, optimizer and
schedule, checkpoints, history, evaluation — so the GoogLeNet and ResNet notebooks stay thin."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import numpy as np

from cvlab.data.dataset import Dataset
from cvlab.data.hdf5 import HDF5DatasetReader
from cvlab.data.images import preprocessing_of
from cvlab.data.pipeline import make_pipeline
from cvlab.image_prep import compute_rgb_means, load_means, predict_ten_crop, subtract_means
from cvlab.train.evaluation import evaluate_classifier, score_predictions
from cvlab.train.optimizers import make_optimizer
from cvlab.train.precision import compile_options
from cvlab.train.schedules import schedule_callback


@dataclass
class TrainingConfig:
    """What a notebook's parameters cell sets for `train_classifier`."""

    optimizer: str = "sgd"
    learning_rate: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False
    schedule: dict[str, Any] | None = None
    epochs: int = 10
    batch_size: int = 64
    augment: dict[str, Any] | None = None
    mean_subtraction: bool = True
    checkpoint_every: int = 1
    # False, True (= float16), "float16" or "bfloat16": applied by `configure_precision` before
    # the model is built
    mixed_precision: bool | str = False
    # XLA: jit_compile on TensorFlow, torch.compile on PyTorch; JAX always compiles its steps
    xla: bool = False
    ten_crop: int | None = None
    seed: int = 42


def _optimizer(config: TrainingConfig):
    options: dict[str, Any] = {}
    if config.optimizer.lower() == "sgd":
        options = {"momentum": config.momentum, "nesterov": config.nesterov}
    return make_optimizer(config.optimizer, config.learning_rate, **options)


def _compile_and_fit(run, model, config: TrainingConfig, train, val, num_classes: int) -> None:
    """Compile (unless the model was resumed with its optimizer) and fit with the run's
    callbacks: history, epoch backups, the learning-rate schedule."""
    import keras

    from cvlab.train.checkpoints import checkpoint_callbacks  # lazy: tensorflow

    metrics: list[Any] = ["accuracy"]
    if num_classes >= 5:
        metrics.append(keras.metrics.SparseTopKCategoricalAccuracy(k=5, name="rank5"))
    optimizer = getattr(model, "optimizer", None)
    if optimizer is not None:  # a model resumed from an earlier run keeps its optimizer state
        optimizer.learning_rate.assign(config.learning_rate)
    else:
        optimizer = _optimizer(config)
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=metrics,
        **compile_options(config.xla, backend=keras.config.backend()),
    )
    callbacks = [
        run.keras_callback(),
        *checkpoint_callbacks(run.run_dir, every=config.checkpoint_every),
    ]
    scheduler = schedule_callback(config.schedule, config.learning_rate, config.epochs)
    if scheduler is not None:
        callbacks.append(scheduler)
    model.fit(
        train, validation_data=val, epochs=config.epochs, callbacks=callbacks, verbose=0,
        shuffle=False,  # the pipeline shuffles; Keras would only warn that it cannot
    )  # fmt: skip


def train_classifier(run, data: Dataset, model, config: TrainingConfig) -> dict[str, Any]:
    """Train `model` on `data` as the book does and evaluate it on the test split.

    Mean subtraction uses the training split's RGB means; augmentation runs only in training;
    the schedule sets the rate each epoch; a backup every `checkpoint_every` epochs lets a killed
    run resume where it stopped; rank-1/rank-5, the classification report and the confusion
    matrix go to the run record. Returns the evaluation metrics.
    """

    means = (
        compute_rgb_means(data.x_train)
        if config.mean_subtraction and data.x_train.shape[-1] == 3
        else None
    )
    if means is not None:
        run.log_params(rgb_means={k: round(v, 6) for k, v in means.items()})
    run.log_preprocessing(preprocessing_of(data, means=means, recipe="train_classifier"))
    train = make_pipeline(
        data.x_train, data.y_train, batch_size=config.batch_size, training=True,
        augment=config.augment, means=means, seed=config.seed,
    )  # fmt: skip
    x_val, y_val = (data.x_val, data.y_val) if len(data.x_val) else (data.x_test, data.y_test)
    val = make_pipeline(x_val, y_val, batch_size=config.batch_size, means=means)

    _compile_and_fit(run, model, config, train, val, data.num_classes)

    x_test = subtract_means(data.x_test, means) if means is not None else data.x_test
    return evaluate_classifier(
        model, np.asarray(x_test), data.y_test, data.class_names, run=run,
        batch_size=config.batch_size, ten_crop_size=config.ten_crop,
    )  # fmt: skip


def _ten_crop_probabilities(model, test_file, means, patch: int, batch_size: int):
    """10-crop probabilities over an HDF5 test split, read in blocks so memory stays flat."""

    probs, labels = [], []
    with HDF5DatasetReader(test_file) as reader:
        for images, block_labels in reader.batches(256):
            centred = subtract_means(images, means) if means is not None else images
            probs.append(predict_ten_crop(model, centred, patch, batch_size=batch_size))
            labels.append(np.asarray(block_labels))
    return np.concatenate(probs), np.concatenate(labels)


def train_classifier_hdf5(
    run, files: dict[str, Any], model, config: TrainingConfig, *, patch: int
) -> dict[str, Any]:
    """The book's chapter-10 recipe on HDF5 files (`build_hdf5` output: train/val/test + mean):
    train on random `patch`×`patch` crops with the training means subtracted (PatchPreprocessor,
    MeanPreprocessor) and augmentation; validate on whole images resized to `patch`
    (SimplePreprocessor); evaluate the test split twice: resized (`rank1`, ...) and with 10-crop
    oversampling (`crops_rank1`, ...), logging `oversampling_gain` = the difference in rank-1.
    """

    means = load_means(files["mean"]) if config.mean_subtraction else None
    if means is not None:
        run.log_params(rgb_means={k: round(float(means[k]), 4) for k in ("R", "G", "B")})
    with HDF5DatasetReader(files["train"]) as reader:
        class_names = reader.class_names
        stored = reader.data.shape[1:]
        integer_pixels = np.issubdtype(reader.data.dtype, np.integer)
        aspect = bool(json.loads(reader.attrs.get("meta") or "{}").get("aspect", False))
    run.log_preprocessing(
        size=patch, stored_size=stored[:2], channels=stored[-1], class_names=class_names,
        aspect=aspect, scale="0-255" if integer_pixels and means is not None else "0-1",
        means=means, recipe="train_classifier_hdf5",
    )  # fmt: skip
    common = {"batch_size": config.batch_size, "means": means}
    train = make_pipeline(
        files["train"], training=True, crop=patch, augment=config.augment, seed=config.seed,
        **common,
    )  # fmt: skip
    val = make_pipeline(files["val"], resize=patch, **common)
    _compile_and_fit(run, model, config, train, val, len(class_names))

    test = make_pipeline(files["test"], resize=patch, **common)
    resized = evaluate_classifier(model, test, None, class_names, run=run)
    probs, labels = _ten_crop_probabilities(model, files["test"], means, patch, config.batch_size)
    crops = score_predictions(probs, labels, class_names, run=run, prefix="crops_")
    gain = crops["rank1"] - resized["rank1"]
    run.log_metrics(oversampling_gain=gain)
    return {"resized": resized, "crops": crops, "oversampling_gain": gain}
