"""Network surgery for fine-tuning (book ch. 5): a new head, the body frozen for the warm-up, the
top N blocks unfrozen, training in stages that make one history."""

from __future__ import annotations

import keras
import numpy as np
import pandas as pd
import pytest

import cvlab
from cvlab.data.dataset import Dataset
from cvlab.models.heads import fchead
from cvlab.transfer.surgery import (
    INPUT_BLOCK,
    Stage,
    SurgeryError,
    attach_head,
    backbone_input,
    block_table,
    blocks,
    budget_callback,
    freeze,
    head_layers,
    pipelines,
    stage_figure,
    train_stage,
    unfreeze_top,
)


def tiny_body(side: int = 16) -> keras.Model:
    """Two VGG-named blocks (conv, batch norm, pool), small enough to train in a second."""
    inputs = keras.Input((side, side, 3), name="input_layer")
    x = inputs
    for b, filters in ((1, 4), (2, 6)):
        x = keras.layers.Conv2D(filters, 3, padding="same", name=f"block{b}_conv")(x)
        x = keras.layers.BatchNormalization(name=f"block{b}_bn")(x)
        x = keras.layers.MaxPooling2D(name=f"block{b}_pool")(x)
    return keras.Model(inputs, x, name="tiny")


def tiny_data(n: int = 24, side: int = 16, classes: int = 3) -> Dataset:
    rng = np.random.default_rng(0)
    x = rng.random((n, side, side, 3), dtype=np.float32)
    y = np.arange(n) % classes
    return Dataset("tiny", x, y, x[:0], y[:0], x[:9], y[:9], [f"c{i}" for i in range(classes)])


def snapshot(layers) -> dict[str, list[np.ndarray]]:
    """Every weight of each layer, trainable or not (batch-norm statistics included)."""
    return {layer.name: [np.array(w) for w in layer.get_weights()] for layer in layers}


def same(a: list[np.ndarray], b: list[np.ndarray]) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


# ------------------------------------------------------------------------------ the head


def test_default_head_is_the_books_fcheadnet_on_the_same_body():
    body = tiny_body()
    model = attach_head(body, 5)
    assert [layer.name for layer in head_layers(model)] == [
        "head_flatten",
        "head_fc1",
        "head_dropout1",
        "head_softmax",
    ]
    assert model.get_layer("head_fc1").units == 256
    assert model.get_layer("head_dropout1").rate == 0.5
    assert model.count_params() == fchead(body, 5).count_params()
    assert model.get_layer("block2_conv") is body.get_layer("block2_conv")  # shared, not copied
    assert model.output_shape == (None, 5)


def test_head_pooling_depth_and_dropout_are_choices():
    body = tiny_body()
    model = attach_head(body, 4, pooling="avg", units=(8, 7), dropout=0.0)
    assert [layer.name for layer in head_layers(model)] == [
        "head_avg_pool",
        "head_fc1",
        "head_fc2",
        "head_softmax",
    ]
    assert model.get_layer("head_fc1").kernel.shape == (6, 8)  # one number per channel
    flat = attach_head(body, 4, pooling="flatten", units=(8,), dropout=0.0)
    assert flat.get_layer("head_fc1").kernel.shape == (4 * 4 * 6, 8)  # every position
    direct = attach_head(body, 4, pooling="max", units=())
    assert [layer.name for layer in head_layers(direct)] == ["head_max_pool", "head_softmax"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"pooling": "mean"}, "pooling must be one of"),
        ({"dropout": 1.0}, "dropout must be in"),
        ({"units": (0,)}, "units must be positive"),
    ],
)
def test_bad_head_options_say_what_fits(options, message):
    with pytest.raises(SurgeryError, match=message):
        attach_head(tiny_body(), 3, **options)


def test_a_pooled_body_needs_the_pooling_chosen_in_the_head():
    body = tiny_body()
    pooled = keras.Model(body.inputs, keras.layers.GlobalAveragePooling2D()(body.output))
    with pytest.raises(SurgeryError, match="include_top=False and pooling=None"):
        attach_head(pooled, 3)


