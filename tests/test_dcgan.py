"""The DCGAN of book ch. 16 (`cvlab.generative.dcgan`) and its quality numbers
(`cvlab.generative.frechet`): the book's networks, one alternating step, the training loop, the
Fréchet distance against closed forms, and the notebook's smoke row through papermill (slow)."""

from __future__ import annotations

import urllib.error

import numpy as np
import pandas as pd
import pytest

keras = pytest.importorskip("keras")

from cvlab.errors import DatasetFetchError, PrecisionError  # noqa: E402
from cvlab.generative import dcgan  # noqa: E402
from cvlab.generative.frechet import (  # noqa: E402
    SampleScorer,
    feature_stats,
    frechet_distance,
    frechet_distance_from_stats,
)


def tiny_pair(seed: int = 0):
    """A generator and discriminator of the book's shape, sized down for fast tests (16×16)."""
    keras.utils.set_random_seed(seed)
    gen = dcgan.build_generator(dim=4, depth=8, latent_dim=16, hidden=32, filters=8)
    disc = dcgan.build_discriminator(width=16, height=16, filters=(8, 16), hidden=32)
    return gen, disc


# --- the networks -----------------------------------------------------------------------------


def test_generator_is_the_books():
    """Output 28×28×1 in [-1, 1]; layer by layer the parameter counts of the book's model summary
    (ch. 16.2, build_generator(7, 64, channels=1)), 1,727,233 in all."""
    keras.utils.set_random_seed(1)
    gen = dcgan.build_generator()
    assert gen.input_shape == (None, 100) and gen.output_shape == (None, 28, 28, 1)
    book = {"fc1": 51712, "fc1_bn": 2048, "fc2": 1608768, "fc2_bn": 12544}
    book |= {"up1": 51232, "up1_bn": 128, "up2": 801}
    assert {name: gen.get_layer(name).count_params() for name in book} == book
    assert gen.count_params() == sum(book.values()) == 1_727_233
    assert gen.get_layer("reshape").output.shape[1:] == (7, 7, 64)
    assert gen.get_layer("up1").output.shape[1:] == (14, 14, 32)
    noise = np.random.default_rng(0).uniform(-1, 1, (4, 100))
    images = keras.ops.convert_to_numpy(gen(noise, training=False))
    assert images.shape == (4, 28, 28, 1) and np.abs(images).max() <= 1.0


def test_discriminator_is_the_books():
    """Strided 5×5 convolutions (32, 64), FC 512, one sigmoid: a probability per image; no pooling
    and no batch norm; dropout only when asked for."""
    keras.utils.set_random_seed(1)
    disc = dcgan.build_discriminator()
    assert disc.input_shape == (None, 28, 28, 1) and disc.output_shape == (None, 1)
    counts = {
        name: disc.get_layer(name).count_params() for name in ("conv1", "conv2", "fc", "score")
    }
    assert counts == {"conv1": 832, "conv2": 51264, "fc": 3136 * 512 + 512, "score": 513}
    assert disc.count_params() == 1_658_753
    kinds = {type(layer).__name__ for layer in disc.layers}
    assert "LeakyReLU" in kinds and not kinds & {"MaxPooling2D", "BatchNormalization", "Dropout"}
    assert disc.get_layer("conv1_lrelu").negative_slope == pytest.approx(0.2)
    p = keras.ops.convert_to_numpy(disc(np.zeros((3, 28, 28, 1)), training=False))
    assert p.shape == (3, 1) and np.all((p > 0) & (p < 1))
    with_dropout = dcgan.build_discriminator(dropout=0.3)
    assert sum(type(layer).__name__ == "Dropout" for layer in with_dropout.layers) == 3


def test_generator_sized_by_options():
    """The side is 4·dim: dim 4 gives 16×16, three channels give colour images."""
    gen = dcgan.build_generator(dim=4, depth=8, channels=3, latent_dim=10, hidden=16, filters=4)
    assert gen.output_shape == (None, 16, 16, 3)


