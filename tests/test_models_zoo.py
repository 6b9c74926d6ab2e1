"""The book's other networks (MiniVGGNet, AlexNet, MiniGoogLeNet, DeeperGoogLeNet, FCHeadNet) and the
keras.applications backbones: shapes, parameter counts, L2, BN, layer order, weights resolution."""

from __future__ import annotations

import importlib
import math
import time

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from cvlab.errors import CvlabError  # noqa: E402
from cvlab.models import applications  # noqa: E402
from cvlab.models.alexnet import alexnet  # noqa: E402
from cvlab.models.applications import (  # noqa: E402
    AmbiguousRunError,
    WeightsNotAvailableError,
    backbone,
    find_run_model,
)
from cvlab.models.googlenet import deepergooglenet, minigooglenet  # noqa: E402
from cvlab.models.heads import fchead  # noqa: E402
from cvlab.models.resnet import resnet  # noqa: E402
from cvlab.models.vgg import minivggnet  # noqa: E402

# The lines for the registry in cvlab/models/__init__.py (name -> "module:function").
ZOO = {
    "minivggnet": "cvlab.models.vgg:minivggnet",
    "alexnet": "cvlab.models.alexnet:alexnet",
    "minigooglenet": "cvlab.models.googlenet:minigooglenet",
    "deepergooglenet": "cvlab.models.googlenet:deepergooglenet",
    "fchead": "cvlab.models.heads:fchead",
    "vgg16": "cvlab.models.applications:vgg16",
    "vgg19": "cvlab.models.applications:vgg19",
    "resnet50": "cvlab.models.applications:resnet50",
    "inception_v3": "cvlab.models.applications:inception_v3",
    "xception": "cvlab.models.applications:xception",
    "densenet121": "cvlab.models.applications:densenet121",
    "mobilenet_v2": "cvlab.models.applications:mobilenet_v2",
    "efficientnet_b0": "cvlab.models.applications:efficientnet_b0",
}


# ------------------------------------------------------------------ counting parameters by hand
# A CONV k×k from c_in to c_out with bias: k·k·c_in·c_out + c_out. A BN: 4 per channel (gamma, beta,
# moving mean, moving variance). An FC: n_in·n_out + n_out. Every CONV and FC in these networks keeps
# its bias, as in the book.


def conv(k: int, c_in: int, c_out: int) -> int:
    return k * k * c_in * c_out + c_out


def bn(c: int) -> int:
    return 4 * c


def fc(n_in: int, n_out: int) -> int:
    return n_in * n_out + n_out


