"""cvlab.train: schedules (hand-computed rates), interrupt-and-resume, rank-1/rank-5 evaluation,
mixed precision and XLA options."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pandas as pd
import pytest

import cvlab
from cvlab.train import ScheduleError, learning_rate_at, plan_table, schedule_callback

from conftest import small_cnn

# -- schedules --------------------------------------------------------------------------------


def rate(schedule, base_lr, epochs, epoch):
    return learning_rate_at(schedule, base_lr, epochs, epoch)


@pytest.mark.parametrize(
    ("schedule", "base_lr", "epochs", "expected"),
    [
        # the book's poly_decay: NUM_EPOCHS 70, INIT_LR 5e-3, power 1.0 (linear)
        ({"name": "polynomial"}, 5e-3, 70, {0: 5e-3, 35: 2.5e-3, 69: 5e-3 / 70, 70: 0.0}),
        ({"name": "polynomial", "power": 2.0}, 0.1, 10, {0: 0.1, 5: 0.025, 9: 0.001}),
        (
            {"name": "polynomial", "power": 1.0, "end_lr": 0.01},
            0.1,
            10,
            {0: 0.1, 5: 0.055, 10: 0.01, 12: 0.01},  # past the plan: stays at end_lr
        ),
        # the Starter Bundle's step_decay: initAlpha * factor ** floor((1 + epoch) / dropEvery)
        (
            {"name": "step", "factor": 0.25, "every": 5},
            0.01,
            20,
            {0: 0.01, 3: 0.01, 4: 0.0025, 8: 0.0025, 9: 0.000625, 14: 0.01 * 0.25**3},
        ),
        ({"name": "step", "every": 15}, 0.01, 40, {0: 0.01, 13: 0.01, 14: 0.0025, 29: 0.000625}),
        (
            {"name": "piecewise", "boundaries": [40, 60], "values": [0.1, 0.01, 0.001]},
            0.5,  # absolute values: base_lr is not used
            75,
            {0: 0.1, 39: 0.1, 40: 0.01, 59: 0.01, 60: 0.001, 74: 0.001},
        ),
        ({"name": "cosine"}, 0.1, 10, {0: 0.1, 5: 0.05, 10: 0.0}),
        ({"name": "cosine", "min_lr": 0.02}, 0.1, 10, {0: 0.1, 5: 0.06}),
        (
            {"name": "cosine", "warmup_epochs": 2},
            0.1,
            10,
            {0: 0.05, 1: 0.1, 2: 0.1, 6: 0.05},  # cosine over the 8 epochs after the warm-up
        ),
        ({"name": "constant"}, 0.3, 10, {0: 0.3, 9: 0.3}),
        (None, 0.3, 10, {0: 0.3, 9: 0.3}),
        ("step", 0.01, 10, {3: 0.01, 4: 0.0025}),  # a bare name takes the defaults
    ],
)
def test_schedule_rates(schedule, base_lr, epochs, expected):
    got = {e: rate(schedule, base_lr, epochs, e) for e in expected}
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-15)


def test_stages_plan_is_the_ctrl_c_method_in_one_run():
    stages = {
        "name": "stages",
        "stages": [{"until": 4, "lr": 0.1}, {"until": 6, "lr": 0.01}, {"until": 8, "lr": 0.001}],
    }
    assert plan_table(stages, 0.1, 8) == [
        (0, 0.1),
        (1, 0.1),
        (2, 0.1),
        (3, 0.1),
        (4, 0.01),
        (5, 0.01),
        (6, 0.001),
        (7, 0.001),
    ]
    assert len(plan_table(stages, 0.1, 5)) == 5  # a shortened run follows the plan's start
    # the book's ResNet/CIFAR-10 runs: 1e-1 to epoch 40, 1e-2 to 60, 1e-3 after; last runs on
    open_end = {"name": "stages", "stages": [{"until": 40, "lr": 0.1}, {"until": 60, "lr": 0.01}]}
    open_end["stages"].append({"lr": 0.001})
    assert [rate(open_end, 0.1, 100, e) for e in (39, 40, 59, 60, 99)] == [
        0.1,
        0.01,
        0.01,
        0.001,
        0.001,
    ]
    with pytest.raises(ScheduleError, match=r"stages\[2\]\.until.*runs 9 epochs"):
        plan_table(stages, 0.1, 9)


def test_plan_table_matches_learning_rate_at():
    schedule = {"name": "polynomial", "power": 1.0}
    table = plan_table(schedule, 5e-3, 70)
    assert [e for e, _ in table] == list(range(70))
    assert all(lr == rate(schedule, 5e-3, 70, e) for e, lr in table)


@pytest.mark.parametrize(
    ("schedule", "fragments"),
    [
        ({"name": "exponential"}, ["schedule.name", "'exponential'", "cosine", "stages"]),
        ({"factor": 0.5}, ["schedule.name: missing", "polynomial"]),
        ({"name": "step", "drop_every": 5}, ["schedule.drop_every", "allowed keys: name, factor"]),
        ({"name": "step", "every": 0}, ["schedule.every", "greater than or equal to 1"]),
        ({"name": "step", "factor": 4}, ["schedule.factor", "less than or equal to 1"]),
        ({"name": "piecewise", "boundaries": [40]}, ["schedule.values", "required"]),
        (
            {"name": "piecewise", "boundaries": [40, 60], "values": [0.1, 0.01]},
            ["schedule.values", "2 boundaries, so 3 values, got 2"],
        ),
        (
            {"name": "piecewise", "boundaries": [60, 40], "values": [0.1, 0.01, 0.001]},
            ["schedule.boundaries", "increase"],
        ),
        (
            {"name": "stages", "stages": [{"until": 40, "lr": 0.1}, {"until": 30, "lr": 0.01}]},
            ["schedule.stages", "'until' must increase", "[40, 30]"],
        ),
        (
            {"name": "stages", "stages": [{"lr": 0.1}, {"until": 30, "lr": 0.01}]},
            ["stage 0 has no 'until'"],
        ),
        (
            {"name": "stages", "stages": [{"until": 40, "rate": 0.1}]},
            ["schedule.stages[0].rate", "allowed keys: until, lr", "schedule.stages[0].lr"],
        ),
        ({"name": "stages", "stages": []}, ["schedule.stages", "at least 1"]),
        ({"name": "cosine", "warmup_epochs": 10}, ["schedule.warmup_epochs", "fewer than 10"]),
        (["step"], ["expected a mapping"]),
    ],
)
def test_schedule_validation_errors(schedule, fragments):
    with pytest.raises(ScheduleError) as info:
        plan_table(schedule, 0.1, 10)
    for fragment in fragments:
        assert fragment in str(info.value)
    assert isinstance(info.value, ValueError)


def test_bad_base_lr_epochs_and_epoch():
    with pytest.raises(ScheduleError, match="base_lr"):
        rate(None, 0.0, 10, 0)
    with pytest.raises(ScheduleError, match="epochs"):
        rate(None, 0.1, 0, 0)
    with pytest.raises(ScheduleError, match="epoch"):
        rate(None, 0.1, 10, -1)


# -- Keras: a tiny model ----------------------------------------------------------------------


def tiny_data(n=32, features=4, classes=3, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, features)).astype("float32")
    y = rng.integers(0, classes, n)
    return x, y


def tiny_model(seed=0, classes=3, features=4, momentum=0.9):
    import keras

    keras.utils.set_random_seed(seed)
    model = keras.Sequential(
        [keras.Input((features,)), keras.layers.Dense(classes, activation="softmax")]
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.1, momentum=momentum),
        loss="sparse_categorical_crossentropy",
    )
    return model


def test_schedule_callback_sets_the_rate_each_epoch():
    import keras

    assert schedule_callback(None, 0.1, 3) is None
    assert schedule_callback({"name": "constant"}, 0.1, 3) is None
    with pytest.raises(ScheduleError):  # validated when made, not at epoch 0 of the fit
        schedule_callback({"name": "step", "every": -1}, 0.1, 3)
    callback = schedule_callback(
        {"name": "piecewise", "boundaries": [1, 2], "values": [0.1, 0.05, 0.01]}, 0.1, 3
    )
    assert isinstance(callback, keras.callbacks.LearningRateScheduler)
    x, y = tiny_data()
    model = tiny_model()
    history = model.fit(x, y, epochs=3, batch_size=16, verbose=0, callbacks=[callback])
    assert history.history["learning_rate"] == pytest.approx([0.1, 0.05, 0.01])
    assert float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)) == pytest.approx(0.01)


class KillAfterEpoch:
    """Raises at the end of a 0-based epoch, after the backup of that epoch was written."""

    def __new__(cls, epoch):
        import keras

        class _Kill(keras.callbacks.Callback):
            def on_epoch_end(self, e, logs=None):
                if e == epoch:
                    raise KeyboardInterrupt(f"killed after epoch {e}")

        return _Kill()


def test_kill_and_resume_ends_with_the_same_weights(tmp_path):
    from cvlab.train.checkpoints import backup_epoch, checkpoint_callbacks

    x, y = tiny_data()
    schedule = {"name": "step", "factor": 0.5, "every": 1}

    def fit(model, run, extra=()):
        callbacks = [
            *checkpoint_callbacks(run, every=1),
            run.keras_callback(),
            schedule_callback(schedule, 0.1, 4),
            *extra,
        ]
        return model.fit(
            x, y, epochs=4, batch_size=8, shuffle=False, verbose=0, callbacks=callbacks
        )

    whole = tiny_model(seed=1)
    fit(whole, cvlab.runs.start(tmp_path / "whole"))

    run_dir = tmp_path / "killed"
    with pytest.raises(KeyboardInterrupt):
        fit(tiny_model(seed=1), cvlab.runs.start(run_dir), extra=[KillAfterEpoch(1)])
    assert backup_epoch(run_dir) == 2
    assert (run_dir / "backup" / "latest.weights.h5").is_file()

    # the notebook runs again: a fresh process would build a fresh model (other seed: restored)
    fresh = tiny_model(seed=7)
    history = fit(fresh, cvlab.runs.start(run_dir))
    assert len(history.history["loss"]) == 2  # only epochs 3 and 4 ran
    assert history.history["learning_rate"] == pytest.approx([0.0125, 0.00625])  # 0.1·0.5^(1+e)
    for a, b in zip(whole.get_weights(), fresh.get_weights(), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    # momentum buffers came back too (a resume without them would drift)
    for a, b in zip(whole.optimizer.variables, fresh.optimizer.variables, strict=True):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-6, atol=1e-7)
    assert not (run_dir / "backup").exists()  # deleted once fit finished
    assert backup_epoch(run_dir) == 0
    assert fresh._initial_epoch is None  # a later fit of the same model starts at epoch 0
    # history.csv keeps the interrupted epochs and the resumed ones, once each
    assert list(pd.read_csv(run_dir / "history.csv")["epoch"]) == [1, 2, 3, 4]


def test_backup_every_n_epochs(tmp_path):
    from cvlab.train.checkpoints import EpochBackup, backup_epoch, checkpoint_callbacks

    x, y = tiny_data()
    callbacks = checkpoint_callbacks(tmp_path, every=2)
    assert isinstance(callbacks[0], EpochBackup)
    assert callbacks[0].backup_dir == str(tmp_path / "backup")
    model = tiny_model()
    with pytest.raises(KeyboardInterrupt):
        model.fit(x, y, epochs=5, verbose=0, callbacks=[*callbacks, KillAfterEpoch(2)])
    assert backup_epoch(tmp_path) == 2  # epoch 3 ended but only every second one is kept
    resumed = tiny_model()
    history = resumed.fit(x, y, epochs=5, verbose=0, callbacks=checkpoint_callbacks(tmp_path, 2))
    assert len(history.history["loss"]) == 3
    with pytest.raises(ValueError, match="every"):
        checkpoint_callbacks(tmp_path, every=0)


def test_resume_from_an_earlier_run(tmp_path):
    import keras

    from cvlab.train.checkpoints import ResumeError, find_resume_point, resume_from

    model = tiny_model(seed=3)
    model.fit(*tiny_data(), epochs=1, verbose=0)
    run_dir = tmp_path / "experiments" / "g" / "abc123"
    run = cvlab.runs.start(run_dir)
    run.log_epoch(1, 1, loss=1.0)
    run.save_model(model)

    loaded = resume_from("run:abc123", root=tmp_path, learning_rate=0.001)
    for a, b in zip(model.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert float(keras.ops.convert_to_numpy(loaded.optimizer.learning_rate)) == pytest.approx(0.001)
    point = find_resume_point("run:g/abc123", root=tmp_path)
    assert point.model_path == run_dir / "model.keras"
    assert point.epochs_completed == 1  # for run.keras_callback(epoch_offset=...)

    with pytest.raises(ResumeError) as info:
        resume_from("run:nope", root=tmp_path)
    assert str(tmp_path / "experiments" / "*" / "nope" / "model.keras") in str(info.value)
    with pytest.raises(ResumeError, match="run:<run_id>"):
        resume_from("abc123", root=tmp_path)
    other = tmp_path / "experiments" / "h" / "abc123"
    other.mkdir(parents=True)
    (other / "model.keras").write_bytes((run_dir / "model.keras").read_bytes())
    with pytest.raises(ResumeError, match="several grids"):
        resume_from("run:abc123", root=tmp_path)


# -- evaluation -------------------------------------------------------------------------------


def book_rank5_accuracy(preds, labels):
    """The book's rank5_accuracy loop, for comparison."""
    rank1 = rank5 = 0
    for p, gt in zip(preds, labels, strict=True):
        p = np.argsort(p)[::-1]
        rank5 += int(gt in p[:5])
        rank1 += int(gt == p[0])
    return rank1 / len(preds), rank5 / len(preds)


