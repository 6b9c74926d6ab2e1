"""cvlab.train.tta: the views (what each does to pixels, fixed by the seed) and the averaging
(identity views give plain prediction; the average is over exactly `copies` views)."""

from __future__ import annotations

import numpy as np
import pytest

from cvlab.train.tta import (
    TTAConfig,
    View,
    accuracy_by_copies,
    apply_view,
    plan_views,
    tta_predict,
)


def images(n=6, h=12, w=16, seed=0):
    return np.random.default_rng(seed).random((n, h, w, 3), dtype=np.float32)


def small_model(h=12, w=16, classes=3):
    """A real Keras classifier whose outputs depend on where things are in the image."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((h, w, 3))
    x = keras.layers.Conv2D(4, 3, activation="relu")(inputs)
    x = keras.layers.Flatten()(x)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)


class CountingModel:
    """A function of a batch that records every batch it is given; its 'probabilities' are
    per-image statistics of the pixels, so each view gives different numbers."""

    def __init__(self):
        self.batches: list[np.ndarray] = []

    def __call__(self, batch):
        self.batches.append(batch.copy())
        left = batch[:, :, : batch.shape[2] // 2].mean(axis=(1, 2, 3))
        top = batch[:, : batch.shape[1] // 2].mean(axis=(1, 2, 3))
        scores = np.stack([left, top, np.ones_like(left)], axis=1)
        return scores / scores.sum(axis=1, keepdims=True)


# -- the views ----------------------------------------------------------------------------


def test_identity_view_leaves_pixels_alone():
    x = images()
    assert View().is_identity
    np.testing.assert_array_equal(apply_view(x, View()), x)


def test_flip_mirrors_left_and_right():
    x = images()
    np.testing.assert_array_equal(apply_view(x, View(flip=True)), x[:, :, ::-1])


@pytest.mark.parametrize(("dy", "dx"), [(2, 3), (-1, 4), (0, -5), (3, 0)])
def test_shift_moves_content_and_repeats_edges(dy, dx):
    x = images(n=2)
    out = apply_view(x, View(dy=dy, dx=dx))
    h, w = x.shape[1:3]
    assert out.shape == x.shape
    # every pixel that stays inside lands (dy, dx) further on
    rows, cols = slice(max(dy, 0), h + min(dy, 0)), slice(max(dx, 0), w + min(dx, 0))
    src_rows, src_cols = slice(max(-dy, 0), h - max(dy, 0)), slice(max(-dx, 0), w - max(dx, 0))
    np.testing.assert_array_equal(out[:, rows, cols], x[:, src_rows, src_cols])
    if dx > 0:  # the uncovered columns repeat the first column
        np.testing.assert_array_equal(out[:, max(dy, 0) : h + min(dy, 0), 0], x[:, src_rows, 0])


def test_crop_resizes_the_window_back_to_full_size():
    x = np.zeros((1, 12, 16, 3), np.float32)
    x[:, 6:, 8:] = 1.0  # bright bottom-right quarter
    out = apply_view(x, View(crop=(6, 8, 6, 8)))  # exactly that quarter, zoomed in
    assert out.shape == x.shape and out.dtype == x.dtype
    np.testing.assert_allclose(out, 1.0, atol=1e-6)


def test_views_start_with_the_original_and_its_mirror_and_follow_the_seed():
    config = TTAConfig(copies=8, shift=0.2, crop=0.2, seed=3)
    views = plan_views(config, 32, 32)
    assert len(views) == 8
    assert views[0] == View() and views[1] == View(flip=True)
    assert all(not v.is_identity for v in views[1:])
    assert plan_views(config, 32, 32) == views  # the same seed, the same views
    other = plan_views(TTAConfig(copies=8, shift=0.2, crop=0.2, seed=4), 32, 32)
    assert other[2:] != views[2:]
    for view in views:
        assert abs(view.dy) <= 6 and abs(view.dx) <= 6
        if view.crop is not None:
            top, left, h, w = view.crop
            assert 26 <= h <= 32 and 26 <= w <= 32 and top + h <= 32 and left + w <= 32


@pytest.mark.parametrize("seed", range(20))
def test_no_view_but_the_first_repeats_the_original(seed):
    for config in (
        TTAConfig(copies=10, horizontal_flip=False, shift=0.05, crop=0.0, seed=seed),
        TTAConfig(copies=10, horizontal_flip=False, shift=0.0, crop=0.05, seed=seed),
    ):
        views = plan_views(config, 24, 24)
        assert views[0].is_identity
        assert not any(v.is_identity for v in views[1:])
        assert all(v.crop is None or v.crop[2] < 24 for v in views)


def test_config_checks_its_options():
    with pytest.raises(ValueError, match="copies"):
        TTAConfig(copies=0)
    with pytest.raises(ValueError, match="shift"):
        TTAConfig(shift=0.7)
    with pytest.raises(ValueError, match="unknown TTA option"):
        TTAConfig.from_options({"copies": 4, "rotation": 10})
    assert TTAConfig.from_options({"copies": 4}, seed=9) == TTAConfig(copies=4, seed=9)


# -- the averaging ------------------------------------------------------------------------


def test_identity_tta_equals_plain_prediction():
    model = small_model()
    x = images()
    plain = model.predict(x, verbose=0)
    one = tta_predict(model, x, TTAConfig(copies=1))
    np.testing.assert_array_equal(one.probabilities, plain)
    identity = TTAConfig(copies=4, horizontal_flip=False, shift=0.0, crop=0.0)
    result = tta_predict(model, x, identity)
    assert all(v.is_identity for v in result.views)
    np.testing.assert_allclose(result.probabilities, plain, rtol=1e-6, atol=1e-7)


def test_tta_changes_predictions_of_a_position_sensitive_model():
    model = small_model()
    x = images()
    plain = model.predict(x, verbose=0)
    mirrored = tta_predict(model, x, TTAConfig(copies=2, shift=0.0, crop=0.0))
    assert not np.allclose(mirrored.probabilities, plain)
    np.testing.assert_allclose(mirrored.probabilities.sum(axis=1), 1.0, rtol=1e-5)


@pytest.mark.parametrize("copies", [1, 3, 7])
def test_tta_averages_over_exactly_the_planned_copies(copies):
    x = images(n=10)
    config = TTAConfig(copies=copies, shift=0.25, crop=0.25, seed=1)
    model = CountingModel()
    result = tta_predict(model, x, config, chunk=4, keep_views=True)  # 3 chunks of images
    assert len(result.views) == copies
    assert len(model.batches) == copies * 3
    expected = np.mean([CountingModel()(apply_view(x, v)) for v in result.views], axis=0)
    np.testing.assert_allclose(result.probabilities, expected, rtol=1e-6)
    assert result.per_view.shape == (copies, 10, 3)
    np.testing.assert_allclose(result.per_view.mean(axis=0), result.probabilities)


def test_accuracy_by_copies_scores_each_running_average():
    per_view = np.array(
        [
            [[0.6, 0.4], [0.6, 0.4]],  # view 1: both images called class 0
            [[0.0, 1.0], [0.7, 0.3]],  # view 2 overturns the first image only
            [[0.1, 0.9], [0.0, 1.0]],
        ]
    )
    labels = [1, 1]
    # averages: k=1 -> [0, 0]; k=2 -> [1, 0]; k=3 -> [1, 1] (image 2: 1.3 vs 1.7)
    assert accuracy_by_copies(per_view, labels) == [0.0, 0.5, 1.0]


def test_tta_refuses_what_is_not_a_batch_of_images():
    with pytest.raises(ValueError, match="N, H, W, C"):
        tta_predict(CountingModel(), np.zeros((4, 4, 3)))
    with pytest.raises(TypeError, match="Keras model or a function"):
        tta_predict(object(), images())