def minivggnet_params(shape, classes) -> int:
    """(CONV 32 → BN) ×2 → POOL 2 → (CONV 64 → BN) ×2 → POOL 2 → FC 512 → BN → FC classes."""
    h, w, c = shape
    total = conv(3, c, 32) + bn(32) + conv(3, 32, 32) + bn(32)
    total += conv(3, 32, 64) + bn(64) + conv(3, 64, 64) + bn(64)
    flat = (h // 2 // 2) * (w // 2 // 2) * 64
    return total + fc(flat, 512) + bn(512) + fc(512, classes)


def alexnet_params(shape, classes) -> int:
    """Table 10.1 with the code's "same" CONVs: 96 11×11/4, 256 5×5, 384, 384, 256 3×3, FC 4096 ×2."""
    h, w, c = shape

    def side(n):  # "same" stride 4, then three 3×3/2 "valid" POOLs
        n = math.ceil(n / 4)
        for _ in range(3):
            n = (n - 3) // 2 + 1
        return n

    total = conv(11, c, 96) + bn(96) + conv(5, 96, 256) + bn(256)
    total += conv(3, 256, 384) + bn(384) + conv(3, 384, 384) + bn(384) + conv(3, 384, 256) + bn(256)
    flat = side(h) * side(w) * 256
    return total + fc(flat, 4096) + bn(4096) + fc(4096, 4096) + bn(4096) + fc(4096, classes)


def minigooglenet_params(shape, classes) -> int:
    """Figure 11.2: conv_module = CONV + BN; Mininception (k1, k3); downsample (K) + MAX POOL."""
    h, w, c = shape

    def module(k, c_in, c_out):
        return conv(k, c_in, c_out) + bn(c_out)

    total, ch, side_h, side_w = module(3, c, 96), 96, h, w
    plan = [
        (32, 32),
        (32, 48),
        80,
        (112, 48),
        (96, 64),
        (80, 80),
        (48, 96),
        96,
        (176, 160),
        (176, 160),
    ]
    for step in plan:
        if isinstance(step, tuple):  # inception: 1×1 and 3×3 branches, concatenated
            k1, k3 = step
            total += module(1, ch, k1) + module(3, ch, k3)
            ch = k1 + k3
        else:  # downsample: 3×3/2 valid CONV beside a 3×3/2 MAX POOL
            total += module(3, ch, step)
            ch += step
            side_h, side_w = (side_h - 3) // 2 + 1, (side_w - 3) // 2 + 1
    pooled = (side_h // 7) * (side_w // 7)  # AVG POOL 7×7 ("valid", stride 7), FLATTEN
    return total + fc(pooled * ch, classes)


def deepergooglenet_params(shape, classes) -> int:
    """Figure 11.9 without 5a/5b: CONV 5×5 64, CONV 1×1 64, CONV 3×3 192, inceptions 3a-4e."""
    h, w, c = shape

    def module(k, c_in, c_out):
        return conv(k, c_in, c_out) + bn(c_out)

    total = module(5, c, 64) + module(1, 64, 64) + module(3, 64, 192)
    ch = 192
    table = [  # #1×1, #3×3 reduce, #3×3, #5×5 reduce, #5×5, pool proj (Szegedy et al.)
        (64, 96, 128, 16, 32, 32),
        (128, 128, 192, 32, 96, 64),
        (192, 96, 208, 16, 48, 64),
        (160, 112, 224, 24, 64, 64),
        (128, 128, 256, 24, 64, 64),
        (112, 144, 288, 32, 64, 64),
        (256, 160, 320, 32, 128, 128),
    ]
    for n1, r3, n3, r5, n5, proj in table:
        total += module(1, ch, n1)
        total += module(1, ch, r3) + module(3, r3, n3)
        total += module(1, ch, r5) + module(5, r5, n5)
        total += module(1, ch, proj)
        ch = n1 + n3 + n5 + proj
    side_h, side_w = h, w
    for _ in range(4):  # pool1 … pool4, 3×3/2 "same"
        side_h, side_w = math.ceil(side_h / 2), math.ceil(side_w / 2)
    pooled = (side_h // 4) * (side_w // 4)  # pool5: AVG POOL 4×4
    return total + fc(pooled * ch, classes)


def fchead_params(features_shape, classes, units=256) -> int:
    return fc(math.prod(features_shape), units) + fc(units, classes)


# The book (Practitioner Bundle) prints no `model.summary()` "Total params" line for any of these
# networks, so the hand counts above are the reference; the totals for the book's own settings are
# pinned too (worked out with the formulas by hand, e.g. MiniVGGNet on CIFAR-10: 896 + 128 + 9,248
# + 128 + 18,496 + 256 + 36,928 + 256 + 2,097,664 + 2,048 + 5,130 = 2,171,178) so that a formula
# cannot drift along with the code.
BOOK_TOTALS = [
    (minivggnet, {"preset": "cifar10"}, minivggnet_params, (32, 32, 3), 10, 2_171_178),
    (minivggnet, {"preset": "flowers17"}, minivggnet_params, (64, 64, 3), 17, 8_466_225),
    (alexnet, {"preset": "dogs-vs-cats"}, alexnet_params, (227, 227, 3), 2, 58_327_810),
    (minigooglenet, {"preset": "cifar10"}, minigooglenet_params, (32, 32, 3), 10, 1_656_250),
    (
        deepergooglenet,
        {"preset": "tiny-imagenet"},
        deepergooglenet_params,
        (64, 64, 3),
        200,
        3_667_976,
    ),
    (fchead, {}, lambda shape, classes: fchead_params(shape, classes), (7, 7, 512), 17, 6_427_153),
]


@pytest.mark.parametrize(
    ("builder", "options", "formula", "shape", "classes", "total"),
    BOOK_TOTALS,
    ids=[
        "minivggnet-cifar10",
        "minivggnet-flowers17",
        "alexnet",
        "minigooglenet",
        "deeper",
        "fchead",
    ],
)
def test_parameter_counts_of_the_books_settings(builder, options, formula, shape, classes, total):
    assert formula(shape, classes) == total
    model = builder(**options)
    assert model.input_shape == (None, *shape)
    assert model.output_shape == (None, classes)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    frozen = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    assert trainable + frozen == model.count_params() == total


@pytest.mark.parametrize(
    ("builder", "formula", "sizes"),
    [
        (minivggnet, minivggnet_params, (32, 48)),
        (alexnet, alexnet_params, (64, 100)),
        (minigooglenet, minigooglenet_params, (32, 64)),
        (deepergooglenet, deepergooglenet_params, (64, 128)),
    ],
    ids=["minivggnet", "alexnet", "minigooglenet", "deepergooglenet"],
)
def test_output_shape_and_count_for_two_input_sizes(builder, formula, sizes):
    for size in sizes:
        model = builder((size, size, 3), 7)
        assert model.output_shape == (None, 7)
        assert model.count_params() == formula((size, size, 3), 7)
    # one forward pass, at the smaller size: a probability distribution per image
    out = keras.ops.convert_to_numpy(  # any backend's tensor (a torch one carries its grad)
        builder((sizes[0], sizes[0], 3), 7)(np.zeros((2, sizes[0], sizes[0], 3), "float32"))
    )
    assert out.shape == (2, 7)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-5)


def test_non_square_and_grey_inputs():
    model = minivggnet((40, 24, 1), 3)
    assert model.count_params() == minivggnet_params((40, 24, 1), 3)
    model = minigooglenet((32, 48, 3), 4)
    assert model.count_params() == minigooglenet_params((32, 48, 3), 4)


# ------------------------------------------------------------------ layer order, L2, BN


def _kinds(model) -> list[str]:
    short = {
        "Conv2D": "CONV",
        "Activation": "ACT",
        "BatchNormalization": "BN",
        "MaxPooling2D": "POOL",
        "Dropout": "DO",
        "Flatten": "FLAT",
        "Dense": "FC",
    }
    return [short[type(layer).__name__] for layer in model.layers[1:]]


def test_minivggnet_layer_for_layer():
    block = ["CONV", "ACT", "BN", "CONV", "ACT", "BN", "POOL", "DO"]
    head = ["FLAT", "FC", "ACT", "BN", "DO", "FC", "ACT"]
    model = minivggnet()
    assert _kinds(model) == block * 2 + head
    assert [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)] == [
        0.25,
        0.25,
        0.5,
    ]
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [(c.filters, c.kernel_size, c.padding) for c in convs] == [
        (32, (3, 3), "same"),
        (32, (3, 3), "same"),
        (64, (3, 3), "same"),
        (64, (3, 3), "same"),
    ]


def test_alexnet_layer_for_layer():
    crb = ["CONV", "ACT", "BN"]
    fc_block = ["FC", "ACT", "BN", "DO"]
    model = alexnet()
    expected = crb + ["POOL", "DO"] + crb + ["POOL", "DO"] + crb * 3 + ["POOL", "DO"]
    expected += ["FLAT"] + fc_block * 2 + ["FC", "ACT"]
    assert _kinds(model) == expected
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert [(c.filters, c.kernel_size[0], c.strides[0], c.padding) for c in convs] == [
        (96, 11, 4, "same"),
        (256, 5, 1, "same"),
        (384, 3, 1, "same"),
        (384, 3, 1, "same"),
        (256, 3, 1, "same"),
    ]
    pools = [layer for layer in model.layers if isinstance(layer, keras.layers.MaxPooling2D)]
    assert all(
        p.pool_size == (3, 3) and p.strides == (2, 2) and p.padding == "valid" for p in pools
    )
    drops = [layer.rate for layer in model.layers if isinstance(layer, keras.layers.Dropout)]
    assert drops == [0.25, 0.25, 0.25, 0.5, 0.5]
    # the code's "same" CONV gives 57×57 on 227×227, Table 10.1 says 55×55; both reach 6×6×256
    assert model.get_layer(index=1).output.shape[1:] == (57, 57, 96)
    flat = next(layer for layer in model.layers if isinstance(layer, keras.layers.Flatten))
    assert flat.output.shape[1:] == (6 * 6 * 256,)


def test_googlenets_put_bn_before_relu():
    for model in (minigooglenet(), deepergooglenet()):
        for layer in model.layers:
            if isinstance(layer, keras.layers.Conv2D):
                (consumer,) = [n.operation for n in layer._outbound_nodes]
                assert isinstance(consumer, keras.layers.BatchNormalization)
                (after,) = [n.operation for n in consumer._outbound_nodes]
                assert isinstance(after, keras.layers.Activation)


def test_deepergooglenet_names_and_shapes_follow_the_book():
    model = deepergooglenet(preset="tiny-imagenet")
    assert model.get_layer("3a_mixed").output.shape[-1] == 64 + 128 + 32 + 32
    assert model.get_layer("4e_mixed").output.shape[1:] == (8, 8, 832)
    assert model.get_layer("pool4").output.shape[1:] == (4, 4, 832)
    assert model.get_layer("pool5").output.shape[1:] == (1, 1, 832)
    assert model.get_layer("do").rate == 0.4
    assert model.get_layer("block1_conv").kernel_size == (5, 5)
    assert model.get_layer("block1_conv").strides == (1, 1)
    mini = minigooglenet()
    drops = [layer.rate for layer in mini.layers if isinstance(layer, keras.layers.Dropout)]
    assert drops == [0.5]
    concat = [layer for layer in mini.layers if isinstance(layer, keras.layers.Concatenate)]
    assert concat[-1].output.shape[1:] == (7, 7, 336)


def _kernel_layers(model):
    return [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D | keras.layers.Dense)
    ]


