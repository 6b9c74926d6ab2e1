"""Warm start (`init_from="run:<id>"`): weights copied layer by layer where names and shapes
match, the rest skipped and reported, refusal when nothing matches, the parameter in the run
record and the parent link on the leaderboard; end to end through a chapter notebook (slow)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

import cvlab
from cvlab.report.page_data import build_page_data
from cvlab.report.store import LeaderboardStore
from cvlab.runs import RunRecord
from cvlab.train.warm_start import WarmStartError, init_from, layer_keys
from cvlab.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]


def vgg(seed: int, classes: int = 5):
    import keras

    keras.utils.set_random_seed(seed)
    return cvlab.models.build("minivggnet", input_shape=(16, 16, 3), classes=classes)


def saved_run(root: Path, run_id: str, model, grid: str = "g"):
    run = cvlab.runs.start(root / "experiments" / grid / run_id, seed=0)
    run.save_model(model)
    run.finish()
    return run


def weights_equal(a, b) -> bool:
    return all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def test_init_from_copies_every_layer_of_the_same_architecture(tmp_path):
    source = vgg(seed=1)
    saved_run(tmp_path, "src", source)
    target = vgg(seed=2)  # built later in this process: Keras numbered its layers further on
    assert [layer.name for layer in target.layers] != [layer.name for layer in source.layers]
    assert not weights_equal(target.get_weights(), source.get_weights())
    run = cvlab.runs.start(tmp_path / "experiments" / "g" / "child", seed=0)

    returned = init_from(target, "run:src", run=run)  # found in the run's own workspace

    assert returned is target
    assert weights_equal(target.get_weights(), source.get_weights())  # batch-norm statistics too
    weighted = len(layer_keys(source))
    params = RunRecord.load(run.run_dir).params
    assert params == {"init_from": "run:src", "init_from_copied": weighted, "init_from_skipped": 0}
    assert f"copied {weighted} of {weighted} layers" in run.record.notes[-1]


def test_init_from_skips_layers_whose_shapes_differ(tmp_path, capsys):
    source = vgg(seed=1, classes=5)
    saved_run(tmp_path, "src", source)
    target = vgg(seed=2, classes=3)  # another class count: a new head
    head_before = target.layers[-2].get_weights()  # the Dense before the softmax
    run = cvlab.runs.start(tmp_path / "experiments" / "g" / "child", seed=0)

    init_from(target, "run:g/src", run=run, root=tmp_path)

    assert weights_equal(target.layers[-2].get_weights(), head_before)  # kept its own weights
    copied = [(t, s) for t, s in zip(target.layers, source.layers, strict=True) if t.weights][:-1]
    assert copied and all(weights_equal(t.get_weights(), s.get_weights()) for t, s in copied)
    out = capsys.readouterr().out
    assert "skipped 1:" in out and "(512, 5)" in out and "(512, 3)" in out
    assert run.record.params["init_from_skipped"] == 1
    assert run.record.params["init_from_copied"] == len(copied)


def test_layers_named_by_the_builder_must_keep_their_name(tmp_path):
    import keras

    def model(head: str):
        keras.utils.set_random_seed(0)
        inputs = keras.Input((4,))
        hidden = keras.layers.Dense(8, name="features")(inputs)
        return keras.Model(inputs, keras.layers.Dense(2, name=head)(hidden))

    source = model("labels")
    saved_run(tmp_path, "src", source)
    target = model("other_head")
    for layer in target.layers[1:]:
        layer.set_weights([np.zeros_like(w) for w in layer.get_weights()])
    init_from(target, "run:src", root=tmp_path)
    assert weights_equal(target.get_layer("features").get_weights(), source.layers[1].get_weights())
    assert not any(w.any() for w in target.get_layer("other_head").get_weights())  # not copied


def test_a_nested_backbone_is_matched_inside(tmp_path):
    import keras

    def classifier(seed: int, classes: int):
        keras.utils.set_random_seed(seed)
        body = keras.Sequential(
            [keras.Input((8, 8, 3)), keras.layers.Conv2D(4, 3), keras.layers.BatchNormalization()]
        )  # auto-named: sequential, then sequential_1 in the second model
        inputs = keras.Input((8, 8, 3))
        features = keras.layers.Flatten()(body(inputs))
        return keras.Model(inputs, keras.layers.Dense(classes)(features))

    source = classifier(1, classes=3)
    saved_run(tmp_path, "src", source)
    target = classifier(2, classes=5)
    assert source.layers[1].name != target.layers[1].name
    init_from(target, "run:src", root=tmp_path)
    assert weights_equal(target.layers[1].get_weights(), source.layers[1].get_weights())
    assert target.layers[-1].get_weights()[0].shape == (144, 5)


def test_init_from_refuses_what_it_cannot_use(tmp_path):
    import keras

    saved_run(tmp_path, "src", vgg(seed=1))
    unrelated = keras.Sequential([keras.Input((3,)), keras.layers.Dense(2, name="only")])
    with pytest.raises(WarmStartError, match="no layer of"):
        init_from(unrelated, "run:src", root=tmp_path)
    with pytest.raises(WarmStartError, match=r"nope.*model\.keras"):
        init_from(vgg(seed=1), "run:nope", root=tmp_path)
    with pytest.raises(WarmStartError, match="run:<run_id>"):
        init_from(vgg(seed=1), "src", root=tmp_path)
    model = vgg(seed=3)
    before = model.get_weights()
    assert init_from(model, None) is model and weights_equal(model.get_weights(), before)


def test_the_leaderboard_lists_the_earlier_run_as_parent(tmp_path):
    saved_run(tmp_path, "src", vgg(seed=1))
    child = cvlab.runs.start(tmp_path / "experiments" / "g" / "child", seed=0)
    init_from(vgg(seed=2), "run:src", run=child)
    child.finish()
    records = [RunRecord.load(tmp_path / "experiments" / "g" / name) for name in ("src", "child")]
    for rec in records:
        rec.grid = "g"  # started outside a grid: the runner would have set it
    store = LeaderboardStore(Workspace.at(tmp_path).leaderboard_db)
    store.register_grid("g", notebook="nb", spec_path="", rank_metric="m", rank_mode="max")
    store.upsert(records)
    runs = {
        r["id"]: r
        for r in build_page_data(store.frame(), store.records(), Workspace.at(tmp_path))["runs"]
    }
    assert runs["child"]["parent"] == {"key": "g/src", "param": "init_from", "ref": "run:src"}
    assert runs["src"]["parent"] is None


def test_cvlab_train_warm_start_is_an_attribute_after_import_cvlab():
    assert cvlab.train.warm_start.init_from is init_from


@pytest.mark.slow
def test_a_chapter_notebook_warm_starts_from_an_earlier_run(tmp_path):
    """10_resnet's smoke row, then the same row with init_from = that run: the second run copies
    every layer, records init_from, and the page shows the first as its parent. The first run
    recorded its preprocessing through the recipe, so it predicts in this process too."""
    from cvlab.grid.cli import main

    from chapter_runs import run_smoke_row

    _, first = run_smoke_row("resnet_cifar", tmp_path)
    out = tmp_path / "out"
    spec = yaml.safe_load((REPO / "grids" / "resnet_cifar.yaml").read_text())
    spec["notebook"] = str((REPO / "grids" / spec["notebook"]).resolve())
    smoke = next(row for row in spec["runs"] if row.get("smoke"))
    spec["runs"] = [{**smoke, "init_from": f"run:{first.run_id}"}]
    path = tmp_path / "warm.yaml"
    path.write_text(yaml.safe_dump({**spec, "name": "resnet_cifar"}))
    assert main([str(path), "--out", str(out), "--quiet"]) == 0

    (second_dir,) = [
        d for d in (out / "experiments" / "resnet_cifar").iterdir() if d.name != first.run_id
    ]
    second = RunRecord.load(second_dir)
    assert second.status == "ok", second.error
    assert second.params["init_from"] == f"run:{first.run_id}"
    assert second.params["init_from_skipped"] == 0 and second.params["init_from_copied"] > 10
    assert any(note.startswith(f"init_from run:{first.run_id}: copied") for note in second.notes)
    store = LeaderboardStore(Workspace.at(out).leaderboard_db)
    runs = {
        r["id"]: r
        for r in build_page_data(store.frame(), store.records(), Workspace.at(out))["runs"]
    }
    assert runs[second.run_id]["parent"]["key"] == f"resnet_cifar/{first.run_id}"
    assert f"resnet_cifar/{first.run_id}" in Workspace.at(out).leaderboard_page.read_text()

    assert first.preprocessing is not None and first.preprocessing.recipe == "train_classifier"
    loaded = cvlab.runs.load(f"run:{first.run_id}", root=out)
    data = cvlab.data.load(
        first.params["dataset"], seed=first.seed, **first.params["dataset_options"]
    )
    predicted = loaded.probabilities(data.x_test).argmax(axis=1)
    assert np.mean(predicted == data.y_test) == pytest.approx(first.metrics["rank1"])