def test_train_classifier_augments_on_this_backend(tmp_path):
    """The recipe with the book's augmentation (a flip and the one-pass affine warp) trains and
    evaluates on whichever Keras backend the suite runs under: the augmentation layers run
    inside the input pipeline on JAX and PyTorch too, not only on TensorFlow."""
    from cvlab.train.recipe import TrainingConfig, train_classifier

    data = cvlab.data.load("shapes", size=16, num_classes=3, samples_per_class=12, seed=0)
    run = cvlab.runs.start(tmp_path / "augmented", seed=0)
    augment = {"horizontal_flip": True, "rotation": 10, "zoom": 0.1, "width_shift": 0.1}
    config = TrainingConfig(
        optimizer="sgd", learning_rate=0.01, epochs=1, batch_size=8, augment=augment, seed=0
    )
    metrics = train_classifier(run, data, small_cnn(data.input_shape, data.num_classes), config)
    assert 0.0 <= metrics["rank1"] <= 1.0
    assert list(pd.read_csv(run.run_dir / "history.csv")["epoch"]) == [1]


def test_rank_accuracy_on_a_hand_made_example():
    from cvlab.train import rank_accuracy

    probs = np.array(
        [
            [0.50, 0.10, 0.09, 0.11, 0.12, 0.08],  # true 0: the top class           -> rank-1
            [0.05, 0.30, 0.25, 0.20, 0.15, 0.05],  # true 4: fourth most probable    -> rank-5
            [0.30, 0.25, 0.20, 0.15, 0.07, 0.03],  # true 5: the least probable      -> neither
            [0.10, 0.10, 0.50, 0.12, 0.09, 0.09],  # true 2: the top class           -> rank-1
        ]
    )
    labels = np.array([0, 4, 5, 2])
    assert rank_accuracy(probs, labels) == {"rank1": 0.5, "rank5": 0.75}
    assert book_rank5_accuracy(probs, labels) == (0.5, 0.75)
    assert rank_accuracy(probs, np.eye(6)[labels], k=(1, 2, 4)) == {
        "rank1": 0.5,
        "rank2": 0.5,
        "rank4": 0.75,
    }
    assert rank_accuracy(np.full((2, 6), 1 / 6), [0, 1], k=1) == {"rank1": 0.5}  # ties: class 0
    with pytest.raises(ValueError, match="labels"):
        rank_accuracy(probs, labels[:3])