def _l2_of(model) -> list[float | None]:
    return [
        None if layer.kernel_regularizer is None else float(layer.kernel_regularizer.l2)
        for layer in _kernel_layers(model)
    ]


def _all_l2(model, strength: float) -> bool:
    return all(s is not None and math.isclose(s, strength) for s in _l2_of(model))


SMALL = {
    minivggnet: (32, 32, 3),
    alexnet: (64, 64, 3),
    minigooglenet: (32, 32, 3),
    deepergooglenet: (64, 64, 3),
}


@pytest.mark.parametrize("builder", list(SMALL), ids=lambda b: b.__name__)
def test_weight_decay_present_with_reg_and_absent_without(builder):
    shape = SMALL[builder]
    model = builder(shape, 5, reg=0.001)
    model(np.zeros((1, *shape), "float32"))
    strengths = _l2_of(model)
    assert len(model.losses) == len(strengths) > 0
    assert _all_l2(model, 0.001)

    plain = builder(shape, 5, reg=0.0)
    plain(np.zeros((1, *shape), "float32"))
    assert plain.losses == []
    assert all(s is None for s in _l2_of(plain))


def test_default_weight_decay_follows_the_book():
    # MiniVGGNet and MiniGoogLeNet: none; AlexNet: build(reg=0.0002); DeeperGoogLeNet:
    # build(reg=0.0005), and 0.0002 in the Tiny ImageNet train.py (the preset)
    assert all(s is None for s in _l2_of(minivggnet()))
    assert all(s is None for s in _l2_of(minigooglenet()))
    assert _all_l2(alexnet((64, 64, 3)), 0.0002)
    assert _all_l2(deepergooglenet(), 0.0005)
    assert _all_l2(deepergooglenet(preset="tiny-imagenet"), 0.0002)


