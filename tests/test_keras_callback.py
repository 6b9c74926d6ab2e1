"""The Keras callback of the run record: history every epoch, NaN loss stops training."""

from __future__ import annotations

import numpy as np
import pandas as pd

import cvlab
from cvlab.runs import RunRecord


def tiny_model(keras):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    return model


def test_callback_logs_each_epoch(in_tmp_project):
    import keras

    keras.utils.set_random_seed(0)
    x = np.random.rand(64, 4).astype("float32")
    y = np.random.randint(0, 3, 64)
    run = cvlab.runs.start()
    tiny_model(keras).fit(
        x,
        y,
        validation_split=0.25,
        epochs=3,
        batch_size=16,
        verbose=0,
        callbacks=[run.keras_callback()],
    )
    history = pd.read_csv(run.run_dir / "history.csv")
    assert list(history["epoch"]) == [1, 2, 3]
    assert {"loss", "val_loss", "accuracy", "val_accuracy", "lr"} <= set(history.columns)
    assert (run.run_dir / "curves.png").exists()
    assert run.finish().status == "ok"


def test_nan_loss_stops_training_and_diverges(in_tmp_project):
    import keras

    x = np.full((64, 4), np.nan, dtype="float32")  # any step on NaN inputs gives a NaN loss
    y = np.zeros(64, dtype="int64")
    run = cvlab.runs.start()
    history = tiny_model(keras).fit(
        x, y, epochs=5, batch_size=16, verbose=0, callbacks=[run.keras_callback()]
    )
    assert len(history.history["loss"]) == 1  # stopped in the first epoch, not after 5
    assert run.finish().status == "diverged"
    assert RunRecord.load(run.run_dir).status == "diverged"
