"""cvlab.registry and the registries built on it: models and data sets register where they are
defined, are created by name, listed with patterns (Python and shell), and listing them loads no
TensorFlow."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cvlab.data
import cvlab.models
from cvlab.cli import main as cvlab_main
from cvlab.errors import UnknownNameError
from cvlab.models.applications import WeightsNotAvailableError
from cvlab.registry import Registry, first_line, lazy_module

ROOT = Path(__file__).resolve().parents[1]


# ------------------------------------------------------------------ the Registry itself


def test_register_create_list_and_unknown_names():
    reg = Registry("widget")

    @reg.register
    def small(size: int = 3, *, colour: str = "red"):
        """A small widget.

        More text that is not the description."""
        return ("small", size, colour)

    @reg.register(name="big-one", description="the big one")
    def big(size, **rest):
        return ("big", size)

    assert reg.names() == ["big-one", "small"] and reg.names("s*") == ["small"]
    assert reg.names("*one") == ["big-one"] and reg.names("x*") == []
    assert reg.create("small", colour="blue") == ("small", 3, "blue")
    entry = reg.get("small")
    assert entry.description == "A small widget."
    assert [str(o) for o in entry.options] == ["size=3", "colour='red'"]
    assert reg.get("big-one").option_names() == ["size"]  # **rest is not an option
    assert reg.get("big-one").options[0].required
    assert reg.get("big-one").description == "the big one"
    assert entry.target == f"{__name__}:small"
    with pytest.raises(UnknownNameError, match=r"unknown widget 'smal'; choose one of: big-one"):
        reg.create("smal")
    assert reg.suggest("smal") == "small" and reg.suggest("zzz") is None
    with pytest.raises(ValueError, match="registered twice"):
        reg.register(lambda: None, name="small")
    reg.register(small)  # the same function again (a module reloaded) is fine


def test_first_line_takes_the_first_sentence_of_the_first_paragraph():
    assert first_line("One line.\n\nMore.") == "One line."
    assert first_line("Wrapped over\n    two lines. Then more.") == "Wrapped over two lines."
    assert first_line(None) == "" and first_line("No stop") == "No stop"


def test_lazy_module_imports_on_first_use():
    module = lazy_module("json.decoder")
    assert "lazy module 'json.decoder'" in repr(module)
    assert module.JSONDecodeError.__name__ == "JSONDecodeError"


@pytest.mark.parametrize(
    "code",
    [
        "import cvlab.models; cvlab.models.names(); cvlab.models.list_models('res*')",
        "import cvlab.data; cvlab.data.names(); cvlab.data.file_based_names()",
        "from cvlab.cli import main; main(['models']); main(['data', 'list', '--no-options'])",
    ],
)
def test_listing_loads_no_tensorflow(code, tmp_path):
    check = "import sys; assert not {'tensorflow', 'keras'} & set(sys.modules), sorted(m for m in sys.modules if m.split('.')[0] in ('keras', 'tensorflow'))[:5]"
    env = {"PYTHONPATH": str(ROOT / "lib"), "CVLAB_DATA": str(tmp_path), "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-c", f"{code}\n{check}"], env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr


# ------------------------------------------------------------------ models


def test_models_register_in_their_modules():
    names = cvlab.models.names()
    assert {"lenet", "resnet", "minivggnet", "fchead", "vgg16", "efficientnet_lite0"} <= set(names)
    assert cvlab.models.names("res*") == ["resnet", "resnet50"]
    assert cvlab.models._BUILDERS["lenet"] == "cvlab.models.small:lenet"
    assert cvlab.models._BUILDERS["xception"] == "cvlab.models.applications:xception"
    assert cvlab.models.MODELS.get("vgg16").builder is cvlab.models.applications.vgg16
    with pytest.raises(UnknownNameError, match="unknown model 'lenett'; choose one of: alexnet"):
        cvlab.models.build("lenett")


def test_list_models_rows_carry_the_keras_option_names():
    rows = {row.name: row for row in cvlab.models.list_models()}
    for row in rows.values():
        names = [o.name for o in row.options]
        assert {"input_shape", "classes", "include_top", "weights", "pooling"} <= set(names)
        assert row.description and ":" in row.target
    assert "preset" in [o.name for o in rows["resnet"].options]
    assert "freeze" in [o.name for o in rows["vgg16"].options]
    assert "VGG16" in rows["vgg16"].description
    assert [r.name for r in cvlab.models.list_models("*googlenet")] == [
        "deepergooglenet",
        "minigooglenet",
    ]


def test_book_models_take_the_keras_vocabulary(tmp_path):
    model = cvlab.models.build("shallownet", input_shape=(8, 8, 1), classes=2, include_top=True)
    assert model.output_shape == (None, 2)
    path = tmp_path / "shallow.weights.h5"
    model.save_weights(path)
    again = cvlab.models.build("shallownet", input_shape=(8, 8, 1), classes=2, weights=str(path))
    for a, b in zip(model.get_weights(), again.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    fresh = cvlab.models.build("shallownet", input_shape=(8, 8, 1), classes=2, weights="none")
    assert not all(
        np.array_equal(a, b) for a, b in zip(model.get_weights(), fresh.get_weights(), strict=True)
    )
    with pytest.raises(ValueError, match=r"lenet builds its own classifier.*vgg16"):
        cvlab.models.build("lenet", input_shape=(28, 28, 1), classes=10, include_top=False)
    with pytest.raises(ValueError, match="pooling='avg'"):
        cvlab.models.build("lenet", input_shape=(28, 28, 1), classes=10, pooling="avg")
    with pytest.raises(WeightsNotAvailableError, match="lenet has no ImageNet weights"):
        cvlab.models.build("lenet", input_shape=(28, 28, 1), classes=10, weights="imagenet")


def test_cvlab_models_command(capsys):
    assert cvlab_main(["models", "res*"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("resnet ") and "ResNet.build" in out[0]
    assert out[1].strip().startswith("options: input_shape=None, classes=None, stages=None")
    assert out[2].startswith("resnet50 ") and len(out) == 4
    assert cvlab_main(["models", "--no-options"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == len(cvlab.models.names())
    assert cvlab_main(["models", "nothing*"]) == 0
    assert "no model matches 'nothing*'" in capsys.readouterr().out


# ------------------------------------------------------------------ data sets


def test_data_sets_register_in_their_modules():
    from cvlab.data import catalog

    entry = catalog.DATASETS.get("flowers17")
    assert entry.target == "cvlab.data.flowers17:load_flowers17"
    assert entry.extra["index"].__name__ == "index_flowers17"
    assert entry.extra["catalog"] is catalog.CATALOG["flowers17"]
    assert catalog.entry("17flowers").name == "flowers17"
    # folders of pictures are importable, not loadable
    assert "style-images" in catalog.CATALOG and "style-images" not in cvlab.data.names()
    assert catalog.DATASETS.get("mnist5k").target == "cvlab.data.packaged:load_mnist5k"
    assert catalog.indexer("cifar10").__name__ == "index_cifar10"
    assert catalog.layouts() == ["image-folder"]
    with pytest.raises(UnknownNameError, match="unknown file-based data set 'mnist5k'"):
        cvlab.data.index("mnist5k")


def test_list_datasets_rows(tmp_path, monkeypatch):
    monkeypatch.setenv("CVLAB_DATA", str(tmp_path))  # an empty data cache
    rows = {row.name: row for row in cvlab.data.list_datasets()}
    assert rows["mnist5k"].kind == "built-in" and rows["mnist5k"].survey is None
    assert rows["cifar10"].kind == "importable" and not rows["cifar10"].installed
    assert rows["cifar10"].how == "cvlab data import cifar10 PATH  or  cvlab data fetch cifar10"
    assert rows["dogs-vs-cats"].how == "cvlab data import dogs-vs-cats PATH"
    assert "size=32" in rows["cifar10"].options_text() and rows["cifar10"].file_based
    assert not rows["style-images"].loadable
    assert [r.name for r in cvlab.data.list_datasets("*cifar*")] == ["cifar10"]