def softmax_model(features=8, classes=6, seed=0):
    import keras

    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((features,)), keras.layers.Dense(classes, activation="softmax")]
    )


def test_evaluate_classifier_logs_to_the_run(tmp_path):
    import tensorflow as tf

    from cvlab.runs import RunRecord
    from cvlab.train import evaluate_classifier, rank_accuracy

    x, y = tiny_data(n=30, features=8, classes=6, seed=1)
    names = [f"c{i}" for i in range(6)]
    model = softmax_model()
    run = cvlab.runs.start(tmp_path / "run")
    result = evaluate_classifier(model, x, y, names, run=run, batch_size=16)

    expected = rank_accuracy(model.predict(x, verbose=0), y)
    assert result["rank1"] == pytest.approx(expected["rank1"])
    assert result["rank5"] == pytest.approx(expected["rank5"])
    assert result["test_accuracy"] == result["rank1"]
    assert result["confusion_matrix"].shape == (6, 6)
    assert result["confusion_matrix"].sum() == 30
    assert result["report"]["accuracy"] == pytest.approx(result["rank1"])
    assert "c5" in result["report_text"]

    record = RunRecord.load(run.run_dir)
    assert {"rank1", "rank5", "test_accuracy"} <= set(record.metrics)
    assert record.metrics["rank1"] == pytest.approx(result["rank1"])
    assert (run.run_dir / "figures" / "confusion_matrix.png").stat().st_size > 0
    assert (run.run_dir / "classification_report.txt").read_text().count("c3") == 1
    saved = json.loads((run.run_dir / "record.json").read_text())
    assert saved["artifacts"]["classification_report"] == "classification_report.txt"
    assert saved["artifacts"]["figure:confusion_matrix"] == "figures/confusion_matrix.png"

    # a tf.data.Dataset of (x, y) batches gives the same scores
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(7)
    again = evaluate_classifier(model, dataset, None, names)
    assert again["rank1"] == pytest.approx(result["rank1"])
    np.testing.assert_array_equal(again["labels"], y)

    # fewer than 5 classes: no rank-5
    three = evaluate_classifier(softmax_model(classes=3), x, y % 3, ["a", "b", "c"])
    assert "rank5" not in three and 0.0 <= three["rank1"] <= 1.0
    with pytest.raises(ValueError, match="class names"):
        evaluate_classifier(model, x, y, ["a", "b"])