@pytest.mark.parametrize("builder", list(SMALL), ids=lambda b: b.__name__)
def test_batch_norm_settings(builder):
    shape = SMALL[builder]
    model = builder(shape, 5, bn_eps=2e-5, bn_momentum=0.9)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert bns and all(b.epsilon == 2e-5 and b.momentum == 0.9 and b.axis in (-1, 3) for b in bns)
    default = builder(shape, 5)
    bns = [layer for layer in default.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert all(b.epsilon == 1e-3 and b.momentum == 0.99 for b in bns)  # Keras's, as in the book
    assert all(layer.use_bias for layer in _kernel_layers(model))


def test_presets_and_overrides():
    assert deepergooglenet(preset="tiny-imagenet", classes=3).output_shape == (None, 3)
    assert minivggnet(preset="flowers17").input_shape == (None, 64, 64, 3)
    assert alexnet(preset="dogs-vs-cats", input_shape=(64, 64, 3)).input_shape == (None, 64, 64, 3)
    with pytest.raises(ValueError, match="cifar10, flowers17"):
        minivggnet(preset="imagenet")
    with pytest.raises(ValueError, match="tiny-imagenet"):
        deepergooglenet(preset="cifar10")
    with pytest.raises(ValueError, match="dogs-vs-cats"):
        alexnet(preset="cifar10")


def test_too_small_or_bad_inputs_raise_value_error():
    with pytest.raises(ValueError, match="at least 31"):
        minigooglenet((30, 30, 3), 10)
    with pytest.raises(ValueError, match="at least 49"):
        deepergooglenet((48, 64, 3), 10)
    deepergooglenet((49, 49, 3), 10)  # 49 → 25 → 13 → 7 → 4: exactly the 4×4 average pooling
    minigooglenet((31, 31, 3), 10)  # 31 → 15 → 7: exactly the 7×7 average pooling
    with pytest.raises(ValueError, match="at least 57"):
        alexnet((56, 227, 3), 2)
    with pytest.raises(ValueError, match="at least 4"):
        minivggnet((3, 3, 3), 2)
    with pytest.raises(ValueError, match="height, width, channels"):
        minivggnet((32, 32), 2)


# ------------------------------------------------------------------ FCHeadNet


def _tiny_base(shape=(8, 8, 3)):
    inputs = keras.Input(shape=shape)
    x = keras.layers.Conv2D(4, 3, padding="same", activation="relu")(inputs)
    x = keras.layers.MaxPooling2D(2)(x)
    return keras.Model(inputs, x, name="tiny")


def test_fchead_on_a_base_model_is_the_books_surgery():
    base = _tiny_base()
    model = fchead(base, 5, units=16)
    assert model.input_shape == (None, 8, 8, 3)
    assert model.output_shape == (None, 5)
    assert model.count_params() == base.count_params() + fchead_params((4, 4, 4), 5, units=16)
    # FLATTEN → FC(D) relu → DROPOUT 0.5 → FC(classes) softmax
    head = model.layers[len(base.layers) :]
    assert [type(layer).__name__ for layer in head] == ["Flatten", "Dense", "Dropout", "Dense"]
    assert head[1].activation.__name__ == "relu" and head[2].rate == 0.5
    assert head[3].activation.__name__ == "softmax"


def test_fchead_standalone_and_by_registry_keywords():
    model = fchead((2, 2, 8), 3)
    assert model.count_params() == fchead_params((2, 2, 8), 3)
    same = fchead(input_shape=(2, 2, 8), classes=3, units=32, dropout=0.3)
    assert same.count_params() == fchead_params((2, 2, 8), 3, units=32)
    assert fchead().output_shape == (None, 17)  # the book's Flowers-17 head on VGG16's 7×7×512
    with pytest.raises(ValueError, match="two different input shapes"):
        fchead((2, 2, 8), 3, input_shape=(4, 4, 8))
    with pytest.raises(ValueError, match="backbone name"):
        fchead(base=(2, 2, 8), weights="imagenet")


def test_fchead_on_a_backbone_by_name():
    model = fchead("vgg16", 10, input_shape=(32, 32, 3), freeze=True)
    assert model.output_shape == (None, 10)
    assert model.count_params() == 14_714_688 + fchead_params((1, 1, 512), 10)
    frozen = [layer for layer in model.layers if layer.weights and not layer.trainable]
    assert len(frozen) == 13  # VGG16's CONVs; the two FCs of the head stay trainable
    assert len(model.trainable_weights) == 4


def test_frozen_base_does_not_move_in_one_training_step():
    keras.utils.set_random_seed(0)
    base = _tiny_base()
    model = fchead(base, 3, units=8, freeze=True)
    model.compile(optimizer=keras.optimizers.SGD(0.1), loss="categorical_crossentropy")
    x = np.random.default_rng(0).random((4, 8, 8, 3), dtype="float32")
    y = keras.utils.to_categorical([0, 1, 2, 1], 3)
    before = [np.array(w) for w in base.weights]
    head_before = [np.array(w) for w in model.trainable_weights]
    loss = float(np.asarray(model.train_on_batch(x, y)))
    assert np.isfinite(loss) and loss > 0
    assert all(np.array_equal(b, np.array(w)) for b, w in zip(before, base.weights, strict=True))
    assert any(
        not np.allclose(b, np.array(w))
        for b, w in zip(head_before, model.trainable_weights, strict=True)
    )


# ------------------------------------------------------------------ keras.applications


def test_backbone_random_init_headless_pooled_and_with_a_top():
    body = backbone("vgg16", (32, 32, 3))
    assert body.output_shape == (None, 1, 1, 512)
    assert body.count_params() == 14_714_688  # VGG16 without its top (13 CONVs)
    assert backbone("vgg16", (64, 64, 3), pooling="avg").output_shape == (None, 512)
    top = backbone("vgg16", (32, 32, 3), 10)  # classes given: Keras's own FC head
    assert top.output_shape == (None, 10)
    assert top.count_params() == 14_714_688 + fc(512, 4096) + fc(4096, 4096) + fc(4096, 10)
    inception = backbone("inception_v3", (75, 75, 3))  # its smallest input
    assert inception.output_shape == (None, 1, 1, 2048)
    assert backbone("vgg16", (32, 32, 3), freeze=True).trainable_weights == []


def test_backbone_bad_options():
    with pytest.raises(ValueError, match="choose one of"):
        backbone("vgg17")
    with pytest.raises(ValueError, match="fchead"):
        backbone("vgg16", (32, 32, 3), 10, include_top=False)
    with pytest.raises(ValueError, match="1000 classes"):
        backbone("vgg16", (224, 224, 3), 10, weights="imagenet")
    with pytest.raises(ValueError, match="pooling"):
        backbone("vgg16", (32, 32, 3), pooling="mean")


@pytest.fixture
def keras_cache(tmp_path, monkeypatch):
    """An empty Keras model cache, and no network."""
    cache = tmp_path / "keras-models"
    cache.mkdir()
    monkeypatch.setattr(applications, "keras_model_dirs", lambda: [cache])
    monkeypatch.setattr(applications, "_online", lambda timeout=3.0: False)
    return cache


def test_imagenet_offline_raises_a_clear_error_fast(keras_cache):
    start = time.perf_counter()
    with pytest.raises(WeightsNotAvailableError) as info:
        backbone("vgg16", (32, 32, 3), weights="imagenet")
    assert time.perf_counter() - start < 2.0  # no download attempted, no model built
    message = str(info.value)
    assert "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5" in message
    assert str(keras_cache) in message
    assert "efficientnet_lite0" in message
    assert isinstance(info.value, CvlabError) and isinstance(info.value, FileNotFoundError)
    with pytest.raises(WeightsNotAvailableError, match="inception_v3_weights.*_notop.h5"):
        backbone("inception_v3", weights="imagenet")
    with pytest.raises(WeightsNotAvailableError, match="1.0_224_no_top.h5"):
        backbone("mobilenet_v2", (32, 32, 3), weights="imagenet")


def test_online_probe_is_bounded():
    start = time.perf_counter()
    assert applications._online(timeout=0.5) in (True, False)
    assert time.perf_counter() - start < 1.5


def test_imagenet_file_in_the_keras_cache_loads_without_network(keras_cache):
    # The ImageNet files are Keras 2 HDF5 files; a model saved as .h5 is in that format.
    source = backbone("vgg16", (32, 32, 3))
    source.save(keras_cache / "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5")
    loaded = backbone("vgg16", (32, 32, 3), weights="imagenet")
    for a, b in zip(source.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.filterwarnings("ignore:Skipping nested container")  # Keras, on the mismatched load
def test_weights_file_path_loads(tmp_path):
    source = backbone("vgg16", (32, 32, 3), pooling="avg")
    path = tmp_path / "vgg16.weights.h5"
    source.save_weights(path)
    loaded = backbone("vgg16", (32, 32, 3), weights=path, pooling="avg")
    for a, b in zip(source.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(WeightsNotAvailableError, match="missing.weights.h5"):
        backbone("vgg16", (32, 32, 3), weights=tmp_path / "missing.weights.h5")
    with pytest.raises(ValueError, match="could not load"):
        backbone("vgg16", (32, 32, 3), 10, weights=path)  # the file has no top


def _save_run_model(root, grid, run_id):
    model = fchead(_tiny_base(), 3, units=8)
    folder = root / "experiments" / grid / run_id
    folder.mkdir(parents=True)
    model.save(folder / "model.keras")
    return model


def test_run_weights_load_the_runs_saved_model(tmp_path):
    saved = _save_run_model(tmp_path, "finetune", "abc123")
    loaded = backbone("vgg16", weights="run:abc123", root=tmp_path, freeze=True)
    assert loaded.input_shape == (None, 8, 8, 3) and loaded.output_shape == (None, 3)
    for a, b in zip(saved.get_weights(), loaded.get_weights(), strict=True):
        np.testing.assert_array_equal(a, b)
    assert loaded.trainable_weights == []
    path = tmp_path / "experiments" / "finetune" / "abc123" / "model.keras"
    assert backbone("vgg16", weights=path).count_params() == saved.count_params()  # a .keras path
    with pytest.raises(ValueError, match="not the input_shape"):
        backbone("vgg16", (32, 32, 3), weights="run:abc123", root=tmp_path)


def test_run_weights_missing_or_ambiguous(tmp_path, monkeypatch):
    with pytest.raises(WeightsNotAvailableError) as info:
        backbone("vgg16", weights="run:nope", root=tmp_path)
    assert str(tmp_path / "experiments" / "*" / "nope" / "model.keras") in str(info.value)

    _save_run_model(tmp_path, "grid-a", "dup")
    _save_run_model(tmp_path, "grid-b", "dup")
    with pytest.raises(AmbiguousRunError, match="grid-a, grid-b"):
        find_run_model("dup", tmp_path)
    assert find_run_model("grid-b/dup", tmp_path) == tmp_path / "experiments/grid-b/dup/model.keras"
    with pytest.raises(ValueError, match="run:<grid>/<run_id>"):
        find_run_model("../dup", tmp_path)

    # without root=: the project root (cvlab.workspace.project_root, as the lookup imports it)
    monkeypatch.setattr("cvlab.runs.lookup.project_root", lambda start=".": tmp_path)
    assert find_run_model("grid-a/dup") == tmp_path / "experiments/grid-a/dup/model.keras"


# ------------------------------------------------------------------ registry lines


def test_registry_targets_resolve_and_take_input_shape_and_classes():
    import cvlab.models as registry

    for name, target in ZOO.items():
        module, func = target.split(":")
        builder = getattr(importlib.import_module(module), func)
        assert callable(builder)
        if name in registry.names():  # once the lines are in cvlab/models/__init__.py
            assert registry._BUILDERS[name] == target
    assert applications.names() == sorted(
        n for n in ZOO if ":" in ZOO[n] and "applications" in ZOO[n]
    )
    # the registry calls builders with keywords only
    assert applications.vgg16(input_shape=(32, 32, 3), classes=4).output_shape == (None, 4)
    assert fchead(input_shape=(1, 1, 512), classes=4).output_shape == (None, 4)


def test_preprocessing_per_backbone():
    """Each ImageNet backbone gets its own input scaling from 0-255 RGB batches."""
    import cvlab.models

    pixels = np.full((1, 2, 2, 3), 128, dtype=np.uint8)
    vgg = np.asarray(cvlab.models.preprocessing("vgg16")(pixels))[0, 0, 0]
    np.testing.assert_allclose(vgg, [128 - 103.939, 128 - 116.779, 128 - 123.68], rtol=1e-5)  # BGR
    tf_mode = np.asarray(cvlab.models.preprocessing("mobilenet_v2")(pixels))[0, 0, 0]
    np.testing.assert_allclose(tf_mode, [128 / 127.5 - 1] * 3, atol=1e-6)
    for own in ("efficientnet_lite0", "efficientnet_b0"):  # they normalise inside the model
        same = cvlab.models.preprocessing(own)(pixels)
        assert same.dtype == np.float32 and np.all(same == 128)
    with pytest.raises(ValueError, match="unknown keras.applications backbone 'lenet'"):
        cvlab.models.preprocessing("lenet")


CHANNEL_ORDER_CASES = {
    "minivggnet": (minivggnet, (32, 32, 3), {}),
    "alexnet": (alexnet, (64, 64, 3), {}),
    "minigooglenet": (minigooglenet, (32, 32, 3), {}),
    "deepergooglenet": (deepergooglenet, (64, 64, 3), {}),
    "resnet-cifar": (resnet, (32, 32, 3), {"stages": (1, 1, 1), "filters": (8, 8, 16, 32)}),
    "resnet-tiny": (
        resnet,
        (64, 64, 3),
        {"stages": (1, 1, 1), "filters": (8, 8, 16, 32), "stem": "tiny_imagenet"},
    ),
}


@pytest.mark.parametrize("case", list(CHANNEL_ORDER_CASES))
def test_channels_first_computes_what_channels_last_does(case):
    """The same weights give the same outputs in both orderings (inputs HWC in both), so the
    option changes the memory layout only; and every conv/BN/pool really runs channels-first."""
    builder, shape, options = CHANNEL_ORDER_CASES[case]
    keras.utils.set_random_seed(0)
    last = builder(shape, 5, **options)
    first = builder(shape, 5, channels="first", **options)
    assert last.count_params() == first.count_params()
    first.set_weights(last.get_weights())
    images = np.random.default_rng(0).uniform(0, 1, (2, *shape)).astype("float32")
    np.testing.assert_allclose(
        first.predict(images, verbose=0), last.predict(images, verbose=0), atol=2e-5
    )
    formats = {getattr(layer, "data_format", None) for layer in first.layers} - {None}
    assert formats == {"channels_first"}
    axes = {
        layer.axis for layer in first.layers if isinstance(layer, keras.layers.BatchNormalization)
    }
    assert axes == {1}
    assert first.layers[1].name == "to_channels_first"


def test_unknown_channel_order_is_refused():
    with pytest.raises(ValueError, match="channels must be 'last'"):
        minivggnet((32, 32, 3), 5, channels="nchw")
