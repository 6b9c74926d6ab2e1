"""A logistic regression on extracted features, its `C` tuned by cross-validated grid search
(book ch. 3.3 and 10.6.2), scored like any cvlab classifier."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cvlab.data.hdf5 import HDF5DatasetReader
from cvlab.train.evaluation import score_predictions

# The book's grids: Flowers-17 / Animals / CALTECH-101 (ch. 3), Dogs vs. Cats (ch. 10.6)
BOOK_C_GRID = (0.1, 1.0, 10.0, 100.0, 1000.0, 10000.0)
BOOK_C_GRID_DOGS_VS_CATS = (0.0001, 0.001, 0.01, 0.1, 1.0)


def read_features(path: str | Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Features, labels and class names from an HDF5 file `extract_features` wrote."""
    with HDF5DatasetReader(path, data_key="features") as reader:
        return np.asarray(reader.features[:]), np.asarray(reader.labels[:]), reader.class_names


@dataclass
class LinearProbe:
    """The fitted classifier, the C that won, and every C's mean cross-validated accuracy."""

    classifier: Any
    best_c: float
    cv_scores: dict[float, float]
    class_names: list[str]

    def predict_proba(self, features: np.ndarray) -> np.ndarray:
        """Probabilities over all classes (columns in class-index order)."""
        probs = self.classifier.predict_proba(features)
        full = np.zeros((len(features), len(self.class_names)), dtype=np.float64)
        full[:, self.classifier.classes_] = probs  # a class absent from training stays at 0
        return full

    def evaluate(self, features: Any, labels: Any = None, *, run: Any = None, prefix: str = ""):
        """`score_predictions` on a features file (or arrays): rank-1/5, report, confusion."""

        if isinstance(features, str | Path):
            features, labels, _ = read_features(features)
        return score_predictions(
            self.predict_proba(features), labels, self.class_names, run=run, prefix=prefix
        )


def train_linear_probe(
    features: Any,
    labels: Any = None,
    *,
    class_names: Sequence[str] | None = None,
    c_grid: Sequence[float] = BOOK_C_GRID,
    cv: int = 3,
    n_jobs: int | None = None,
    max_iter: int = 1000,
    standardize: bool = False,
    seed: int = 42,
) -> LinearProbe:
    """Grid-search `C` for a `LogisticRegression` (lbfgs) with `cv`-fold stratified
    cross-validation, then refit on all of `features` (a features file, or arrays + labels),
    as the book does. `standardize=True` scales features to mean 0, variance 1 first (fitted
    on the training rows only), which helps lbfgs converge on large raw activations."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    if isinstance(features, str | Path):
        features, labels, stored = read_features(features)
        class_names = class_names or stored
    features, labels = np.asarray(features), np.asarray(labels, dtype=np.int64)
    if class_names is None:
        class_names = [str(c) for c in range(int(labels.max()) + 1)]
    steps = [StandardScaler()] if standardize else []
    pipeline = make_pipeline(*steps, LogisticRegression(max_iter=max_iter, random_state=seed))
    search = GridSearchCV(
        pipeline,
        {"logisticregression__C": list(c_grid)},
        cv=StratifiedKFold(n_splits=cv, shuffle=True, random_state=seed),
        n_jobs=n_jobs,
    )
    search.fit(features, labels)
    scores = {
        float(c): float(s)
        for c, s in zip(
            search.cv_results_["param_logisticregression__C"],
            search.cv_results_["mean_test_score"],
            strict=True,
        )
    }
    best_c = float(search.best_params_["logisticregression__C"])
    return LinearProbe(search.best_estimator_, best_c, scores, [str(c) for c in class_names])
