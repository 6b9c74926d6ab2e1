"""Using a finished run: `cvlab.runs.load` and `cvlab predict` rebuild the model and the
preprocessing a run recorded and give the labels of the run's own evaluation, in this process
and in a fresh one; runs without a model or without recorded preprocessing are refused."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cvlab
from cvlab.cli import main as cvlab_main
from cvlab.runs import RunRecord
from cvlab.runs.load import NoPreprocessingError, NoSavedModelError, prepare
from cvlab.runs.lookup import RunModelNotFoundError
from cvlab.runs.record import Preprocessing

from conftest import small_cnn

REPO = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.backends  # predict on every backend


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A run trained through `train_classifier` on real photo crops (16 px, RGB means), its
    test images written as PNG files, in a workspace of its own."""
    from cvlab.train.recipe import TrainingConfig, train_classifier

    root = tmp_path_factory.mktemp("workspace")
    data = cvlab.data.load("photo-crops", size=16, crops_per_image=40, seed=0)
    run = cvlab.runs.start(root / "experiments" / "photos" / "run1", seed=0)
    model = small_cnn(data.input_shape, data.num_classes)
    config = TrainingConfig(optimizer="adam", learning_rate=0.01, epochs=3, batch_size=32, seed=0)
    metrics = train_classifier(run, data, model, config)
    run.save_model(model)
    run.finish()
    folder = root / "new_images"
    folder.mkdir()
    for i, image in enumerate(data.x_test):  # photo-crops pixels are k/255: PNG keeps them exactly
        Image.fromarray(np.rint(image * 255).astype(np.uint8)).save(folder / f"{i:03d}.png")
    return {"root": root, "data": data, "metrics": metrics, "folder": folder}


def test_a_loaded_run_predicts_what_the_run_evaluated(trained):
    data, metrics = trained["data"], trained["metrics"]
    record = RunRecord.load(trained["root"] / "experiments" / "photos" / "run1")
    prep = record.preprocessing
    assert prep.recipe == "train_classifier" and prep.scale == "0-1" and not prep.aspect
    assert prep.size == (16, 16) and prep.channels == 3 and prep.class_names == data.class_names
    assert prep.means == pytest.approx(record.params["rgb_means"], abs=1e-6)

    loaded = cvlab.runs.load("run:run1", root=trained["root"])
    probs = loaded.probabilities(data.x_test)  # the Dataset's own [0, 1] arrays
    np.testing.assert_allclose(probs, metrics["probabilities"], atol=1e-6)
    evaluated = metrics["probabilities"].argmax(axis=1)
    assert np.mean(probs.argmax(axis=1) == data.y_test) == pytest.approx(record.metrics["rank1"])

    files = sorted(trained["folder"].iterdir())
    predictions = loaded.predict(files)
    assert [p.label for p in predictions] == [data.class_names[i] for i in evaluated]
    np.testing.assert_allclose(
        [p.probability for p in predictions], metrics["probabilities"].max(axis=1), atol=1e-6
    )
    top3 = loaded.predict_top(files[:4], 3)
    assert [len(t) for t in top3] == [3] * 4 and all(
        t[0].probability >= t[2].probability for t in top3
    )
    uint8 = np.rint(data.x_test * 255).astype(np.uint8)  # 0-255 pixels come out the same
    np.testing.assert_allclose(loaded.probabilities(uint8), probs, atol=1e-6)


