"""Ensembles of classifiers (Practitioner Bundle, ch. 6): the members' class probabilities are
averaged and each member is scored beside the ensemble.

Members come from a notebook's own training loop (`train_members`, the book's train_models.py)
or from the best finished runs of any grid on the leaderboard (`cvlab.report.ensemble_members.
top_runs`, in the report layer that reads the leaderboard). Every member must
have been scored on the very test set the ensemble is scored on: runs record a fingerprint of
their test split (`log_test_set`), and `check_test_set` refuses members whose fingerprint
differs or is missing, since a member trained on a different split may have seen the test images.
"""

from __future__ import annotations

import csv
import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from cvlab.data.image_folder import take_per_class
from cvlab.data.preprocess import subtract_means
from cvlab.errors import EnsembleError, EnsembleWarning, NotProbabilitiesError, TestSetMismatchError
from cvlab.figures import new_figure
from cvlab.runs.book import escape_markdown
from cvlab.runs.lookup import MODEL_FILE, RunModelNotFoundError, find_run_model
from cvlab.runs.record import RunRecord
from cvlab.runs.run import start
from cvlab.train.evaluation import rank_accuracy, score_predictions
from cvlab.train.recipe import train_classifier
from cvlab.train.schedules import time_decay_schedule  # re-exported: notebook 05 imports it here

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from cvlab.data.dataset import Dataset
    from cvlab.runs.run import Run
    from cvlab.train.recipe import TrainingConfig

__all__ = [
    "EnsembleError",
    "EnsembleResult",
    "EnsembleWarning",
    "Member",
    "NotProbabilitiesError",
    "TestSetMismatchError",
    "average_probabilities",
    "check_probabilities",
    "check_test_set",
    "ensemble_figure",
    "evaluate_ensemble",
    "limit_dataset",
    "log_test_set",
    "member_from_run",
    "members_from_runs",
    "predict_probabilities",
    "test_set_fingerprint",
    "time_decay_schedule",
    "train_members",
]

TEST_SET_PARAM = "test_set"  # the run parameter holding the test split's fingerprint
MEMBERS_DIR = "members"  # member runs trained by `train_members`, inside the ensemble's run
_SUM_TOLERANCE = 1e-3  # how far a row of probabilities may sum from 1 (float32 softmax)


# ---------------------------------------------------------------- the test set's identity


def test_set_fingerprint(images: Any, labels: Any) -> str:
    """A short hash of a test split (its images as float32, its labels, their order): two runs
    with equal fingerprints were scored on exactly the same images, in the same order."""
    pixels = np.ascontiguousarray(np.asarray(images, dtype=np.float32))
    truth = np.ascontiguousarray(np.asarray(labels).reshape(-1), dtype=np.int64)
    if len(pixels) != len(truth):
        raise ValueError(f"{len(pixels)} test images but {len(truth)} labels")
    digest = hashlib.sha256(repr((pixels.shape, truth.shape)).encode())
    digest.update(truth.tobytes())
    digest.update(pixels.tobytes())
    return digest.hexdigest()[:16]


test_set_fingerprint.__test__ = False  # type: ignore[attr-defined]


def log_test_set(run: Run, images: Any, labels: Any) -> str:
    """Record the test split's fingerprint as the run's `test_set` parameter (and its size as
    `test_images`), so the run can later join an ensemble; returns the fingerprint."""
    fingerprint = test_set_fingerprint(images, labels)
    run.log_params(**{TEST_SET_PARAM: fingerprint, "test_images": len(np.asarray(labels))})
    return fingerprint


# ---------------------------------------------------------------- members


@dataclass(frozen=True)
class Member:
    """One trained network of an ensemble: its saved model and what its run recorded."""

    name: str
    model_path: Path
    test_set: str | None = None  # the fingerprint its run recorded (None: not recorded)
    rgb_means: dict[str, float] | None = None  # subtracted before predicting, as in training
    run_dir: Path | None = None
    rank_value: float | None = None  # its grid's rank metric, for members taken from a grid