def test_book_adam_is_keras2_decay():
    """Keras 2's Adam(decay=d) scaled the rate by 1 / (1 + d · iterations)."""
    opt = dcgan.book_adam(0.0002, beta_1=0.5, decay=0.0002 / 50)
    assert float(opt.beta_1) == 0.5
    for step in (0, 1, 1000):
        opt.iterations.assign(step)
        expected = 0.0002 / (1 + 0.0002 / 50 * step)
        assert float(opt.learning_rate) == pytest.approx(expected, rel=1e-6)
    assert float(dcgan.book_adam().learning_rate) == pytest.approx(0.0002)


# --- one step and the loop --------------------------------------------------------------------


def test_mixed_float16_is_refused_before_training():
    """The hand-written step has no loss scaling: float16 networks are refused, bfloat16 taken."""
    previous = keras.mixed_precision.global_policy().name
    try:
        keras.mixed_precision.set_global_policy("mixed_float16")
        gen, disc = tiny_pair()
        with pytest.raises(PrecisionError, match="bfloat16"):
            dcgan.GANTrainer(gen, disc, seed=3)
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
        gen, disc = tiny_pair()
        assert dcgan.GANTrainer(gen, disc, seed=3).generator is gen
    finally:
        keras.mixed_precision.set_global_policy(previous)


@pytest.mark.backends
def test_one_step_updates_both_networks():
    """One alternating step: finite losses, both networks' weights move, one update each."""
    gen, disc = tiny_pair()
    trainer = dcgan.GANTrainer(gen, disc, seed=3)
    g_before = [w.copy() for w in gen.get_weights()]
    d_before = [w.copy() for w in disc.get_weights()]
    real = np.random.default_rng(0).uniform(-1, 1, (8, 16, 16, 1)).astype("float32")
    out = {k: float(v) for k, v in trainer.train_step(real).items()}
    assert set(out) == {"d_loss", "g_loss", "d_real", "d_fake"}
    assert all(np.isfinite(v) for v in out.values())
    assert 0 < out["d_real"] < 1 and 0 < out["d_fake"] < 1
    for before, model in ((g_before, gen), (d_before, disc)):
        moved = [not np.allclose(a, b) for a, b in zip(before, model.get_weights(), strict=True)]
        assert sum(moved) >= len(model.trainable_weights), model.name
    assert int(trainer.d_optimizer.iterations) == int(trainer.g_optimizer.iterations) == 1


def test_label_noise_and_normal_noise_train():
    """Chollet's variants (Gaussian noise, noisy labels, dropout) give finite losses too."""
    keras.utils.set_random_seed(0)
    gen = dcgan.build_generator(dim=4, depth=8, latent_dim=16, hidden=32, filters=8)
    disc = dcgan.build_discriminator(width=16, height=16, filters=(8,), hidden=16, dropout=0.3)
    trainer = dcgan.GANTrainer(gen, disc, noise="normal", label_noise=0.1, seed=1)
    out = trainer.train_step(np.zeros((4, 16, 16, 1), "float32"))
    assert all(np.isfinite(float(v)) for v in out.values())
    with pytest.raises(ValueError, match="noise"):
        dcgan.GANTrainer(gen, disc, noise="cauchy")


def test_train_loop_logs_epochs_grids_and_times(tmp_path):
    """Two epochs of 3 full batches (the partial one dropped): per-step losses and times, grids at
    step 0, every 2 steps and the end (saved as images in the run), one history row per epoch with
    the evaluate hook's values."""
    import cvlab

    gen, disc = tiny_pair()
    trainer = dcgan.GANTrainer(gen, disc, seed=0)
    images = np.random.default_rng(1).uniform(-1, 1, (26, 16, 16, 1)).astype("float32")
    run = cvlab.runs.start(tmp_path / "run", seed=0)
    history = dcgan.train(
        trainer,
        images,
        epochs=2,
        batch_size=8,
        sample_every=4,
        benchmark_noise=trainer.make_noise(9, 0),
        evaluate=lambda epoch: {"score": 10.0 * epoch},
        run=run,
    )
    assert len(history.step_seconds) == 6 and history.seconds_per_step > 0
    assert history.epoch_end_steps == [3, 6]
    assert sorted(history.grids) == [0, 3, 4, 6] and history.grids[6].shape == (48, 48)
    saved = sorted(p.name for p in (tmp_path / "run" / "images").iterdir())
    assert saved == [f"samples_step_{s:06d}.png" for s in (0, 4, 6)]
    frame = pd.read_csv(tmp_path / "run" / "history.csv")
    assert frame["epoch"].tolist() == [1, 2] and frame["score"].tolist() == [10.0, 20.0]
    assert {"d_loss", "g_loss", "d_real", "d_fake", "time_s"} <= set(frame.columns)
    assert frame["d_loss"].iloc[0] == pytest.approx(np.mean(history.steps["d_loss"][:3]))
    fig = dcgan.loss_figure(history)
    assert len(fig.axes) == 2