def test_evaluate_classifier_with_ten_crops():
    import keras

    from cvlab.data.preprocess import ten_crop
    from cvlab.train import evaluate_classifier

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((8, 8, 3)),
            keras.layers.Conv2D(4, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(),
            keras.layers.Dense(6, activation="softmax"),
        ]
    )
    images = np.random.default_rng(0).random((3, 12, 12, 3)).astype("float32")
    result = evaluate_classifier(
        model, images, [0, 1, 2], [str(i) for i in range(6)], ten_crop_size=8
    )
    assert result["probabilities"].shape == (3, 6)
    by_hand = model.predict(ten_crop(images[1], 8), verbose=0).mean(axis=0)
    np.testing.assert_allclose(result["probabilities"][1], by_hand, rtol=1e-5)


# -- precision --------------------------------------------------------------------------------


def test_precision_policy_is_set_and_restored(monkeypatch):
    import keras

    from cvlab.train import precision
    from cvlab.train.precision import compile_options, configure_precision

    before = keras.mixed_precision.global_policy().name
    monkeypatch.setattr(precision, "has_gpu", lambda: False)
    try:
        with pytest.warns(RuntimeWarning, match="slow"):
            previous = configure_precision(True)
        assert previous == before == "float32"
        assert keras.mixed_precision.global_policy().name == "mixed_float16"
        assert keras.layers.Dense(2).compute_dtype == "float16"
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert configure_precision(False) == "mixed_float16"
        assert keras.mixed_precision.global_policy().name == "float32"
        assert configure_precision() == "float32"  # off by default
    finally:
        keras.mixed_precision.set_global_policy(before)

    assert compile_options() == {"jit_compile": False}
    assert compile_options(True) == {"jit_compile": True}
    assert compile_options("auto") == {"jit_compile": "auto"}
    with pytest.raises(ValueError, match="xla"):
        compile_options("yes")