def member_from_run(run_dir: str | Path, name: str | None = None) -> Member:
    """The member a finished run left: its `model.keras`, test-set fingerprint and RGB means."""

    folder = Path(run_dir)
    record = RunRecord.load(folder)
    model_path = folder / record.artifacts.get("model", MODEL_FILE)
    if not model_path.is_file():
        raise RunModelNotFoundError(
            f"run {record.run_id} ({folder}) saved no model ({model_path.name} is missing): only "
            "runs whose notebook calls run.save_model(model) can join an ensemble"
        )
    means = record.params.get("rgb_means")
    return Member(
        name=name or record.name or record.run_id,
        model_path=model_path,
        test_set=record.params.get(TEST_SET_PARAM),
        rgb_means=dict(means) if isinstance(means, Mapping) else None,
        run_dir=folder,
    )


def members_from_runs(refs: Sequence[str], root: str | Path | None = None) -> list[Member]:
    """Members named one by one: `"run:<run_id>"` or `"run:<grid>/<run_id>"` (the leaderboard's
    ids), looked up under the workspace `root` (default: the project root)."""

    return [member_from_run(find_run_model(ref, root).parent) for ref in refs]


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def check_test_set(members: Sequence[Member], fingerprint: str) -> None:
    """Refuse (`TestSetMismatchError`) unless every member recorded `fingerprint` as its test
    set: the ensemble and its members must be scored on the same images, none of which any
    member trained on."""
    different = [m for m in members if m.test_set is not None and m.test_set != fingerprint]
    unknown = [m for m in members if m.test_set is None]
    if not different and not unknown:
        return
    lines = [f"the members do not share this ensemble's test set (fingerprint {fingerprint}):"]
    lines += [f"  - {m.name}: scored on another test set ({m.test_set})" for m in different]
    lines += [f"  - {m.name}: its run recorded no test set" for m in unknown]
    lines.append(
        "A member trained on another split may have trained on these test images, and its own "
        "score would not be comparable. Fix: load the data set with the options the members "
        "used (dataset, its options, size, seed), or choose members trained on one split; runs "
        f"record their test set with cvlab.train.ensembles.log_test_set (the '{TEST_SET_PARAM}' "
        "parameter)."
    )
    raise TestSetMismatchError("\n".join(lines))


# ---------------------------------------------------------------- probabilities


def check_probabilities(probabilities: Any, name: str = "member") -> np.ndarray:
    """`probabilities` as an (N, classes) array, refused unless every row is a probability
    distribution (non-negative, summing to 1): ensembles average probabilities, not logits."""
    probs = np.asarray(probabilities, dtype=np.float64)
    if probs.ndim != 2:
        raise NotProbabilitiesError(
            f"{name}: expected (images, classes) outputs, got {probs.shape}"
        )
    sums = probs.sum(axis=1)
    if probs.size and (probs.min() < -_SUM_TOLERANCE or np.abs(sums - 1).max() > _SUM_TOLERANCE):
        raise NotProbabilitiesError(
            f"{name}: its outputs are not class probabilities (rows sum to {sums.min():.4g} to "
            f"{sums.max():.4g}, smallest value {probs.min():.4g}). An ensemble averages the "
            "members' probabilities, as the book does; end the model with a softmax"
        )
    return probs


def average_probabilities(
    probabilities: Sequence[Any], names: Sequence[str] | None = None
) -> np.ndarray:
    """The ensemble's prediction: the mean of the members' (N, classes) probabilities (the book's
    `np.average(predictions, axis=0)`)."""
    if not len(probabilities):
        raise EnsembleError("an ensemble needs at least one member's probabilities")
    names = list(names) if names is not None else [f"member {i}" for i in range(len(probabilities))]
    checked = [check_probabilities(p, n) for p, n in zip(probabilities, names, strict=True)]
    shapes = {p.shape for p in checked}
    if len(shapes) > 1:
        listed = ", ".join(f"{n} {p.shape}" for n, p in zip(names, checked, strict=True))
        raise EnsembleError(
            f"the members' outputs differ in shape ({listed}): they must predict the same images "
            "over the same classes"
        )
    return np.mean(np.stack(checked), axis=0)


def predict_probabilities(
    model: Any,
    images: Any,
    *,
    rgb_means: Mapping[str, float] | None = None,
    batch_size: int = 64,
    name: str = "member",
) -> np.ndarray:
    """A member's class probabilities for `images` (N, H, W, C in [0, 1]), after subtracting the
    RGB means it was trained with; checked to be probabilities."""

    x = np.asarray(images, dtype=np.float32)
    expected = tuple(model.input_shape[1:])
    if tuple(x.shape[1:]) != expected:
        raise EnsembleError(
            f"{name} takes inputs of shape {expected} but the test images are {tuple(x.shape[1:])}: "
            "load the data set at the size the members were trained at"
        )
    if rgb_means:
        x = subtract_means(x, dict(rgb_means))
    return check_probabilities(model.predict(x, batch_size=batch_size, verbose=0), name)