@pytest.mark.slow
def test_cvlab_predict_in_a_fresh_process(trained):
    data, metrics = trained["data"], trained["metrics"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    command = [
        sys.executable,
        "-m",
        "cvlab.cli",
        "predict",
        "run:photos/run1",
        str(trained["folder"]),
    ]
    done = subprocess.run(
        [*command, "--root", str(trained["root"]), "--json", "--top", "2"],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in done.stdout.splitlines()]
    assert [Path(r["path"]).name for r in rows] == [f"{i:03d}.png" for i in range(len(data.x_test))]
    evaluated = metrics["probabilities"].argmax(axis=1)
    assert [r["predictions"][0]["label"] for r in rows] == [data.class_names[i] for i in evaluated]
    np.testing.assert_allclose(
        [r["predictions"][0]["probability"] for r in rows],
        metrics["probabilities"].max(axis=1),
        atol=1e-5,
    )
    assert all(len(r["predictions"]) == 2 for r in rows)


@pytest.mark.slow
@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_cvlab_predict_on_another_backend(trained, backend):
    """A model saved under one Keras backend predicts the same under another (cvlab predict in a
    process with KERAS_BACKEND set): a run trained with TensorFlow serves on JAX or PyTorch."""
    import importlib.util

    import keras

    if keras.config.backend() == backend or importlib.util.find_spec(backend) is None:
        pytest.skip(f"needs {backend} installed and a parent process on another backend")
    metrics = trained["metrics"]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "KERAS_BACKEND": backend}
    code = (
        "import json, sys, keras, cvlab; "
        "loaded = cvlab.runs.load('run:photos/run1', root=sys.argv[1]); "
        "probs = loaded.probabilities(sorted(__import__('pathlib').Path(sys.argv[2]).iterdir())); "
        "print(json.dumps({'backend': keras.config.backend(), 'probs': probs.tolist()}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(trained["root"]), str(trained["folder"])],
        capture_output=True, text=True, env=env, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result["backend"] == backend
    np.testing.assert_allclose(result["probs"], metrics["probabilities"], atol=1e-5)


def test_cvlab_predict_prints_one_line_per_image(trained, capsys):
    files = sorted(trained["folder"].iterdir())[:3]
    code = cvlab_main(["predict", "run:run1", *map(str, files), "--root", str(trained["root"])])
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and len(lines) == 3
    names = cvlab.runs.load("run:run1", root=trained["root"]).predict(files)
    for line, file, pred in zip(lines, files, names, strict=True):
        assert line.startswith(f"{file}\t{pred.label} ") and line.endswith("%")


def test_an_unreadable_image_is_named(trained, tmp_path, capsys):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"not an image")
    code = cvlab_main(["predict", "run:run1", str(bad), "--root", str(trained["root"])])
    assert code == 2 and "broken.jpg: cannot read this image" in capsys.readouterr().err


