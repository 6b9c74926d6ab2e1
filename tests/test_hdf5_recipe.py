"""The book's chapter 9-10 workflow on a tiny Kaggle-layout copy: HDF5 build with means, patch and
10-crop preprocessing, and `train_classifier_hdf5` (train on patches, evaluate resized and with
10 crops)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

import cvlab
from cvlab.data import HDF5DatasetReader, build_hdf5, make_pipeline
from cvlab.data.preprocess import predict_ten_crop, ten_crop
from cvlab.train.recipe import TrainingConfig, train_classifier_hdf5


@pytest.fixture
def kaggle_folder(tmp_path):
    """cat.N.jpg / dog.N.jpg of different sizes and aspect ratios; cats dark, dogs bright."""
    folder = tmp_path / "kaggle" / "train"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(20):
        for name, base in (("cat", 40), ("dog", 200)):
            w, h = 80 + 7 * i, 60 + 5 * (i % 4)
            pixels = np.clip(base + rng.normal(0, 20, (h, w, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{name}.{i}.jpg")
    return folder.parent


def test_build_round_trip_and_means(tmp_path, kaggle_folder):
    files = build_hdf5(
        "dogs-vs-cats", tmp_path / "h5" / "dvc.hdf5", size=32, aspect=True, progress=False,
        directory=str(kaggle_folder), val_fraction=0.1, test_fraction=0.1,
    )  # fmt: skip
    counts = {}
    for split in ("train", "val", "test"):
        with HDF5DatasetReader(files[split]) as reader:
            counts[split] = len(reader)
            assert reader.images.shape[1:] == (32, 32, 3) and reader.class_names == ["cat", "dog"]
            if split == "train":
                train = np.asarray(reader.images[:], dtype=np.float64)
                labels = np.asarray(reader.labels[:])
    assert counts == {"train": 32, "val": 4, "test": 4}
    assert np.bincount(labels).tolist() == [16, 16]
    # dark cats, bright dogs: the labels travelled with their images
    brightness = train.mean(axis=(1, 2, 3))
    assert brightness[labels == 0].max() < brightness[labels == 1].min()
    means = json.loads(files["mean"].read_text())
    for channel, value in zip("RGB", train.mean(axis=(0, 1, 2)), strict=True):
        assert means[channel] == pytest.approx(value, abs=1e-3)


def test_ten_crops_of_a_uniform_image_average_to_its_centre_prediction():
    import keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((8, 8, 3)), keras.layers.Conv2D(2, 3), keras.layers.Flatten(),
         keras.layers.Dense(3, activation="softmax")]
    )  # fmt: skip
    image = np.full((12, 12, 3), 0.3, dtype=np.float32)
    crops = ten_crop(image, 8)
    assert crops.shape == (10, 8, 8, 3)
    centre = model.predict_on_batch(image[None, 2:10, 2:10])
    np.testing.assert_allclose(predict_ten_crop(model, image[None], 8), centre, rtol=1e-5)
    # a non-uniform image: the average over the ten crops, image by image, in one batch
    rng = np.random.default_rng(0)
    images = rng.random((3, 12, 12, 3)).astype(np.float32)
    expected = [model.predict_on_batch(ten_crop(img, 8)).mean(axis=0) for img in images]
    np.testing.assert_allclose(
        predict_ten_crop(model, images, 8, batch_size=20), expected, rtol=1e-5
    )


def test_pipeline_patches_in_training_and_resize_at_evaluation():
    images = np.arange(2 * 10 * 10 * 3, dtype=np.uint8).reshape(2, 10, 10, 3)
    train = make_pipeline(images, [0, 1], batch_size=2, training=True, crop=6, seed=1)
    x, _ = next(iter(train))
    assert x.shape == (2, 6, 6, 3)
    evaluation = make_pipeline(images, [0, 1], batch_size=2, resize=5, rescale=1.0)
    x, y = next(iter(evaluation))
    assert x.shape == (2, 5, 5, 3) and y.numpy().tolist() == [0, 1]
    corner = np.asarray(x)[0, 0, 0]  # bilinear resize keeps the value range
    assert corner.min() >= 0 and corner.max() <= 255


def test_train_classifier_hdf5_records_both_evaluations(tmp_path, kaggle_folder):
    import keras

    files = build_hdf5(
        "dogs-vs-cats", tmp_path / "h5" / "dvc.hdf5", size=24, aspect=True, progress=False,
        directory=str(kaggle_folder),
    )  # fmt: skip
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((20, 20, 3)), keras.layers.Conv2D(4, 3, activation="relu"),
         keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(2, activation="softmax")]
    )  # fmt: skip
    run = cvlab.runs.start(tmp_path / "run")
    config = TrainingConfig(optimizer="adam", learning_rate=0.01, epochs=2, batch_size=8,
                            augment={"horizontal_flip": True})  # fmt: skip
    result = train_classifier_hdf5(run, files, model, config, patch=20)
    metrics = run.record.metrics
    assert {"rank1", "crops_rank1", "oversampling_gain"} <= set(metrics)
    assert metrics["oversampling_gain"] == pytest.approx(
        result["crops"]["rank1"] - result["resized"]["rank1"]
    )
    assert run.record.epochs_completed == 2 and "rgb_means" in run.record.params
    assert (tmp_path / "run" / "crops_classification_report.txt").is_file()
    assert len(result["crops"]["labels"]) == 4
