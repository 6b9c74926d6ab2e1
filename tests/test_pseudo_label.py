"""cvlab.train.pseudo_label: the unlabelled pool (stratified, disjoint), the selection (exactly
the images above the threshold, with the model's labels, scored against the hidden labels) and
the enlarged training set (grown by exactly that many)."""

from __future__ import annotations

import numpy as np
import pytest

from cvlab.data.dataset import Dataset
from cvlab.train.pseudo_label import (
    add_pseudo_labels,
    hide_labels,
    pseudo_label,
    select_pseudo_labels,
)


def dataset(n=40, seed=0):
    rng = np.random.default_rng(seed)
    y = np.repeat([0, 1], n // 2).astype(np.int64)
    x = rng.random((n, 8, 8, 3), dtype=np.float32)
    x[:, 0, 0, 0] = np.arange(n)  # each image carries its row number
    return Dataset(
        "toy",
        x,
        y,
        x[:4],
        y[:4],
        x[:6],
        y[:6],
        ["cat", "dog"],
    )


PROBS = np.array(
    [
        [0.95, 0.05],  # kept: class 0
        [0.50, 0.50],  # a tie: not above 0.5
        [0.20, 0.80],  # kept at 0.7, not at 0.9
        [0.01, 0.99],  # kept: class 1
        [0.90, 0.10],  # exactly 0.9: not above it
        [0.35, 0.65],
    ]
)


@pytest.mark.parametrize(
    ("threshold", "kept"),
    [(0.0, [0, 1, 2, 3, 4, 5]), (0.5, [0, 2, 3, 4, 5]), (0.7, [0, 2, 3, 4]), (0.9, [0, 3])],
)
def test_selection_keeps_exactly_the_rows_above_the_threshold(threshold, kept):
    chosen = select_pseudo_labels(PROBS, threshold)
    assert chosen.indices.tolist() == kept
    assert chosen.labels.tolist() == PROBS[kept].argmax(axis=1).tolist()
    np.testing.assert_allclose(chosen.confidence, PROBS[kept].max(axis=1))
    assert chosen.count == len(kept) and chosen.pool_size == 6
    assert chosen.accuracy is None and "pseudo_label_accuracy" not in chosen.metrics()


def test_selection_scores_its_labels_against_the_hidden_ones():
    truth = [0, 1, 1, 0, 0, 1]  # row 3 is really class 0: the model is wrong there
    chosen = select_pseudo_labels(PROBS, 0.7, true_labels=truth)  # rows 0, 2, 3, 4
    assert chosen.correct == 3 and chosen.accuracy == pytest.approx(0.75)
    assert chosen.per_class() == [2, 2]
    metrics = chosen.metrics()
    assert metrics == {
        "pseudo_pool": 6,
        "pseudo_kept": 4,
        "pseudo_kept_fraction": pytest.approx(4 / 6),
        "pseudo_labels_right": 3,
        "pseudo_labels_wrong": 1,
        "pseudo_label_accuracy": pytest.approx(0.75),
    }


def test_selection_checks_its_inputs():
    with pytest.raises(ValueError, match="threshold"):
        select_pseudo_labels(PROBS, 1.0)
    with pytest.raises(ValueError, match="N, classes"):
        select_pseudo_labels(PROBS[:, 0], 0.5)
    with pytest.raises(ValueError, match="true labels"):
        select_pseudo_labels(PROBS, 0.5, true_labels=[0, 1])


def test_hide_labels_splits_the_training_split_stratified_and_disjoint():
    data = dataset()
    labelled, pool = hide_labels(data, 10, seed=1)
    assert len(labelled.y_train) == 10 and len(pool) == 30
    assert np.bincount(labelled.y_train).tolist() == [5, 5]
    assert np.bincount(pool.hidden_labels).tolist() == [15, 15]
    rows = np.concatenate([labelled.x_train[:, 0, 0, 0], pool.images[:, 0, 0, 0]]).astype(int)
    assert sorted(rows.tolist()) == list(range(40))  # every image once, on one side only
    np.testing.assert_array_equal(
        labelled.y_train, data.y_train[labelled.x_train[:, 0, 0, 0].astype(int)]
    )
    assert labelled.x_test is data.x_test and labelled.info["unlabelled"] == 30
    again, _ = hide_labels(data, 10, seed=1)
    np.testing.assert_array_equal(again.x_train, labelled.x_train)
    half, half_pool = hide_labels(data, 0.5, seed=1)
    assert len(half.y_train) == len(half_pool) == 20
    with pytest.raises(ValueError, match="at least one image per class"):
        hide_labels(data, 39, seed=1)


def test_training_set_grows_by_the_pseudo_labelled_images():
    data = dataset()
    labelled, pool = hide_labels(data, 10, seed=0)
    rng = np.random.default_rng(3)
    probs = rng.dirichlet([1.0, 1.0], size=len(pool))
    chosen = select_pseudo_labels(probs, 0.8, true_labels=pool.hidden_labels)
    assert 0 < chosen.count < len(pool)
    bigger = add_pseudo_labels(labelled, pool.images, chosen)
    assert len(bigger.x_train) == len(bigger.y_train) == 10 + chosen.count
    np.testing.assert_array_equal(bigger.x_train[:10], labelled.x_train)
    np.testing.assert_array_equal(bigger.x_train[10:], pool.images[chosen.indices])
    np.testing.assert_array_equal(bigger.y_train[10:], chosen.labels)  # the model's labels
    assert bigger.x_test is labelled.x_test and bigger.info["pseudo_labelled"] == chosen.count
    with pytest.raises(ValueError, match="same pool"):
        add_pseudo_labels(labelled, pool.images[:5], chosen)


def test_pseudo_label_uses_the_models_predictions():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Flatten(),
            keras.layers.Dense(2, activation="softmax"),
        ]
    )
    data = dataset()
    probs = model.predict(data.x_train, verbose=0)
    threshold = float(np.median(probs.max(axis=1)))  # about half the images pass
    chosen = pseudo_label(model, data.x_train, threshold, true_labels=data.y_train)
    expected = np.flatnonzero(probs.max(axis=1) > threshold)
    assert chosen.indices.tolist() == expected.tolist()
    assert chosen.labels.tolist() == probs[expected].argmax(axis=1).tolist()
    assert chosen.correct == int(np.sum(data.y_train[expected] == chosen.labels))
    # with TTA the labels come from the averaged views: one identity view changes nothing
    same = pseudo_label(model, data.x_train, threshold, tta={"copies": 1})
    assert same.indices.tolist() == expected.tolist()
