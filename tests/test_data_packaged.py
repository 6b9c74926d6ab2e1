"""Offline data sets: LFW faces and photo crops (real, shipped in wheels) and synthetic shapes."""

from __future__ import annotations

import numpy as np
import pytest

import cvlab.data
from cvlab.data.dataset import SPLITS, Dataset
from cvlab.data.packaged import (
    PHOTO_CLASSES,
    load_lfw_faces,
    load_photo_crops,
    photo_crop_boxes,
    photo_regions,
)
from cvlab.data.synthetic import SHAPE_NAMES, load_shapes


def _arrays(d: Dataset) -> list[np.ndarray]:
    return [d.x_train, d.y_train, d.x_val, d.y_val, d.x_test, d.y_test]


def _check_arrays(d: Dataset, *, size: int, channels: int) -> None:
    for split in SPLITS:
        x, y = getattr(d, f"x_{split}"), getattr(d, f"y_{split}")
        assert x.dtype == np.float32 and y.dtype == np.int64
        assert x.shape[1:] == (size, size, channels) and len(x) == len(y)
        if len(x):
            assert x.min() >= 0.0 and x.max() <= 1.0
            assert y.min() >= 0 and y.max() < d.num_classes


def _same(a: Dataset, b: Dataset) -> bool:
    return all(np.array_equal(p, q) for p, q in zip(_arrays(a), _arrays(b), strict=True))


def _class_counts(y: np.ndarray, k: int) -> np.ndarray:
    return np.bincount(y, minlength=k)


def _nearest_centroid_accuracy(d: Dataset) -> float:
    from sklearn.neighbors import NearestCentroid

    flat = lambda x: x.reshape(len(x), -1)  # noqa: E731
    model = NearestCentroid().fit(flat(d.x_train), d.y_train)
    return float((model.predict(flat(d.x_test)) == d.y_test).mean())


# --- LFW faces ------------------------------------------------------------------------------------


def test_lfw_faces_shapes_labels_and_splits():
    d = load_lfw_faces()
    _check_arrays(d, size=25, channels=1)
    assert d.class_names == ["face", "non-face"] and not d.synthetic
    assert (len(d.x_train), len(d.x_val), len(d.x_test)) == (140, 20, 40)
    for y in (d.y_train, d.y_val, d.y_test):  # stratified: both classes equally in each split
        counts = _class_counts(y, 2)
        assert counts[0] == counts[1]
    x = np.concatenate([d.x_train, d.x_val, d.x_test])
    assert x.max() > 0.9 and x.min() < 0.1  # the full [0, 1] range, not bytes or [0, 1/255]


def test_lfw_faces_first_100_are_faces():
    from importlib.resources import files

    with (files("skimage.data") / "lfw_subset.npy").open("rb") as fh:
        raw = np.load(fh)
    d = load_lfw_faces()
    # every image of the split labelled "face" (0) is one of the first 100 of skimage's array
    for x, y in ((d.x_train, d.y_train), (d.x_test, d.y_test)):
        for img, label in zip(x[:20], y[:20], strict=True):
            index = int(np.argmin(np.abs(raw - img[..., 0]).reshape(len(raw), -1).sum(1)))
            assert (index < 100) == (label == 0)


def test_lfw_faces_resize_and_reproducible():
    a, b = load_lfw_faces(size=32, seed=1), load_lfw_faces(size=32, seed=1)
    _check_arrays(a, size=32, channels=1)
    assert _same(a, b)
    assert not np.array_equal(a.y_train, load_lfw_faces(size=32, seed=2).y_train)
    with pytest.raises(ValueError, match="size"):
        load_lfw_faces(size=4)


# --- photo crops ----------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [16, 48, 192])
def test_photo_crops_any_size_up_to_192(size):
    classes = ["astronaut", "brick", "retina"]
    d = load_photo_crops(size=size, crops_per_image=10, classes=classes)
    _check_arrays(d, size=size, channels=3)
    assert d.class_names == classes and not d.synthetic
    # stratified by construction: every class has the same count in each split (6 | 2 | 2 of 10)
    for y, n in ((d.y_train, 6), (d.y_val, 2), (d.y_test, 2)):
        assert _class_counts(y, 3).tolist() == [n] * 3


@pytest.mark.parametrize("size", [193, 256, 7, 0])
def test_photo_crops_size_out_of_range_raises(size):
    with pytest.raises(ValueError, match="8 to 192"):
        load_photo_crops(size=size, crops_per_image=10)