# ------------------------------------------------------------------------------ blocks


def test_vgg16_block5_is_the_books_layers_from_15_on():
    vgg = cvlab.models.build("vgg16", include_top=False, weights="none", input_shape=(32, 32, 3))
    assert list(blocks(vgg)) == [INPUT_BLOCK, "block1", "block2", "block3", "block4", "block5"]
    book = [layer.name for layer in vgg.layers[15:]]  # finetune_flowers17.py: layers[15:]
    assert unfreeze_top(vgg, 1) == book
    assert [layer.trainable for layer in vgg.layers] == [False] * 15 + [True] * 4
    assert unfreeze_top(vgg, 4, unit="layer") == book


def test_efficientnet_lite0_blocks_and_batchnorm_stays_frozen():
    body = cvlab.models.build(
        "efficientnet_lite0", include_top=False, weights="none", input_shape=(32, 32, 3)
    )
    names = [*(f"block{i}" for i in range(1, 8)), "top"]
    assert list(blocks(body)) == [INPUT_BLOCK, "stem", *names]
    top3 = unfreeze_top(body, 3)
    expected = [
        layer.name
        for layer in body.layers
        if layer.name.startswith(("block6", "block7", "top_"))
        and not isinstance(layer, keras.layers.BatchNormalization)
    ]
    assert top3 == expected and "top_conv" in top3 and "block6a_expand_conv" in top3
    trainable = {id(w) for w in body.trainable_weights}
    assert all(id(w) not in trainable for w in body.get_layer("top_bn").weights)
    assert all(id(w) not in trainable for w in body.get_layer("block5c_project_conv").weights)
    assert "top_bn" in unfreeze_top(body, 3, train_batchnorm=True)
    assert unfreeze_top(body, 0) == [] and body.trainable_weights == []
    assert len(unfreeze_top(body, "all", train_batchnorm=True)) == len(body.layers)
    table = block_table(body)
    assert isinstance(table, pd.DataFrame) and table["block"].tolist()[-1] == "top"
    assert table["params"].sum() == body.count_params()
    for bad in (11, -1, 2.5, True):
        with pytest.raises(SurgeryError, match="n must be an integer from 0 to 10"):
            unfreeze_top(body, bad)


def test_a_model_without_block_names_asks_for_a_pattern_or_layers():
    inputs = keras.Input((4,))
    model = keras.Model(inputs, keras.layers.Dense(2)(keras.layers.Dense(3)(inputs)))
    with pytest.raises(SurgeryError, match="unit='layer'"):
        unfreeze_top(model, 1)
    assert len(unfreeze_top(model, 1, unit="layer")) == 1


# ------------------------------------------------------------------------------ training


def test_frozen_layers_do_not_change_during_warm_up_and_unfrozen_ones_do(tmp_path):
    run = cvlab.runs.start(tmp_path / "run", seed=0)
    body = tiny_body()
    model = attach_head(body, 3, pooling="avg", units=(8,), dropout=0.0)
    freeze(body)
    train, val, _ = pipelines(tiny_data(), batch_size=8, seed=0)

    before = snapshot(model.layers)
    warm = train_stage(
        run, model, train, val, epochs=2, optimizer="rmsprop", learning_rate=0.01, name="warm-up"
    )
    after = snapshot(model.layers)
    for layer in body.layers:  # kernels, biases and batch-norm statistics alike
        assert same(before[layer.name], after[layer.name]), layer.name
    for layer in head_layers(model):
        if layer.weights:
            assert not same(before[layer.name], after[layer.name]), layer.name
    assert (warm.first_epoch, warm.epochs, warm.last_epoch) == (1, 2, 2)
    assert len(warm.history["val_accuracy"]) == 2 and not warm.stopped_by_budget

    assert unfreeze_top(body, 1) == ["block2_conv", "block2_pool"]  # block2_bn stays frozen
    tune = train_stage(
        run, model, train, val, epochs=1, learning_rate=0.1, momentum=0.9,
        epoch_offset=warm.epochs, name="fine-tune",
    )  # fmt: skip
    final = snapshot(model.layers)
    assert not same(after["block2_conv"], final["block2_conv"])
    for name in ("block1_conv", "block1_bn", "block2_bn"):
        assert same(after[name], final[name]), name
    assert tune.first_epoch == 3
    assert pd.read_csv(run.artifact_path("history.csv"))["epoch"].tolist() == [1, 2, 3]
    assert type(model.optimizer).__name__ == "SGD"  # each stage compiles its own optimizer


