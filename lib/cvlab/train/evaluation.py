"""Evaluation as the book reports it: rank-1 and rank-5 accuracy, the classification report and a
confusion matrix, optionally with 10-crop oversampling, logged to the run record."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from cvlab.atomic_io import write_text_atomic
from cvlab.image_prep import predict_ten_crop
from cvlab.rank_accuracy import as_labels as _as_labels
from cvlab.rank_accuracy import rank_accuracy as rank_accuracy  # re-exported

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from cvlab.runs.run import Run

__all__ = ["confusion_figure", "evaluate_classifier", "rank_accuracy", "score_predictions"]

REPORT_FILE = "classification_report.txt"


def confusion_figure(matrix: np.ndarray, class_names: Sequence[str], title: str = "") -> Figure:
    """A matplotlib figure of a confusion matrix (rows: true class, columns: predicted),
    counts written in the cells up to 20 classes. Made without pyplot, so no backend changes
    and nothing to close; it still shows in a notebook."""
    from matplotlib.figure import Figure

    n = len(class_names)
    side = min(max(4.0, 0.45 * n + 2.0), 16.0)
    fig = Figure(figsize=(side + 1.0, side))
    ax = fig.add_subplot()
    image = ax.imshow(matrix, cmap="Blues", interpolation="nearest")
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    if n <= 40:
        ax.set_xticks(range(n), labels=list(class_names), rotation=90, fontsize=8)
        ax.set_yticks(range(n), labels=list(class_names), fontsize=8)
    if n <= 20:
        threshold = matrix.max() / 2.0 if matrix.size else 0
        for i in range(n):
            for j in range(n):
                ax.text(
                    j, i, str(int(matrix[i, j])), ha="center", va="center", fontsize=7,
                    color="white" if matrix[i, j] > threshold else "black",
                )  # fmt: skip
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or "confusion matrix")
    fig.tight_layout()
    return fig


def _to_numpy(batch: Any) -> Any:
    """A batch as NumPy: tf, JAX and PyTorch tensors (on any device) through Keras."""
    if isinstance(batch, np.ndarray):
        return batch
    import keras  # lazy: keras

    return keras.ops.convert_to_numpy(batch)


def _predict(
    model: Any, x: Any, y: Any, batch_size: int, ten_crop_size: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities and integer labels, from arrays or a data set of (x, y) batches."""

    def predict(batch: np.ndarray) -> np.ndarray:
        if ten_crop_size is not None:
            return predict_ten_crop(model, batch, ten_crop_size, batch_size=batch_size)
        return np.asarray(model.predict(batch, batch_size=batch_size, verbose=0))

    is_dataset = hasattr(x, "element_spec") or not (
        hasattr(x, "__array__") or isinstance(x, (list, tuple))
    )
    if not is_dataset:
        if y is None:
            raise ValueError("y: labels are required when x is an array (not a data set of (x, y))")
        return predict(np.asarray(x)), _as_labels(y)
    if y is not None:
        raise ValueError("y: leave it None when x is a data set of (x, y) batches")
    probs, labels = [], []
    for batch in x:  # one pass, so labels stay aligned even if the data set shuffles
        if not isinstance(batch, (tuple, list)) or len(batch) < 2:
            raise ValueError("x: a data set must yield (images, labels) batches")
        xb = np.asarray(_to_numpy(batch[0]))
        if ten_crop_size is not None:
            probs.append(predict(xb))
        else:
            probs.append(np.asarray(model.predict_on_batch(xb)))
        labels.append(_as_labels(np.asarray(batch[1])))
    if not probs:
        raise ValueError("x: the data set yielded no batches")
    return np.concatenate(probs), np.concatenate(labels)


def evaluate_classifier(
    model: Any,
    x: Any,
    y: Any,
    class_names: Sequence[str],
    *,
    run: Run | None = None,
    batch_size: int = 64,
    ten_crop_size: int | tuple[int, int] | None = None,
    prefix: str = "",
) -> dict[str, Any]:
    """Predict `x` (arrays, or a data set of (x, y) batches with `y=None`: `make_pipeline`'s
    tf.data.Dataset or PyDataset, any iterable of batches) and score it.

    `ten_crop_size` averages the predictions over the ten crops of each image (the images must
    be at least that large). Returns `rank1`, `rank5` (with 5 classes or more), `test_accuracy`
    (= rank1), `report` (scikit-learn's dict), `report_text`, `confusion_matrix`, `figure`,
    `probabilities` and `labels`. With `run`, logs the metrics, saves the figure as
    `figures/confusion_matrix.png` and the report as `classification_report.txt`. `prefix`
    names a second evaluation of the same run apart (`prefix="crops_"` logs `crops_rank1`, ...).
    """
    probs, labels = _predict(model, x, y, batch_size, ten_crop_size)
    return score_predictions(probs, labels, class_names, run=run, prefix=prefix)


def score_predictions(
    probabilities: Any,
    labels: Any,
    class_names: Sequence[str],
    *,
    run: Run | None = None,
    prefix: str = "",
) -> dict[str, Any]:
    """Score class probabilities (N × classes) against labels, from any classifier (a Keras
    model, a scikit-learn one on extracted features, an ensemble's average): the same
    metrics, report and figure as `evaluate_classifier`, logged to `run` the same way."""
    from sklearn.metrics import classification_report, confusion_matrix

    class_names = [str(c) for c in class_names]
    probs, labels = np.asarray(probabilities), _as_labels(labels)
    n = len(class_names)
    if probs.ndim != 2 or probs.shape[1] != n:
        raise ValueError(
            f"the model gives {probs.shape[-1] if probs.ndim else 0} outputs per image but "
            f"{n} class names were given"
        )
    ks = (1, 5) if n >= 5 else (1,)
    scores = rank_accuracy(probs, labels, ks)
    metrics: dict[str, float] = {**scores, "test_accuracy": scores["rank1"]}
    predicted = probs.argmax(axis=1)
    classes = np.arange(n)
    report_kwargs = {"labels": classes, "target_names": class_names, "zero_division": 0}
    report_text = classification_report(labels, predicted, digits=4, **report_kwargs)
    report = classification_report(labels, predicted, output_dict=True, **report_kwargs)
    matrix = confusion_matrix(labels, predicted, labels=classes)
    title = f"confusion matrix (rank-1 {scores['rank1']:.2%})"
    fig = confusion_figure(matrix, class_names, title=title)
    if run is not None:
        run.log_metrics(**{prefix + k: v for k, v in metrics.items()})
        run.save_figure(fig, f"{prefix}confusion_matrix")
        header = " ".join(f"{prefix}{k} {v:.4f}" for k, v in scores.items())
        report_file = prefix + REPORT_FILE
        write_text_atomic(run.artifact_path(report_file), f"{header}\n\n{report_text}")
        run.log_artifact(f"{prefix}classification_report", report_file)
    return {
        **metrics,
        "report": report,
        "report_text": report_text,
        "confusion_matrix": matrix,
        "figure": fig,
        "probabilities": probs,
        "labels": labels,
    }
