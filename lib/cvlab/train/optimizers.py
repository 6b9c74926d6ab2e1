"""Optimizers by name with their hyperparameters, so a grid YAML can choose one."""

from __future__ import annotations

from typing import Any

from cvlab.errors import UnknownNameError

OPTIMIZERS = {
    "sgd": "SGD",
    "adam": "Adam",
    "rmsprop": "RMSprop",
    "adagrad": "Adagrad",
    "adadelta": "Adadelta",
    "nadam": "Nadam",
    "adamw": "AdamW",
}


def make_optimizer(name: str, learning_rate: Any = 0.01, **options: Any):
    """A Keras optimizer: `make_optimizer("sgd", 0.01, momentum=0.9, nesterov=True)`.

    `learning_rate` may be a number or a Keras learning-rate schedule.
    """
    import keras

    try:
        cls = getattr(keras.optimizers, OPTIMIZERS[name.lower()])
    except KeyError:
        raise UnknownNameError("optimizer", name, list(OPTIMIZERS)) from None
    return cls(learning_rate=learning_rate, **options)