def test_a_run_without_a_model_is_refused(tmp_path, capsys):
    run = cvlab.runs.start(tmp_path / "experiments" / "g" / "nomodel", seed=0)
    run.log_preprocessing(size=8, class_names=["a", "b"])
    run.finish()
    with pytest.raises(NoSavedModelError, match=r"saved no model\.keras"):
        cvlab.runs.load("run:nomodel", root=tmp_path)
    assert cvlab_main(["predict", "run:nomodel", __file__, "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "run:nomodel" in err and "saved no model.keras" in err and "run.save_model" in err
    with pytest.raises(RunModelNotFoundError, match="nope"):
        cvlab.runs.load("run:nope", root=tmp_path)
    assert cvlab_main(["predict", "run:nope", __file__, "--root", str(tmp_path)]) == 2
    assert "no saved model for run 'nope'" in capsys.readouterr().err


def test_a_run_without_recorded_preprocessing_is_refused(tmp_path, capsys):
    run = cvlab.runs.start(tmp_path / "experiments" / "g" / "old", seed=0)
    run.save_model(small_cnn((8, 8, 3), 2))
    run.finish()
    with pytest.raises(NoPreprocessingError, match="train_classifier"):
        cvlab.runs.load(run.run_dir)  # a run folder works as well as run:<id>
    assert cvlab_main(["predict", "run:old", __file__, "--root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "did not record the preprocessing" in err and "run.log_preprocessing" in err


def test_records_without_preprocessing_still_load(tmp_path):
    old = {"run_id": "r0", "grid": "g", "params": {"x": 1}, "status": "ok", "metrics": {"m": 1}}
    (tmp_path / "record.json").write_text(json.dumps(old))
    record = RunRecord.load(tmp_path)
    assert record.preprocessing is None and record.params == {"x": 1}
    run = cvlab.runs.start(tmp_path)
    spec = run.log_preprocessing(
        size=(6, 8), class_names=["a", "b"], aspect=True, scale="0-255",
        means={"R": 120.0, "G": 110.0, "B": 100.0}, stored_size=10,
    )  # fmt: skip
    again = RunRecord.load(tmp_path).preprocessing
    assert again == spec and again.size == (6, 8) and again.stored_size == (10, 10)


@pytest.mark.parametrize(
    ("options", "fragment"),
    [
        ({"scale": "0-1", "means": {"R": 120.0, "G": 110.0, "B": 100.0}}, "do not look like"),
        ({"scale": "0-255", "means": {"R": 0.5, "G": 0.4, "B": 0.3}}, "do not look like"),
        ({"scale": "255"}, "'0-1'"),
        ({"class_names": ["only"]}, "name every class"),
        ({"size": (8, 0)}, "size="),
        ({"means": {"R": 0.5}}, "missing channel"),
    ],
)
def test_log_preprocessing_refuses_what_would_mislead_later(tmp_path, options, fragment):
    run = cvlab.runs.start(tmp_path)
    arguments = {"size": 8, "class_names": ["a", "b"], **options}
    with pytest.raises(ValueError, match=fragment):
        run.log_preprocessing(**arguments)


def test_prepare_scales_resizes_and_centres():
    prep = Preprocessing(size=(4, 4), class_names=["a", "b"], means={"R": 0.5, "G": 0.25, "B": 0})
    pixels = np.full((2, 4, 4, 3), 255, dtype=np.uint8)
    np.testing.assert_allclose(prepare(pixels, prep)[0, 0, 0], [0.5, 0.75, 1.0])
    np.testing.assert_allclose(prepare(pixels / 255.0, prep), prepare(pixels, prep))
    wide = np.zeros((1, 4, 8, 3), dtype=np.uint8)
    wide[:, :, 2:6] = 255  # a white centre square between black sides
    cropped = prepare(wide, prep.model_copy(update={"aspect": True, "means": None}))
    assert cropped.shape == (1, 4, 4, 3) and cropped.min() == 1.0  # the centre, not squeezed
    squeezed = prepare(wide, prep.model_copy(update={"means": None}))
    assert squeezed.min() < 1.0  # the black sides squeezed in
    grey = Preprocessing(size=(4, 4), channels=1, class_names=["a", "b"], scale="0-255")
    assert prepare(pixels, grey).shape == (2, 4, 4, 1) and prepare(pixels, grey).max() == 255.0


@pytest.mark.slow
def test_an_hdf5_run_predicts_its_resized_evaluation(tmp_path):
    """`train_classifier_hdf5` records 0-255 pixels, the mean file's means, the stored size and
    the patch size; the loaded run reproduces the resized evaluation from the stored images and
    from files."""
    from cvlab.data import HDF5DatasetReader, build_hdf5
    from cvlab.data.preprocess import load_means
    from cvlab.train.recipe import TrainingConfig, train_classifier_hdf5

    files = build_hdf5(
        "photo-crops", tmp_path / "h5" / "pc.hdf5", size=24, aspect=True, progress=False,
        crops_per_image=30, seed=0,
    )  # fmt: skip
    with HDF5DatasetReader(files["test"]) as reader:
        images, names = reader.images[:], reader.class_names
    run = cvlab.runs.start(tmp_path / "experiments" / "g" / "h1", seed=0)
    model = small_cnn((20, 20, 3), len(names))
    config = TrainingConfig(optimizer="adam", learning_rate=0.001, epochs=2, batch_size=32, seed=0)
    result = train_classifier_hdf5(run, files, model, config, patch=20)
    run.save_model(model)
    run.finish()

    prep = RunRecord.load(run.run_dir).preprocessing
    assert (prep.size, prep.stored_size, prep.scale, prep.aspect) == (
        (20, 20),
        (24, 24),
        "0-255",
        True,
    )
    assert prep.means == pytest.approx(load_means(files["mean"]))
    loaded = cvlab.runs.load("run:g/h1", root=tmp_path)
    resized = result["resized"]["probabilities"]
    np.testing.assert_allclose(loaded.probabilities(images), resized, atol=1e-5)
    folder = tmp_path / "png"
    folder.mkdir()
    for i, image in enumerate(images[:12]):
        Image.fromarray(image).save(folder / f"{i:02d}.png")
    labels = [p.label for p in loaded.predict(sorted(folder.iterdir()))]
    assert labels == [names[i] for i in resized[:12].argmax(axis=1)]


def test_a_run_recording_its_data_preprocessing_predicts_files(tmp_path, capsys):
    """A notebook that trains its own way (the quickstart: `model.fit` on a Dataset) records
    `cvlab.data.preprocessing_of(data)`; `cvlab predict` then takes a colour file of any size
    and prepares it exactly as the test arrays the model was evaluated on."""
    data = cvlab.data.load("mnist5k", seed=0)
    run = cvlab.runs.start(tmp_path / "experiments" / "quickstart" / "qs", seed=0)
    model = small_cnn(data.input_shape, data.num_classes)
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy")
    model.fit(data.x_train[:256], data.y_train[:256], epochs=1, batch_size=64, verbose=0)
    run.log_preprocessing(cvlab.data.preprocessing_of(data, recipe="00_quickstart"))
    run.save_model(model)
    run.finish()
    digit = np.rint(data.x_test[0, ..., 0] * 255).astype(np.uint8)
    grey_file, colour_file = tmp_path / "digit.png", tmp_path / "colour.png"
    Image.fromarray(digit).save(grey_file)
    Image.fromarray(np.repeat(digit[..., None], 3, axis=-1)).resize((56, 56)).save(colour_file)
    loaded = cvlab.runs.load("run:qs", root=tmp_path)
    assert np.array_equal(loaded.preprocess(grey_file), data.x_test[:1])
    code = cvlab_main(
        ["predict", "run:qs", str(grey_file), str(colour_file), "--root", str(tmp_path)]
    )
    lines = capsys.readouterr().out.splitlines()
    assert code == 0 and len(lines) == 2
    expected = data.class_names[int(model.predict(data.x_test[:1], verbose=0).argmax())]
    assert lines[0].startswith(f"{grey_file}\t{expected} ")