def test_photo_crops_default_classes_and_provenance():
    d = load_photo_crops(size=8, crops_per_image=20)
    _check_arrays(d, size=8, channels=3)
    assert d.class_names == PHOTO_CLASSES and len(PHOTO_CLASSES) >= 10
    assert {"astronaut", "chelsea", "coffee", "brick", "grass", "gravel"} <= set(d.class_names)
    assert "disjoint" in d.source and "disjoint" in d.info["split_scheme"]
    assert set(d.info["classes"]) == set(PHOTO_CLASSES)
    with pytest.raises(ValueError, match="classes"):
        load_photo_crops(classes=["astronaut", "no-such-image"])


def test_photo_crops_grayscale_textures_and_rgb():
    d = load_photo_crops(size=16, crops_per_image=10, classes=["brick", "coffee"])
    brick = d.x_train[d.y_train == 0]
    assert np.array_equal(brick[..., 0], brick[..., 1])  # grey texture repeated to RGB
    g = load_photo_crops(size=16, crops_per_image=10, classes=["brick", "coffee"], grayscale=True)
    _check_arrays(g, size=16, channels=1)


def test_photo_crops_reproducible_per_seed():
    kw = dict(size=16, crops_per_image=10, classes=["chelsea", "gravel", "rocket"])
    a, b = load_photo_crops(seed=3, **kw), load_photo_crops(seed=3, **kw)
    assert _same(a, b)
    assert not np.array_equal(a.x_train, load_photo_crops(seed=4, **kw).x_train)
    # the boxes of one image depend on the seed only, not on the size or the other classes
    c = load_photo_crops(**{**kw, "size": 24, "classes": ["gravel", "coffee"]}, seed=3)
    boxes_a = a.info["boxes"]["test"]
    boxes_c = c.info["boxes"]["test"]
    gravel_a = boxes_a[boxes_a[:, 0] == 1, 1:]
    gravel_c = boxes_c[boxes_c[:, 0] == 0, 1:]
    assert sorted(map(tuple, gravel_a)) == sorted(map(tuple, gravel_c))


def _intersect(a: np.ndarray, b: np.ndarray) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_photo_crops_splits_come_from_disjoint_regions():
    d = load_photo_crops(size=8, crops_per_image=40)
    boxes = d.info["boxes"]
    for split in SPLITS:  # bookkeeping lines up with the arrays
        assert len(boxes[split]) == len(getattr(d, f"y_{split}"))
        assert np.array_equal(boxes[split][:, 0], getattr(d, f"y_{split}"))
    for label, name in enumerate(d.class_names):
        regions = d.info["regions"][name]
        per_split = {s: boxes[s][boxes[s][:, 0] == label, 1:5] for s in SPLITS}
        for split, split_boxes in per_split.items():
            x0, y0, x1, y1 = regions[split]
            assert (split_boxes[:, 0] >= x0).all() and (split_boxes[:, 2] <= x1).all()
            assert (split_boxes[:, 1] >= y0).all() and (split_boxes[:, 3] <= y1).all()
            sides = split_boxes[:, 2:4] - split_boxes[:, 0:2]
            assert (sides[:, 0] == sides[:, 1]).all() and (sides > 0).all()  # square crops
        for other in ("val", "test"):
            for t in per_split[other]:
                assert not any(_intersect(t, r) for r in per_split["train"]), (name, other)
        assert not any(_intersect(t, v) for t in per_split["test"] for v in per_split["val"])


def test_photo_regions_and_boxes_helpers():
    landscape = photo_regions(500, 300, val_fraction=0.1, test_fraction=0.2)
    assert landscape == {
        "train": (0, 0, 350, 300),
        "val": (350, 0, 400, 300),
        "test": (400, 0, 500, 300),
    }
    portrait = photo_regions(300, 500, val_fraction=0.1, test_fraction=0.2)
    assert portrait["test"] == (0, 400, 300, 500)
    rng = np.random.default_rng(0)
    boxes = photo_crop_boxes(
        500,
        300,
        {"train": 50, "val": 10, "test": 20},
        val_fraction=0.1,
        test_fraction=0.2,
        rng=rng,
    )
    assert [len(boxes[s]) for s in SPLITS] == [50, 10, 20]
    assert set(np.unique(boxes["train"][:, 4])) <= {0, 1}  # flip flags
    # the same zoom in every split: sides within (0.3–1.0) × the narrowest band (50 px)
    for split in SPLITS:
        side = boxes[split][:, 2] - boxes[split][:, 0]
        assert side.min() >= 15 and side.max() <= 50


