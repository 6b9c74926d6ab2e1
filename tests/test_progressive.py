"""Progressive resizing: a network trained on small images grows into one for larger images that
contains it, layers and weights, and starts out computing what it computed."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest

import cvlab
from cvlab.data.dataset import Dataset
from cvlab.transfer.progressive import (
    ProgressiveError,
    cores,
    downsample,
    downsample_dataset,
    grow,
    scratch_model,
    stage_budgets,
    train_progressive,
)


def core_model(side: int = 8, classes: int = 5) -> keras.Model:
    keras.utils.set_random_seed(1)
    return cvlab.models.build("minivggnet", input_shape=(side, side, 3), classes=classes)


def random_data(n: int = 30, side: int = 32, classes: int = 5) -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.random((n, side, side, 3), dtype=np.float32)
    y = np.arange(n) % classes
    return Dataset("random", x[:20], y[:20], x[:0], y[:0], x[20:], y[20:], list("abcde"))


def test_downsample_averages_blocks():
    x = np.arange(16, dtype=np.float32).reshape(1, 4, 4, 1)
    np.testing.assert_array_equal(downsample(x, 2)[0, :, :, 0], [[2.5, 4.5], [10.5, 12.5]])
    assert downsample(x, 4)[0, 0, 0, 0] == pytest.approx(7.5)
    assert downsample(x, 1) is x and downsample(x, 2).dtype == np.float32
    with pytest.raises(ProgressiveError, match="cannot be shrunk by 3"):
        downsample(x, 3)
    small = downsample_dataset(random_data(), 4)
    assert small.x_train.shape == (20, 8, 8, 3) and small.x_test.shape == (10, 8, 8, 3)


def test_the_grown_model_contains_the_smaller_models_weights_after_transfer():
    core = core_model()
    data = downsample_dataset(random_data(), 4)
    core.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    core.fit(data.x_train, data.y_train, epochs=1, batch_size=10, verbose=0)  # a trained core
    trained = [np.array(w) for w in core.get_weights()]

    model16 = grow(core)
    assert model16.input_shape == (None, 16, 16, 3) and model16.name == "minivggnet_16px"
    assert model16.get_layer("minivggnet") is core  # the layers themselves, not copies
    inner = model16.get_layer("minivggnet").get_weights()
    assert all(np.array_equal(a, b) for a, b in zip(inner, trained, strict=True))
    grown_ids = {id(v) for v in model16.weights}
    assert all(id(v) in grown_ids for v in core.weights)
    assert len(model16.weights) > len(core.weights)  # plus the new stem

    model32 = grow(model16)
    assert model32.name == "minivggnet_32px"
    assert cores(model32) == [model16, core]


def test_a_grown_model_starts_out_computing_its_core_on_the_shrunk_image():
    core = core_model()
    model32 = grow(grow(core))
    x = np.random.default_rng(2).random((6, 32, 32, 3), dtype=np.float32)
    np.testing.assert_allclose(
        model32.predict(x, verbose=0), core.predict(downsample(x, 4), verbose=0), atol=1e-5
    )


def test_training_the_grown_model_trains_the_stem_and_the_core_in_it(tmp_path):
    core = core_model()
    model16 = grow(core)
    data = downsample_dataset(random_data(), 2)
    before = {layer.name: [np.array(w) for w in layer.get_weights()] for layer in model16.layers}
    model16.compile(optimizer=keras.optimizers.SGD(0.1), loss="sparse_categorical_crossentropy")
    model16.fit(data.x_train, data.y_train, epochs=1, batch_size=10, verbose=0)
    for name in ("grow16_detail", "minivggnet"):
        after = model16.get_layer(name).get_weights()
        assert not all(np.array_equal(a, b) for a, b in zip(before[name], after, strict=True))

    path = tmp_path / "model.keras"
    model16.save(path)
    loaded = keras.models.load_model(path)
    assert [m.name for m in cores(loaded)] == ["minivggnet"]
    np.testing.assert_allclose(
        loaded.predict(data.x_test, verbose=0), model16.predict(data.x_test, verbose=0), atol=1e-6
    )


def test_stage_budgets_split_what_is_left_and_pass_unused_time_on():
    shares = [0.25, 0.25, 0.5]
    assert stage_budgets(600, shares, []) == pytest.approx(150)
    assert stage_budgets(600, shares, [100]) == pytest.approx(500 / 3)  # 50 s left unused
    assert stage_budgets(600, shares, [100, 300]) == pytest.approx(200)
    assert stage_budgets(600, shares, [400, 300]) == 0.0  # overspent: the last stage gets 1 epoch
    with pytest.raises(ProgressiveError, match="no next stage"):
        stage_budgets(600, shares, [1, 1, 1])


def test_plans_that_cannot_grow_say_why():
    data = random_data()
    with pytest.raises(ProgressiveError, match="multiple of the one before"):
        train_progressive(None, core_model(), data, [8, 12, 32], budget_s=1)
    with pytest.raises(ProgressiveError, match="one positive share per size"):
        train_progressive(None, core_model(), data, [8, 16, 32], budget_s=1, shares=[1, 1])
    with pytest.raises(ProgressiveError, match="not the last size 64"):
        train_progressive(None, core_model(16), data, [16, 32, 64], budget_s=1)
    with pytest.raises(ProgressiveError, match="not the first size 16"):
        train_progressive(None, core_model(), data, [16, 32], budget_s=1)


def test_scratch_model_is_the_last_stage_network_built_at_once():
    model = scratch_model(core_model(), [8, 16, 32])
    assert model.input_shape == (None, 32, 32, 3)
    assert [m.name for m in cores(model)] == ["minivggnet_16px", "minivggnet"]


@pytest.mark.slow
def test_train_progressive_runs_the_stages_in_order_as_one_history(tmp_path):
    run = cvlab.runs.start(tmp_path / "run", seed=0)
    model, stages = train_progressive(
        run, core_model(), random_data(), [8, 16, 32], budget_s=600, max_epochs=2, batch_size=10,
        seed=0,
    )  # fmt: skip
    assert model.input_shape == (None, 32, 32, 3)
    assert [s.name for s in stages] == ["8 px", "16 px", "32 px"]
    assert [(s.first_epoch, s.epochs) for s in stages] == [(1, 2), (3, 2), (5, 2)]
    assert pd.read_csv(run.artifact_path("history.csv"))["epoch"].tolist() == list(range(1, 7))
    for stage in stages[1:]:  # growing keeps what the smaller network predicted
        info = stage.info
        assert info["accuracy_after_growth"] == pytest.approx(info["accuracy_before_growth"])
