"""Ensembles (cvlab.train.ensembles): averaging over probabilities, identical members, the test-set
check, members from a grid's leaderboard, and the helpers the ensembles notebook uses."""

from __future__ import annotations

import numpy as np
import pytest

import cvlab
from cvlab.data.dataset import Dataset
from cvlab.report.ensemble_members import top_runs
from cvlab.report.store import LeaderboardStore
from cvlab.runs import RunRecord
from cvlab.train import ensembles as ens
from cvlab.train.evaluation import rank_accuracy
from cvlab.train.schedules import learning_rate_at
from cvlab.workspace import Workspace

CLASSES = ["a", "b", "c"]


def _softmax(logits: np.ndarray) -> np.ndarray:
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def _tiny_model(seed: int, classes: int = 3):
    import keras

    keras.utils.set_random_seed(seed)
    inputs = keras.Input((4, 4, 3))
    x = keras.layers.Flatten()(inputs)
    outputs = keras.layers.Dense(classes, activation="softmax")(x)
    return keras.Model(inputs, outputs)


# ---------------------------------------------------------------- averaging


def test_identical_members_make_an_ensemble_equal_to_one_member():
    rng = np.random.default_rng(0)
    probs = _softmax(rng.normal(size=(50, 3)))
    labels = rng.integers(0, 3, 50)
    result = ens.evaluate_ensemble({"m0": probs, "m1": probs, "m2": probs}, labels, CLASSES)
    np.testing.assert_allclose(result.ensemble["probabilities"], probs, rtol=0, atol=1e-12)
    single = rank_accuracy(probs, labels, 1)["rank1"]
    assert result.ensemble["rank1"] == single == result.members["m1"]["rank1"]
    assert result.gain == 0.0 and result.by_size == [single] * 3


def test_identical_saved_models_predict_as_one(tmp_path):
    """The same network loaded three times from disk: the ensemble's output is that network's."""
    import keras

    model = _tiny_model(1)
    path = tmp_path / "model.keras"
    model.save(path)
    images = np.random.default_rng(1).random((20, 4, 4, 3), dtype=np.float32)
    one = ens.predict_probabilities(model, images)
    loaded = [keras.models.load_model(path, compile=False) for _ in range(3)]
    average = ens.average_probabilities([ens.predict_probabilities(m, images) for m in loaded])
    np.testing.assert_allclose(average, one, atol=1e-6)


def test_ensemble_averages_probabilities_not_votes_or_logits():
    # Image 0: averaging probabilities gives class 1, averaging log-probabilities gives class 0.
    # Image 1: averaging probabilities gives class 0, a majority vote gives class 1.
    m0 = np.array([[0.99, 0.01], [0.90, 0.10]])
    m1 = np.array([[0.20, 0.80], [0.45, 0.55]])
    m2 = m1.copy()
    members = [m0, m1, m2]
    average = ens.average_probabilities(members)
    np.testing.assert_allclose(average, (m0 + m1 + m2) / 3)
    assert average.argmax(axis=1).tolist() == [1, 0]
    log_average = np.mean([np.log(m) for m in members], axis=0).argmax(axis=1)
    votes = np.stack([m.argmax(axis=1) for m in members])
    majority = [np.bincount(v, minlength=2).argmax() for v in votes.T]
    assert log_average.tolist()[0] == 0 and majority[1] == 1  # the alternatives would differ
    result = ens.evaluate_ensemble(
        {"m0": m0, "m1": m1, "m2": m2}, np.array([1, 0]), ["x", "y"], run=None
    )
    assert result.ensemble["rank1"] == 1.0
    assert result.mean_member_rank1 == pytest.approx((0.5 + 0.5 + 0.5) / 3)


