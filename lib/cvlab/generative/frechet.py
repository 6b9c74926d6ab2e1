"""How good are generated digits? Two numbers from a classifier trained on the real digits.

* **Fréchet distance** (the idea of FID, Heusel et al. 2017, with a small digit classifier in place
  of Inception): fit a Gaussian to the penultimate-layer features of real images and one to those of
  generated images, and measure
  ``d² = |mu_r - mu_g|² + Tr(S_r + S_g - 2 (S_r S_g)^(1/2))``.
  Zero when the two feature distributions have the same mean and covariance; it grows when the
  samples look unlike the digits (mean moves) or are too alike to one another (mode collapse
  shrinks S_g).
* **Confidence**: the classifier's mean highest softmax probability on the samples. Clear digits
  get a confident class; blobs between two digits do not.

Neither is comparable with published FIDs (those use Inception-v3 on 2,048 features); compare
runs with each other and with the floor that two sets of real digits give.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np


def feature_stats(features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean and covariance (unbiased, float64) of feature vectors (N, D)."""
    f = np.asarray(features, dtype=np.float64)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"features of shape {f.shape}: give (N, D) with N >= 2")
    return f.mean(axis=0), np.atleast_2d(np.cov(f, rowvar=False))


def frechet_distance_from_stats(
    mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, eps: float = 1e-6
) -> float:
    """Squared Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2).

    ``Tr((S1 S2)^(1/2))`` comes from `scipy.linalg.sqrtm` of the product. The product of two
    covariances is not symmetric and, when either is singular (features that are always zero
    after a ReLU, fewer samples than dimensions), its square root can come out complex or not
    finite. Then both covariances get `eps` on the diagonal and the root is taken again; an
    imaginary part that remains must be round-off (small against the real part) and is dropped.
    The result is clipped at 0 (it can come out a hair below for identical inputs).
    """
    from scipy import linalg

    mu1, mu2 = (
        np.atleast_1d(np.asarray(mu1, np.float64)),
        np.atleast_1d(np.asarray(mu2, np.float64)),
    )
    s1, s2 = (
        np.atleast_2d(np.asarray(sigma1, np.float64)),
        np.atleast_2d(np.asarray(sigma2, np.float64)),
    )
    if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != (len(mu1), len(mu1)):
        raise ValueError(
            f"shapes do not match: mu {mu1.shape} / {mu2.shape}, sigma {s1.shape} / {s2.shape}"
        )
    diff = mu1 - mu2

    def trace_sqrt(a: np.ndarray, b: np.ndarray) -> complex:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "singular matrix" warnings: checked below instead
            root = linalg.sqrtm(a @ b)
        return complex(np.trace(root)) if np.all(np.isfinite(root)) else complex("nan")

    tr = trace_sqrt(s1, s2)
    if not np.isfinite(tr) or abs(tr.imag) > 1e-3 * max(abs(tr.real), 1.0):
        offset = eps * np.eye(len(mu1))
        tr = trace_sqrt(s1 + offset, s2 + offset)
    if not np.isfinite(tr):
        raise FloatingPointError("the covariance product has no finite square root")
    if abs(tr.imag) > 1e-3 * max(abs(tr.real), 1.0):
        raise FloatingPointError(f"Tr((S1 S2)^(1/2)) has a large imaginary part: {tr}")
    value = diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * tr.real
    return float(max(value, 0.0))


def frechet_distance(features_a: np.ndarray, features_b: np.ndarray, eps: float = 1e-6) -> float:
    """Squared Fréchet distance between Gaussians fitted to two sets of feature vectors (N, D)."""
    return frechet_distance_from_stats(*feature_stats(features_a), *feature_stats(features_b), eps)


# --- the classifier whose features are compared ----------------------------------------------


def build_digit_classifier(
    input_shape: tuple[int, int, int] = (28, 28, 1), classes: int = 10, features: int = 64
):
    """A small CNN: two 3×3 convolution + max-pooling blocks (32, 64 filters), a ReLU layer of
    `features` units named "features" (what the Fréchet distance compares), dropout, softmax."""
    import keras
    from keras import layers

    image = keras.Input(input_shape, name="image")
    x = layers.Conv2D(32, 3, padding="same", activation="relu", name="conv1")(image)
    x = layers.MaxPooling2D(name="pool1")(x)
    x = layers.Conv2D(64, 3, padding="same", activation="relu", name="conv2")(x)
    x = layers.MaxPooling2D(name="pool2")(x)
    x = layers.Flatten(name="flatten")(x)
    x = layers.Dense(features, activation="relu", name="features")(x)
    x = layers.Dropout(0.3, name="dropout")(x)
    probabilities = layers.Dense(classes, activation="softmax", name="softmax")(x)
    return keras.Model(image, probabilities, name="digit_classifier")


@dataclass
class DigitClassifier:
    """A trained classifier and the model that stops at its "features" layer."""

    model: Any
    feature_model: Any
    test_accuracy: float = float("nan")

    def features(self, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
        return np.asarray(self.feature_model.predict(images, batch_size=batch_size, verbose=0))

    def probabilities(self, images: np.ndarray, batch_size: int = 500) -> np.ndarray:
        return np.asarray(self.model.predict(images, batch_size=batch_size, verbose=0))


def train_digit_classifier(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_test: np.ndarray | None = None,
    y_test: np.ndarray | None = None,
    *,
    epochs: int = 5,
    batch_size: int = 64,
    features: int = 64,
    learning_rate: float = 0.001,
) -> DigitClassifier:
    """Train `build_digit_classifier` on real labelled digits (the same pixel range the generator
    outputs, [-1, 1]) with Adam; its accuracy on the test digits tells whether its features mean
    something. Seed Keras first for a repeatable model."""
    import keras

    model = build_digit_classifier(x_train.shape[1:], int(np.max(y_train)) + 1, features)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    model.fit(x_train, y_train, epochs=epochs, batch_size=batch_size, verbose=0, shuffle=True)
    feature_model = keras.Model(model.input, model.get_layer("features").output)
    accuracy = float("nan")
    if x_test is not None and y_test is not None:
        accuracy = float(model.evaluate(x_test, y_test, verbose=0)[1])
    return DigitClassifier(model, feature_model, accuracy)


@dataclass
class SampleScore:
    """The quality numbers of one set of generated images against real ones."""

    fid: float  # Fréchet distance in the classifier's feature space
    confidence: float  # mean highest softmax probability on the generated images
    class_counts: list[int]  # how many samples the classifier puts in each class

    @property
    def classes_present(self) -> int:
        """Classes given to at least 2% of the samples (10 when no digit is missing)."""
        total = max(sum(self.class_counts), 1)
        return sum(c / total >= 0.02 for c in self.class_counts)


class SampleScorer:
    """Scores generated images against fixed real ones: the real features are computed once."""

    def __init__(self, classifier: DigitClassifier, real_images: np.ndarray):
        self.classifier = classifier
        self.real_stats = feature_stats(classifier.features(real_images))
        self.n_real = len(real_images)

    def score(self, generated: np.ndarray) -> SampleScore:
        probabilities, features = self._outputs(generated)
        fid = frechet_distance_from_stats(*self.real_stats, *feature_stats(features))
        classes = probabilities.shape[1]
        counts = np.bincount(probabilities.argmax(axis=1), minlength=classes).tolist()
        return SampleScore(fid, float(probabilities.max(axis=1).mean()), counts)

    def _outputs(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.classifier.probabilities(images), self.classifier.features(images)