def test_a_stage_stops_at_its_wall_clock_budget(tmp_path):
    run = cvlab.runs.start(tmp_path / "run", seed=0)
    model = attach_head(tiny_body(), 3, pooling="avg", units=())
    train, val, _ = pipelines(tiny_data(), batch_size=8, seed=0)
    stage = train_stage(run, model, train, val, epochs=5, budget_s=0)
    assert stage.epochs == 1 and stage.stopped_by_budget


def test_budget_callback_stops_before_the_epoch_that_would_overrun():
    now = [0.0]
    callback = budget_callback(3.5, clock=lambda: now[0])

    class Model:
        stop_training = False

    callback.set_model(Model())
    callback.on_train_begin()
    for epoch in range(5):
        now[0] += 1.0  # every epoch takes one second
        callback.on_epoch_end(epoch)
        if callback.model.stop_training:
            break
    # after 3 epochs (3 s), a 4th would end at 4 s > 3.5 s
    assert epoch == 2 and callback.stopped and callback.epoch_ends == [1.0, 2.0, 3.0]
    with pytest.raises(SurgeryError, match="cannot be negative"):
        budget_callback(-1)


def test_backbone_input_maps_unit_images_to_each_backbones_scale():
    x = np.random.default_rng(1).random((2, 4, 4, 3), dtype=np.float32)
    lite = np.asarray(backbone_input("efficientnet_lite0")(x))
    np.testing.assert_allclose(lite, x * 255.0, rtol=1e-6)
    vgg = np.asarray(backbone_input("vgg16")(keras.ops.convert_to_tensor(x)))
    expected = keras.applications.vgg16.preprocess_input(x * 255.0)
    np.testing.assert_allclose(vgg, expected, rtol=1e-5, atol=1e-4)
    assert backbone_input(None)(x) is x
    with pytest.raises(SurgeryError, match="no input scaling known"):
        backbone_input("alexnet")


def test_pipelines_validate_on_test_without_a_validation_split():
    data = tiny_data()
    train, val, test = pipelines(data, batch_size=5, preprocess=lambda x: x * 2.0)
    assert val is test
    images, labels = next(iter(test))
    np.testing.assert_allclose(np.asarray(images), data.x_test[:5] * 2.0, rtol=1e-6)
    assert np.asarray(labels).tolist() == data.y_test[:5].tolist()
    assert sum(len(y) for _, y in train) == len(data.x_train)


def test_stage_figure_has_train_and_validation_curves_for_every_stage():
    history = {"loss": [2.0, 1.5], "val_loss": [2.1, 1.7], "accuracy": [0.3, 0.5],
               "val_accuracy": [0.2, 0.4]}  # fmt: skip
    stages = [
        Stage("warm-up", 1, 2, 10.0, history),
        Stage("fine-tune", 3, 2, 20.0, history),
    ]
    fig = stage_figure(stages, title="t")
    loss_ax, accuracy_ax = fig.axes
    assert len(loss_ax.get_lines()) == len(accuracy_ax.get_lines()) == 4 + 1  # + the boundary
    assert accuracy_ax.get_lines()[2].get_xdata().tolist() == [3, 4]