def test_logits_and_mismatched_shapes_are_refused():
    logits = np.array([[2.0, -1.0, 0.5], [0.1, 0.2, 0.3]])
    with pytest.raises(ens.NotProbabilitiesError, match="softmax"):
        ens.average_probabilities([_softmax(logits), logits], names=["good", "raw"])
    with pytest.raises(ens.EnsembleError, match="differ in shape"):
        ens.average_probabilities([_softmax(logits), _softmax(logits[:1])])
    with pytest.raises(ens.EnsembleError, match="at least one"):
        ens.average_probabilities([])


def test_evaluate_ensemble_logs_members_and_ensemble(in_tmp_project):
    rng = np.random.default_rng(2)
    labels = rng.integers(0, 3, 40)
    members = {
        f"m{i}": _softmax(rng.normal(size=(40, 3)) + 2 * np.eye(3)[labels]) for i in range(3)
    }
    run = cvlab.runs.start(seed=0)
    result = ens.evaluate_ensemble(members, labels, CLASSES, run=run)
    metrics = RunRecord.load(run.run_dir).metrics
    ranks = [rank_accuracy(p, labels, 1)["rank1"] for p in members.values()]
    assert [metrics[f"member_{i}_rank1"] for i in range(3)] == ranks
    assert metrics["members"] == 3 and metrics["members_best_rank1"] == max(ranks)
    assert metrics["rank1"] == result.ensemble["rank1"]
    assert metrics["ensemble_gain"] == pytest.approx(metrics["rank1"] - np.mean(ranks))
    assert (run.run_dir / "figures" / "confusion_matrix.png").is_file()
    table = result.markdown()
    assert "members' mean" in table and "ensemble of 3" in table
    fig = ens.ensemble_figure(result)
    assert len(fig.axes) == 2


def test_member_inputs_must_match_the_test_images():
    model = _tiny_model(0)
    with pytest.raises(ens.EnsembleError, match="inputs of shape"):
        ens.predict_probabilities(model, np.zeros((2, 8, 8, 3), np.float32), name="small")


# ---------------------------------------------------------------- the test set


def test_fingerprint_changes_with_images_labels_and_order():
    rng = np.random.default_rng(3)
    images, labels = rng.random((10, 4, 4, 3)), rng.integers(0, 3, 10)
    base = ens.test_set_fingerprint(images, labels)
    assert base == ens.test_set_fingerprint(images.copy(), labels.copy())
    other_labels = labels.copy()
    other_labels[0] = (labels[0] + 1) % 3
    assert ens.test_set_fingerprint(images, other_labels) != base
    other_images = images.copy()
    other_images[3, 0, 0, 0] += 0.01
    assert ens.test_set_fingerprint(other_images, labels) != base
    assert ens.test_set_fingerprint(images[::-1], labels[::-1]) != base


def test_members_with_different_test_sets_are_refused(tmp_path):
    same = ens.Member("a", tmp_path / "a.keras", test_set="f00d")
    other = ens.Member("b", tmp_path / "b.keras", test_set="beef")
    unknown = ens.Member("c", tmp_path / "c.keras")
    ens.check_test_set([same, same], "f00d")
    with pytest.raises(ens.TestSetMismatchError) as err:
        ens.check_test_set([same, other, unknown], "f00d")
    message = str(err.value)
    assert "b: scored on another test set (beef)" in message
    assert "c: its run recorded no test set" in message and "a:" not in message


# ---------------------------------------------------------------- members from a grid


def _finished_run(ws: Workspace, grid: str, run_id: str, rank1: float, test_set: str | None):
    run_dir = ws.run_dir(grid, run_id)
    run = cvlab.runs.start(run_dir, seed=0)
    if test_set is not None:
        run.log_params(test_set=test_set)
    run.log_params(rgb_means={"R": 0.5, "G": 0.4, "B": 0.3})
    run.log_metrics(rank1=rank1)
    run.save_model(_tiny_model(int(rank1 * 100)))
    record = run.finish()
    record.grid, record.name = grid, run_id
    return record