def test_sample_grid_tiles_and_scales():
    """[-1, 1] to 0-255, tiles in reading order, `columns` per row."""
    images = np.stack([np.full((2, 3, 1), v, "float32") for v in (-1.0, 0.0, 1.0)])
    grid = dcgan.sample_grid(images, columns=2)
    assert grid.shape == (4, 6) and grid.dtype == np.uint8
    assert grid[0, 0] == 0 and grid[0, 3] == 128 and grid[2, 0] == 255 and grid[2, 3] == 0


def test_load_digits_offline(monkeypatch):
    """mnist5k: 5,000 real digits in [-1, 1], split 4,000 / 1,000 for the classifier."""
    data = dcgan.load_digits("mnist5k")
    assert (len(data.x_train), len(data.x_test)) == (4000, 1000)
    assert data.all_images.shape == (5000, 28, 28, 1) and data.all_images.dtype == np.float32
    assert data.x_train.min() == -1.0 and data.x_train.max() == 1.0
    assert np.bincount(data.y_test).tolist() == [100] * 10


def test_load_digits_online_path(monkeypatch):
    """keras-mnist: uint8 0-255 from keras.datasets to [-1, 1], `limit` kept in proportion; and,
    offline, a clear error that names the offline source."""
    rng = np.random.default_rng(0)
    fake = (
        (rng.integers(0, 256, (60, 28, 28), dtype=np.uint8), np.arange(60) % 10),
        (rng.integers(0, 256, (10, 28, 28), dtype=np.uint8), np.arange(10) % 10),
    )
    monkeypatch.setattr(keras.datasets.mnist, "load_data", lambda: fake)
    data = dcgan.load_digits("keras-mnist", limit=35)
    assert (len(data.x_train), len(data.x_test)) == (30, 5)
    assert data.x_train.shape[1:] == (28, 28, 1) and -1.0 <= data.x_train.min() < 0
    full = dcgan.load_digits("keras-mnist")
    assert np.allclose(full.x_test[..., 0], fake[1][0] / 127.5 - 1.0, atol=1e-6)

    def offline():
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(keras.datasets.mnist, "load_data", offline)
    with pytest.raises(DatasetFetchError, match="mnist5k"):
        dcgan.load_digits("keras-mnist")
    with pytest.raises(ValueError, match="mnist5k"):
        dcgan.load_digits("cifar")


# --- the Fréchet distance ---------------------------------------------------------------------


def test_frechet_zero_for_identical_sets():
    features = np.random.default_rng(0).normal(size=(500, 16))
    assert frechet_distance(features, features) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(features, features[::-1].copy()) == pytest.approx(0.0, abs=1e-6)


def test_frechet_grows_monotonically_with_a_mean_shift():
    """Shifting every feature by s leaves the covariance alone and adds D·s²."""
    features = np.random.default_rng(1).normal(size=(400, 8))
    shifts = [0.0, 0.1, 0.5, 1.0, 2.0, 4.0]
    distances = [frechet_distance(features, features + s) for s in shifts]
    assert all(a < b for a, b in zip(distances, distances[1:], strict=False))
    assert distances == pytest.approx([8 * s**2 for s in shifts], abs=1e-6)


