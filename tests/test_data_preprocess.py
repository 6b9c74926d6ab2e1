"""Preprocessing, augmentation and the tf.data pipeline."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from cvlab.data.augment import AugmentationConfig, build_augmentation, save_augmentation_montage
from cvlab.data.pipeline import make_pipeline
from cvlab.data.preprocess import (
    compute_rgb_means,
    load_means,
    random_patch,
    resize,
    save_means,
    subtract_means,
    ten_crop,
)


def ramp(h=6, w=8, c=3):
    return np.arange(h * w * c, dtype=np.float32).reshape(h, w, c)


def test_rgb_means_and_subtraction(tmp_path):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (50, 7, 5, 3), dtype=np.uint8)
    means = compute_rgb_means(images)
    expected = images.reshape(-1, 3).astype(np.float64).mean(axis=0)
    assert np.allclose([means["R"], means["G"], means["B"]], expected, rtol=1e-12)
    path = save_means(tmp_path / "m.json", means)
    assert load_means(path) == means
    centred = subtract_means(images, means)
    assert centred.dtype == np.float32
    assert np.allclose(centred.reshape(-1, 3).mean(axis=0), 0, atol=1e-3)
    with pytest.raises(ValueError, match="RGB"):
        compute_rgb_means(images[..., :1])


def test_ten_crop_shapes_and_contents():
    image = ramp(6, 8)
    crops = ten_crop(image, 4)
    assert crops.shape == (10, 4, 4, 3)
    assert np.array_equal(crops[0], image[:4, :4])  # top-left
    assert np.array_equal(crops[1], image[:4, 4:])  # top-right
    assert np.array_equal(crops[2], image[2:, :4])  # bottom-left
    assert np.array_equal(crops[3], image[2:, 4:])  # bottom-right
    assert np.array_equal(crops[4], image[1:5, 2:6])  # centre
    for i in range(5):
        assert np.array_equal(crops[5 + i], crops[i][:, ::-1])  # mirrors
    with pytest.raises(ValueError):
        ten_crop(image, 7)


def test_random_patch_is_inside_and_reproducible():
    image = ramp(10, 10)
    a = random_patch(image, 4, np.random.default_rng(3))
    b = random_patch(image, 4, np.random.default_rng(3))
    assert a.shape == (4, 4, 3) and np.array_equal(a, b)
    # a patch is a contiguous window of the image
    top, left = np.argwhere(image[..., 0] == a[0, 0, 0])[0]
    assert np.array_equal(image[top : top + 4, left : left + 4], a)


def test_resize_plain_and_aspect_aware():
    wide = np.zeros((1, 20, 40, 3), np.uint8)
    wide[:, :, 10:30] = 255  # a white centre band, black sides
    plain = resize(wide, 10)
    aspect = resize(wide, 10, aspect=True)
    assert plain.shape == aspect.shape == (1, 10, 10, 3) and aspect.dtype == np.uint8
    assert plain[0, 5, 0, 0] < 50  # plain squeeze keeps the black sides
    assert aspect.min() > 200  # aspect-aware crops the centre: all white


def test_augmentation_is_off_at_evaluation():
    config = AugmentationConfig.book_default()
    augment = build_augmentation(config, seed=1)
    x = np.random.default_rng(0).random((4, 16, 16, 3)).astype(np.float32)
    assert np.array_equal(np.asarray(augment(x, training=False)), x)
    assert not np.allclose(np.asarray(augment(x, training=True)), x)


def test_augmentation_with_every_option_off_is_the_identity():
    """`augment: {}` in a grid: a training pipeline that passes images through unchanged."""
    images = np.random.default_rng(0).uniform(0, 1, (4, 8, 8, 3)).astype("float32")
    augment = build_augmentation({}, seed=1)
    np.testing.assert_array_equal(np.asarray(augment(images, training=True)), images)
    batches = make_pipeline(images, np.arange(4), batch_size=4, training=True, augment={}, seed=0)
    x, _ = next(iter(batches))
    assert np.asarray(x).shape == images.shape


def test_augmentation_config_rejects_bad_values():
    with pytest.raises(ValueError):
        AugmentationConfig(rotation=-5)
    with pytest.raises(ValueError):
        AugmentationConfig(zoomm=0.1)


def test_augmentation_montage(tmp_path):
    image = np.random.default_rng(0).random((16, 16, 3)).astype(np.float32)
    path = save_augmentation_montage(
        image, {"rotation": 20, "horizontal_flip": True}, tmp_path / "m.png", samples=6, columns=3
    )
    assert path.read_bytes()[:4] == b"\x89PNG"


def batches(ds):
    xs, ys = zip(*[(np.asarray(x), np.asarray(y)) for x, y in ds], strict=True)
    return np.concatenate(xs), np.concatenate(ys)


def test_pipeline_evaluation_keeps_order_and_scales():
    x = np.random.default_rng(0).integers(0, 256, (10, 8, 8, 3), dtype=np.uint8)
    y = np.arange(10)
    out_x, out_y = batches(make_pipeline(x, y, batch_size=4))
    assert np.array_equal(out_y, y)
    assert np.allclose(out_x, x / 255.0, atol=1e-6)


def test_pipeline_training_shuffles_crops_and_augments_reproducibly():
    x = np.random.default_rng(0).integers(0, 256, (32, 10, 10, 3), dtype=np.uint8)
    y = np.arange(32)
    kwargs = dict(batch_size=8, training=True, crop=8, seed=5, augment={"horizontal_flip": True})
    out_x, out_y = batches(make_pipeline(x, y, **kwargs))
    assert out_x.shape == (32, 8, 8, 3) and sorted(out_y) == list(range(32))
    assert not np.array_equal(out_y, y)  # shuffled
    again_x, again_y = batches(make_pipeline(x, y, **kwargs))
    assert np.array_equal(out_y, again_y)


def test_pipeline_means_centre_crop_and_one_hot():
    x = np.full((6, 10, 10, 3), 100, dtype=np.uint8)
    x[:, 1:9, 1:9] = 200
    means = {"R": 150.0, "G": 150.0, "B": 150.0}
    out_x, out_y = batches(make_pipeline(x, np.arange(6) % 3, means=means, crop=8, num_classes=3))
    assert out_x.shape == (6, 8, 8, 3)
    assert np.allclose(out_x, 50.0)  # centre crop of the 200 block, minus the mean
    assert out_y.shape == (6, 3) and np.array_equal(out_y.argmax(1), np.arange(6) % 3)


def test_pipeline_from_hdf5(tmp_path):
    import h5py

    x = np.random.default_rng(1).integers(0, 256, (20, 6, 6, 3), dtype=np.uint8)
    with h5py.File(tmp_path / "d.hdf5", "w") as f:
        f["images"] = x
        f["labels"] = np.arange(20)
    out_x, out_y = batches(make_pipeline(tmp_path / "d.hdf5", batch_size=6))
    assert np.array_equal(out_y, np.arange(20)) and np.allclose(out_x, x / 255.0, atol=1e-6)
    with pytest.raises(FileNotFoundError, match="cvlab.data build"):
        make_pipeline(tmp_path / "missing.hdf5")


def test_pipeline_streams_large_hdf5_in_blocks(tmp_path, monkeypatch):
    import h5py

    import cvlab.data.pipeline as pipeline

    monkeypatch.setattr(pipeline, "IN_MEMORY_LIMIT_BYTES", 10)
    monkeypatch.setattr(pipeline, "BLOCK_ROWS", 7)
    x = np.random.default_rng(2).integers(0, 256, (30, 4, 4, 3), dtype=np.uint8)
    with h5py.File(tmp_path / "big.hdf5", "w") as f:
        f["images"] = x
        f["labels"] = np.arange(30)
    _, out_y = batches(make_pipeline(tmp_path / "big.hdf5", batch_size=4, training=True, seed=0))
    assert sorted(out_y) == list(range(30))
    _, ordered = batches(make_pipeline(tmp_path / "big.hdf5", batch_size=4))
    assert np.array_equal(ordered, np.arange(30))


def test_affine_shifts_move_along_the_right_axis():
    """A horizontal shift leaves horizontal stripes unchanged and moves vertical ones."""
    rows = np.zeros((1, 16, 16, 1), np.float32)
    rows[:, ::2] = 1.0  # horizontal stripes: constant along x
    cols = np.transpose(rows, (0, 2, 1, 3))  # vertical stripes
    shift_x = build_augmentation({"width_shift": 0.3, "fill_mode": "wrap"}, seed=3)
    shift_y = build_augmentation({"height_shift": 0.3, "fill_mode": "wrap"}, seed=3)
    assert np.allclose(np.asarray(shift_x(rows, training=True)), rows, atol=1e-5)
    assert np.allclose(np.asarray(shift_y(cols, training=True)), cols, atol=1e-5)
    assert not np.allclose(np.asarray(shift_y(rows, training=True)), rows, atol=1e-3)


def test_affine_rotation_by_zoom_zero_keeps_the_centre():
    image = np.zeros((1, 15, 15, 1), np.float32)
    image[:, 7, 7] = 1.0
    rotate = build_augmentation({"rotation": 90}, seed=0)
    out = np.asarray(rotate(np.repeat(image, 8, axis=0), training=True))
    assert np.allclose(out[:, 7, 7, 0], 1.0, atol=1e-5)  # rotation is about the centre


def test_pipeline_feeds_keras_fit(tmp_path):
    import keras

    from cvlab.data import build_hdf5

    files = build_hdf5("digits", tmp_path / "digits.hdf5", size=8, progress=False)
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 1)),
            keras.layers.Flatten(),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(
        keras.optimizers.Adam(0.01), "sparse_categorical_crossentropy", metrics=["accuracy"]
    )
    train = make_pipeline(files["train"], batch_size=64, training=True, seed=0)
    val = make_pipeline(files["val"], batch_size=64)
    history = model.fit(train, validation_data=val, epochs=5, verbose=0)
    assert history.history["val_accuracy"][-1] > 0.8  # real digits: well above chance (0.1)


def labelled_images(n=24, size=6, channels=3):
    """Image i is filled with the value i, so pixels tell whether labels travelled with them."""
    x = np.repeat(np.arange(n, dtype=np.uint8), size * size * channels).reshape(
        n, size, size, channels
    )
    return x, np.arange(n)


def test_pipeline_keeps_images_with_their_labels():
    x, y = labelled_images()
    out_x, out_y = batches(make_pipeline(x, y, batch_size=5, training=True, seed=1, crop=4))
    assert np.allclose(out_x[:, 0, 0, 0] * 255, out_y, atol=1e-3)


def test_pipeline_crops_are_reproducible_per_seed():
    x = np.random.default_rng(0).integers(0, 256, (16, 12, 12, 3), dtype=np.uint8)
    y = np.arange(16)
    first, _ = batches(make_pipeline(x, y, batch_size=4, training=True, crop=6, seed=3))
    second, _ = batches(make_pipeline(x, y, batch_size=4, training=True, crop=6, seed=3))
    other, _ = batches(make_pipeline(x, y, batch_size=4, training=True, crop=6, seed=4))
    assert np.array_equal(first, second) and not np.array_equal(first, other)


def test_augmentation_happens_before_centring():
    x = np.full((8, 8, 8, 3), 200, dtype=np.uint8)
    means = {"R": 120.0, "G": 120.0, "B": 120.0}
    ds = make_pipeline(
        x,
        np.zeros(8),
        training=True,
        means=means,
        augment={"contrast": 0.2, "brightness": 0.1},
        seed=0,
    )
    out_x, _ = batches(ds)
    assert out_x.max() > 40  # not clipped to [0, 1] after mean subtraction
    evaluation, _ = batches(make_pipeline(x, np.zeros(8), means=means, augment={"contrast": 0.5}))
    assert np.allclose(evaluation, 80.0)  # no augmentation at evaluation


def test_grey_images_with_means_keep_one_channel():
    x, y = labelled_images(channels=1)
    out_x, _ = batches(make_pipeline(x, y, means={"R": 1.0 * 3, "G": 3.0, "B": 3.0}))
    assert out_x.shape[-1] == 1
    assert subtract_means(x, {"R": 3.0, "G": 3.0, "B": 3.0}).shape == x.shape


def test_means_on_another_scale_are_refused():
    x = np.random.default_rng(0).random((4, 6, 6, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="same images"):
        make_pipeline(x, np.arange(4), means={"R": 120.0, "G": 110.0, "B": 100.0})


def test_build_renders_in_memory_sets_at_the_target_size(tmp_path, monkeypatch):
    import cvlab.data.synthetic as synthetic
    from cvlab.data import HDF5DatasetReader, build_hdf5

    seen = {}
    real = synthetic.load_shapes

    @functools.wraps(real)
    def spy(**options):
        seen.update(options)
        return real(**options)

    monkeypatch.setattr(synthetic, "load_shapes", spy)
    files = build_hdf5("shapes", tmp_path / "s.hdf5", size=16, progress=False, samples_per_class=10)
    assert seen["size"] == 16
    with HDF5DatasetReader(files["train"]) as reader:
        assert reader.images.shape[1:] == (16, 16, 3)