def test_top_runs_takes_the_best_runs_on_the_same_test_set(tmp_path):
    ws = Workspace.at(tmp_path)
    store = LeaderboardStore(ws.leaderboard_db)
    store.register_grid(
        "g", notebook="nb", spec_path="g.yaml", rank_metric="rank1", rank_mode="max"
    )
    records = [
        _finished_run(ws, "g", "r1", 0.60, "f00d"),
        _finished_run(ws, "g", "r2", 0.80, "f00d"),
        _finished_run(ws, "g", "r3", 0.70, "f00d"),
        _finished_run(ws, "g", "smoke", 0.95, "beef"),  # best, but on another test set
    ]
    failed = records[0].model_copy(update={"run_id": "r4", "status": "failed"})
    store.upsert([*records, failed])

    top = top_runs("g", 2, tmp_path)  # no test set given: by rank alone
    assert [m.name for m in top] == ["smoke", "r2"]
    with pytest.warns(ens.EnsembleWarning, match="smoke"):
        top = top_runs("g", 2, tmp_path, test_set="f00d")
    assert [(m.name, m.rank_value) for m in top] == [("r2", 0.80), ("r3", 0.70)]
    assert top[0].model_path == ws.run_dir("g", "r2") / "model.keras"
    assert top[0].rgb_means == {"R": 0.5, "G": 0.4, "B": 0.3} and top[0].test_set == "f00d"
    ens.check_test_set(top, "f00d")
    with (
        pytest.raises(ens.EnsembleError, match="fewer than top_k=4"),
        pytest.warns(ens.EnsembleWarning),
    ):
        top_runs("g", 4, tmp_path, test_set="f00d")
    with pytest.raises(ens.EnsembleError, match="not on the leaderboard"):
        top_runs("nope", 1, tmp_path)
    named = ens.members_from_runs(["run:r3", "run:g/smoke"], tmp_path)
    with pytest.raises(ens.TestSetMismatchError, match="smoke"):
        ens.check_test_set(named, "f00d")


def test_top_runs_without_a_store_says_how_to_make_one(tmp_path):
    with pytest.raises(ens.EnsembleError, match="run_grid.py grids/optimizers.yaml"):
        top_runs("optimizers", 3, tmp_path)
    assert not (tmp_path / "logs").exists()  # looking did not create an empty store


# ---------------------------------------------------------------- training helpers


def test_time_decay_schedule_follows_keras2_decay():
    lr, decay, steps, epochs = 0.01, 0.01 / 40, 781, 40
    schedule = ens.time_decay_schedule(lr, decay, steps, epochs)
    rates = [learning_rate_at(schedule, lr, epochs, e) for e in range(epochs)]
    keras2 = lr / (1 + decay * np.arange(steps * epochs))  # the rate at every iteration
    np.testing.assert_allclose(rates, keras2.reshape(epochs, steps).mean(axis=1), rtol=1e-12)
    assert rates[0] < lr and rates[-1] == pytest.approx(lr / (1 + decay * 39.5 * steps), rel=1e-3)
    assert ens.time_decay_schedule(lr, 0.0, 10, 3)["values"] == pytest.approx([lr] * 3)
    with pytest.raises(ValueError, match="steps_per_epoch"):
        ens.time_decay_schedule(lr, decay, 0, 3)


def test_limit_dataset_keeps_classes_balanced():
    rng = np.random.default_rng(4)
    y = np.repeat(np.arange(3), 20)
    rng.shuffle(y)
    x = np.arange(60, dtype=np.float32)[:, None, None, None] * np.ones((1, 2, 2, 3), np.float32)
    data = Dataset("t", x, y, x[:0], y[:0], x[:30], y[:30], class_names=CLASSES)
    small = ens.limit_dataset(data, train=9, test=None)
    assert np.bincount(small.y_train).tolist() == [3, 3, 3]
    rows = small.x_train[:, 0, 0, 0].astype(int)
    np.testing.assert_array_equal(y[rows], small.y_train)  # images stay with their labels
    assert len(small.x_test) == 30 and len(small.x_val) == 0
    with pytest.raises(ValueError, match="at least 3"):
        ens.limit_dataset(data, train=2)