def test_photo_crops_is_learnable_but_not_trivial():
    d = load_photo_crops(size=16, crops_per_image=40, classes=["astronaut", "brick", "retina"])
    acc = _nearest_centroid_accuracy(d)
    assert acc > 0.5  # chance is 1/3


# --- shapes (synthetic) ---------------------------------------------------------------------------


def test_shapes_defaults_are_labelled_synthetic():
    d = load_shapes(samples_per_class=30)
    _check_arrays(d, size=32, channels=3)
    assert d.synthetic is True and "synthetic" in d.name
    assert d.source == "procedurally generated (synthetic)"
    assert "synthetic" in d.summary()
    assert d.class_names == SHAPE_NAMES[:3]
    assert len(d.x_train) + len(d.x_val) + len(d.x_test) == 90


@pytest.mark.parametrize(("size", "num_classes"), [(8, 2), (20, 5), (64, 8)])
def test_shapes_size_and_class_count(size, num_classes):
    d = load_shapes(size=size, num_classes=num_classes, samples_per_class=20)
    _check_arrays(d, size=size, channels=3)
    assert d.num_classes == num_classes and len(set(d.class_names)) == num_classes
    for y in (d.y_train, d.y_val, d.y_test):  # stratified
        counts = _class_counts(y, num_classes)
        assert counts.max() - counts.min() <= 1


def test_shapes_option_limits():
    assert len(SHAPE_NAMES) >= 8
    load_shapes(size=512, num_classes=2, samples_per_class=5, val_fraction=0)
    d = load_shapes(num_classes=len(SHAPE_NAMES), samples_per_class=5, size=8, val_fraction=0.2)
    assert d.num_classes == len(SHAPE_NAMES)
    for bad in (dict(size=7), dict(size=513), dict(num_classes=1), dict(num_classes=99)):
        with pytest.raises(ValueError):
            load_shapes(samples_per_class=5, **bad)


def test_shapes_reproducible_per_seed():
    kw = dict(size=16, num_classes=4, samples_per_class=10)
    a, b = load_shapes(seed=7, **kw), load_shapes(seed=7, **kw)
    assert _same(a, b)
    assert not np.array_equal(a.x_train, load_shapes(seed=8, **kw).x_train)
    state = np.random.get_state()[1].copy()
    load_shapes(seed=7, **kw)
    assert np.array_equal(state, np.random.get_state()[1])  # the global RNG is left alone


def test_shapes_noise_option():
    clean = load_shapes(size=16, samples_per_class=10, noise=0.0)
    noisy = load_shapes(size=16, samples_per_class=10, noise=0.3)
    _check_arrays(clean, size=16, channels=3)
    assert not np.array_equal(clean.x_train, noisy.x_train)


def _contrast_spectrum(x: np.ndarray) -> np.ndarray:
    """Translation-invariant features: |FFT| of each image's distance from its median colour
    (colours and positions are random, so raw pixels say little to a linear model)."""
    contrast = np.abs(x - np.median(x, axis=(1, 2), keepdims=True)).max(-1)
    return np.abs(np.fft.rfft2(contrast)).reshape(len(x), -1)


def test_shapes_classes_are_distinguishable():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    d = load_shapes(size=16, num_classes=8, samples_per_class=60, seed=0)
    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500))
    model.fit(_contrast_spectrum(d.x_train), d.y_train)
    acc = (model.predict(_contrast_spectrum(d.x_test)) == d.y_test).mean()
    assert acc > 0.5  # chance is 1/8


def test_shapes_too_few_samples_says_so():
    with pytest.raises(ValueError, match="samples_per_class"):
        load_shapes(num_classes=12, samples_per_class=2, size=8)


# --- through the registry -------------------------------------------------------------------------


def test_registry_loads_all_three():
    shapes = cvlab.data.load("shapes", size=16, num_classes=4, samples_per_class=10)
    assert shapes.synthetic and shapes.input_shape == (16, 16, 3) and shapes.num_classes == 4
    faces = cvlab.data.load("lfw-faces", size=16)
    assert faces.input_shape == (16, 16, 1) and faces.class_names == ["face", "non-face"]
    crops = cvlab.data.load("photo-crops", size=16, crops_per_image=10)
    assert crops.input_shape == (16, 16, 3) and not crops.synthetic
    assert {"lfw-faces", "photo-crops", "shapes"} <= set(cvlab.data.names())