# ---------------------------------------------------------------- scoring


@dataclass
class EnsembleResult:
    """Each member's scores beside the ensemble's, and the ensemble of the first j members."""

    members: dict[str, dict[str, float]]  # name -> {"rank1": ..., "rank5": ...}
    ensemble: dict[str, Any]  # score_predictions' output for the averaged probabilities
    by_size: list[float] = field(default_factory=list)  # rank-1 of members 1..j averaged

    @property
    def mean_member_rank1(self) -> float:
        return float(np.mean([m["rank1"] for m in self.members.values()]))

    @property
    def gain(self) -> float:
        """Ensemble rank-1 minus the members' mean rank-1 (Jensen: ≥ 0 on average)."""
        return float(self.ensemble["rank1"]) - self.mean_member_rank1

    def markdown(self) -> str:
        """A table: one row per member, then the members' mean and the ensemble."""
        rank5 = "rank5" in self.ensemble
        head = "| | rank-1 |" + (" rank-5 |" if rank5 else "")
        rows = [head, "|---|---|" + ("---|" if rank5 else "")]

        def row(label: str, scores: Mapping[str, float]) -> str:
            cells = f"| {label} | {scores['rank1']:.2%} |"
            return cells + (f" {scores['rank5']:.2%} |" if rank5 else "")

        rows += [row(escape_markdown(name), scores) for name, scores in self.members.items()]
        mean = {
            k: float(np.mean([m[k] for m in self.members.values()])) for k in self.ensemble_keys
        }
        rows.append(row("members' mean", mean))
        rows.append(row(f"**ensemble of {len(self.members)}**", self.ensemble))
        return "\n".join(rows)

    @property
    def ensemble_keys(self) -> list[str]:
        return ["rank1", "rank5"] if "rank5" in self.ensemble else ["rank1"]


def evaluate_ensemble(
    member_probabilities: Mapping[str, Any],
    labels: Any,
    class_names: Sequence[str],
    *,
    run: Run | None = None,
) -> EnsembleResult:
    """Score every member and the average of their probabilities on the same labels.

    With `run`: the ensemble's metrics are the run's own (`rank1`, `rank5`, `test_accuracy`,
    confusion matrix, classification report, as `score_predictions` logs them); each member's
    go in as `member_<i>_rank1` (and `_rank5`), with `members`, `members_mean_rank1`,
    `members_best_rank1` and `ensemble_gain` (ensemble minus members' mean, rank-1).
    """

    names = list(member_probabilities)
    probs = [check_probabilities(member_probabilities[n], n) for n in names]
    average = average_probabilities(probs, names)
    ks = (1, 5) if len(class_names) >= 5 else (1,)
    members = {n: rank_accuracy(p, labels, ks) for n, p in zip(names, probs, strict=True)}
    running = np.cumsum(np.stack(probs), axis=0)
    by_size = [rank_accuracy(running[j], labels, 1)["rank1"] for j in range(len(probs))]
    ensemble = score_predictions(average, labels, class_names, run=run)
    result = EnsembleResult(members=members, ensemble=ensemble, by_size=by_size)
    if run is not None:
        per_member = {
            f"member_{i}_{k}": v
            for i, scores in enumerate(members.values())
            for k, v in scores.items()
        }
        run.log_metrics(
            **per_member,
            members=len(names),
            members_mean_rank1=result.mean_member_rank1,
            members_best_rank1=max(m["rank1"] for m in members.values()),
            ensemble_gain=result.gain,
        )
    return result


