"""One training recipe for the book's classification chapters: data pipeline, optimizer and
schedule, checkpoints, history, evaluation — so the GoogLeNet and ResNet notebooks stay thin."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from cvlab.data.dataset import Dataset
from cvlab.data.pipeline import make_pipeline
from cvlab.data.preprocess import compute_rgb_means, subtract_means


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
    mixed_precision: bool = False  # applied by `configure_precision` before the model is built
    xla: bool = False
    ten_crop: int | None = None
    seed: int = 42


def _optimizer(config: TrainingConfig):
    from cvlab.train.optimizers import make_optimizer

    options: dict[str, Any] = {}
    if config.optimizer.lower() == "sgd":
        options = {"momentum": config.momentum, "nesterov": config.nesterov}
    return make_optimizer(config.optimizer, config.learning_rate, **options)


def train_classifier(run, data: Dataset, model, config: TrainingConfig) -> dict[str, Any]:
    """Train `model` on `data` as the book does and evaluate it on the test split.

    Mean subtraction uses the training split's RGB means; augmentation runs only in training;
    the schedule sets the rate each epoch; a backup every `checkpoint_every` epochs lets a killed
    run resume where it stopped; rank-1/rank-5, the classification report and the confusion
    matrix go to the run record. Returns the evaluation metrics.
    """
    import keras

    from cvlab.train.checkpoints import checkpoint_callbacks
    from cvlab.train.evaluation import evaluate_classifier
    from cvlab.train.precision import compile_options
    from cvlab.train.schedules import schedule_callback

    means = (
        compute_rgb_means(data.x_train)
        if config.mean_subtraction and data.x_train.shape[-1] == 3
        else None
    )
    if means is not None:
        run.log_params(rgb_means={k: round(v, 6) for k, v in means.items()})
    train = make_pipeline(
        data.x_train, data.y_train, batch_size=config.batch_size, training=True,
        augment=config.augment, means=means, seed=config.seed,
    )  # fmt: skip
    x_val, y_val = (data.x_val, data.y_val) if len(data.x_val) else (data.x_test, data.y_test)
    val = make_pipeline(x_val, y_val, batch_size=config.batch_size, means=means)

    metrics: list[Any] = ["accuracy"]
    if data.num_classes >= 5:
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
        **compile_options(config.xla),
    )
    callbacks = [
        run.keras_callback(),
        *checkpoint_callbacks(run.run_dir, every=config.checkpoint_every),
    ]
    scheduler = schedule_callback(config.schedule, config.learning_rate, config.epochs)
    if scheduler is not None:
        callbacks.append(scheduler)
    model.fit(train, validation_data=val, epochs=config.epochs, callbacks=callbacks, verbose=0)

    x_test = subtract_means(data.x_test, means) if means is not None else data.x_test
    return evaluate_classifier(
        model, np.asarray(x_test), data.y_test, data.class_names, run=run,
        batch_size=config.batch_size, ten_crop_size=config.ten_crop,
    )  # fmt: skip