def test_frechet_matches_the_closed_form_for_diagonal_gaussians():
    """For diagonal covariances: |mu1 - mu2|² + sum(s1 + s2 - 2 sqrt(s1 s2)); exactly from the
    statistics, and within sampling error from 20,000 samples of each Gaussian."""
    rng = np.random.default_rng(2)
    mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
    var1, var2 = rng.uniform(0.2, 3.0, 5), rng.uniform(0.2, 3.0, 5)
    closed = np.sum((mu1 - mu2) ** 2) + np.sum(var1 + var2 - 2 * np.sqrt(var1 * var2))
    exact = frechet_distance_from_stats(mu1, np.diag(var1), mu2, np.diag(var2))
    assert exact == pytest.approx(closed, rel=1e-9)
    a = mu1 + rng.normal(size=(20000, 5)) * np.sqrt(var1)
    b = mu2 + rng.normal(size=(20000, 5)) * np.sqrt(var2)
    assert frechet_distance(a, b) == pytest.approx(closed, rel=0.05)


def test_frechet_is_finite_for_singular_covariances():
    """Dead ReLU features (always 0) and fewer samples than dimensions make the covariances
    singular; the distance stays finite, non-negative and 0 for identical sets."""
    rng = np.random.default_rng(3)
    a = np.maximum(rng.normal(size=(20, 32)), 0)
    a[:, :10] = 0.0
    b = np.maximum(rng.normal(size=(20, 32)) + 0.5, 0)
    b[:, :10] = 0.0
    d = frechet_distance(a, b)
    assert np.isfinite(d) and d > 0
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-4)
    mu, sigma = feature_stats(a)
    assert mu.shape == (32,) and sigma.shape == (32, 32)
    with pytest.raises(ValueError, match="shapes"):
        frechet_distance_from_stats(mu, sigma, mu[:3], sigma[:3, :3])


class FakeClassifier:
    """Features are the mean of each image row; class is the brightest of the first 10 pixels."""

    def features(self, images):
        return images.reshape(len(images), images.shape[1], -1).mean(axis=2)

    def probabilities(self, images):
        logits = images.reshape(len(images), -1)[:, :10] * 5.0
        e = np.exp(logits - logits.max(axis=1, keepdims=True))
        return e / e.sum(axis=1, keepdims=True)


def test_sample_scorer():
    """The same images as the reference score 0; shifted ones more; confidence and counts."""
    rng = np.random.default_rng(4)
    real = rng.uniform(-1, 1, (300, 12, 12, 1)).astype("float32")
    scorer = SampleScorer(FakeClassifier(), real)
    same, shifted = scorer.score(real), scorer.score(np.clip(real + 0.3, -1, 1))
    assert same.fid == pytest.approx(0.0, abs=1e-6) and shifted.fid > 0.01
    assert 0.1 < same.confidence < 1 and sum(same.class_counts) == 300
    assert same.classes_present == 10


# --- the notebook -----------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.backends
def test_dcgan_notebook_smoke_row(tmp_path):
    """The notebook runs through papermill with the grid's smoke row: losses per epoch, sample
    grids every N steps and a final one as the leaderboard thumbnail, the quality numbers."""
    from chapter_runs import run_smoke_row

    run_dir, record = run_smoke_row("dcgan", tmp_path, "setting=smoke")
    params, metrics = record.params, record.metrics
    assert record.epochs_completed == params["epochs"] == 2
    assert params["generator_params"] == 1_727_233 and params["discriminator_params"] == 1_658_753
    frame = pd.read_csv(run_dir / "history.csv")
    assert frame["epoch"].tolist() == [1, 2]
    assert {"d_loss", "g_loss", "fid", "confidence"} <= set(frame.columns)
    for key in ("fid", "fid_epoch1", "fid_real", "fid_untrained"):
        assert np.isfinite(metrics[key]) and metrics[key] >= 0, key
    assert 0 < metrics["confidence"] <= 1 and metrics["ms_per_step"] > 0
    assert metrics["steps"] == 2 * (1024 // 64)
    assert record.artifacts["thumbnail"] == "images/samples_final.png"
    for name in ("samples_step_000000", "samples_step_000010", "samples_final", "real_digits"):
        assert (run_dir / "images" / f"{name}.png").is_file(), name
    for name in ("figures/losses.png", "figures/progress.png", "curves.png", "model.keras"):
        assert (run_dir / name).is_file(), name
    html = (run_dir / "run.html").read_text()
    assert "after epoch 2 (the end)" in html and "not comparable with the book" in html