def ensemble_figure(result: EnsembleResult, histories: Mapping[str, Path] | None = None) -> Figure:
    """Members' rank-1 beside the ensemble's, the ensemble's rank-1 as members are added, and
    (given `histories`: name -> history.csv) the members' validation accuracy per epoch."""

    panels = 3 if histories else 2
    fig, axes = new_figure(1, panels, figsize=(5.0 * panels, 3.8))
    bars, growth = axes[0][0], axes[0][1]
    names = list(result.members)
    values = [result.members[n]["rank1"] for n in names] + [result.ensemble["rank1"]]
    colours = ["#8aa9c9"] * len(names) + ["#d9822b"]
    bars.bar(range(len(values)), values, color=colours)
    bars.set_xticks(range(len(values)), labels=[*names, "ensemble"], rotation=45, ha="right")
    bars.axhline(result.mean_member_rank1, color="grey", linestyle="--", label="members' mean")
    low = min(values)
    bars.set_ylim(max(0.0, low - 0.05), min(1.0, max(values) + 0.03))
    bars.set_ylabel("test rank-1")
    bars.set_title("members and their ensemble")
    bars.legend(loc="lower right", fontsize=8)
    sizes = range(1, len(result.by_size) + 1)
    growth.plot(sizes, result.by_size, marker="o", color="#d9822b")
    growth.set_xticks(list(sizes))
    growth.set_xlabel("members averaged (in order)")
    growth.set_ylabel("test rank-1")
    growth.set_title("ensemble as members are added")
    if histories:
        curves = axes[0][2]
        for name, path in histories.items():
            epochs, accuracy = _read_history(Path(path), "val_accuracy")
            if epochs:
                marker = "o" if len(epochs) < 3 else None  # a single epoch is a point
                curves.plot(epochs, accuracy, label=name, linewidth=1, marker=marker)
        curves.set_xlabel("epoch")
        curves.set_ylabel("validation accuracy")
        curves.set_title("members while training")
        curves.legend(fontsize=7)
    fig.tight_layout()
    return fig


def _read_history(path: Path, column: str) -> tuple[list[int], list[float]]:
    if not path.is_file():
        return [], []
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get(column) not in (None, "")]
    return [int(r["epoch"]) for r in rows], [float(r[column]) for r in rows]


# ---------------------------------------------------------------- training members


def train_members(
    run: Run,
    data: Dataset,
    count: int,
    build: Callable[[], Any],
    config: TrainingConfig,
    *,
    fingerprint: str | None = None,
) -> list[Member]:
    """Train `count` networks as the book's train_models.py does: same data and hyperparameters,
    member i seeded with `config.seed + i` (its own initial weights, shuffles and augmentation).

    Each member is a run of its own in `<run>/members/member_<i>/` (history, curves, confusion
    matrix, `model.keras`); a member that already finished there (an earlier, interrupted
    attempt of this run) is reused, not retrained.
    """

    if count < 1:
        raise EnsembleError(f"members={count}: an ensemble needs at least one member")
    fingerprint = fingerprint or test_set_fingerprint(data.x_test, data.y_test)
    members = []
    for i in range(count):
        folder = run.artifact_path(f"{MEMBERS_DIR}/member_{i}")
        done = RunRecord.load_if_present(folder)
        if done is None or done.status != "ok" or not (folder / "model.keras").is_file():
            seed = config.seed + i
            member_run = start(folder, params={"member": i, TEST_SET_PARAM: fingerprint}, seed=seed)
            model = build()
            train_classifier(member_run, data, model, replace(config, seed=seed))
            member_run.save_model(model)
            member_run.finish()
        else:
            print(f"member {i}: reusing the finished run in {folder}")
        members.append(member_from_run(folder, name=f"member {i}"))
    return members


def limit_dataset(
    data: Dataset,
    *,
    train: int | None = None,
    val: int | None = None,
    test: int | None = None,
) -> Dataset:
    """`data` with at most `train` / `val` / `test` images in those splits, the same number from
    each class (the first ones in the split's order): quick runs on a CPU. None keeps a split."""

    def cut(x: np.ndarray, y: np.ndarray, limit: int | None, split: str):
        if limit is None or len(y) == 0:
            return x, y
        per_class = limit // max(1, data.num_classes)
        if per_class < 1:
            raise ValueError(
                f"{split}_limit={limit}: fewer than one image for each of the "
                f"{data.num_classes} classes; use at least {data.num_classes}"
            )
        rows, labels = take_per_class(list(range(len(y))), y, per_class)
        return x[np.asarray(rows, dtype=np.int64)], labels

    x_train, y_train = cut(data.x_train, data.y_train, train, "train")
    x_val, y_val = cut(data.x_val, data.y_val, val, "val")
    x_test, y_test = cut(data.x_test, data.y_test, test, "test")
    return replace(
        data, x_train=x_train, y_train=y_train, x_val=x_val, y_val=y_val, x_test=x_test,
        y_test=y_test,
    )  # fmt: skip
