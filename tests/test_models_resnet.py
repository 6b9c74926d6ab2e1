"""The book's ResNet (pre-activation bottleneck modules): shapes, parameter counts, L2, BN, one step."""

from __future__ import annotations

import math

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from cvlab.models.resnet import PRESETS, resnet  # noqa: E402

TINY = {"stages": (1, 1, 1), "filters": (8, 8, 16, 32)}


def expected_params(input_shape, classes, stages, filters, stem) -> int:
    """Trainable + non-trainable parameters the book's code implies, counted by hand.

    A BN layer holds 4 values per channel (gamma, beta, moving mean, moving variance); CONVs have no
    bias; the final FC has a bias. A residual module of K filters on C input channels: BN(C),
    CONV 1×1 C→K/4, BN(K/4), CONV 3×3 K/4→K/4, BN(K/4), CONV 1×1 K/4→K, plus CONV 1×1 C→K when reducing.
    """
    height, _, depth = input_shape
    total = 4 * depth  # BN on the input
    if stem == "cifar":
        total += 3 * 3 * depth * filters[0]
        size = height
    else:  # 5×5 CONV, BN, then ZERO PAD 1 + MAX POOL 3×3/2 (no parameters)
        total += 5 * 5 * depth * filters[0] + 4 * filters[0]
        size = (height + 2 - 3) // 2 + 1
    channels = filters[0]
    for i, n_modules in enumerate(stages):
        k = filters[i + 1]
        b = k // 4
        for j in range(n_modules):
            total += 4 * channels + channels * b + 4 * b + 9 * b * b + 4 * b + b * k
            if j == 0:  # red=True: 1×1 CONV shortcut
                total += channels * k
            channels = k
        if i > 0:
            size = math.ceil(size / 2)
    total += 4 * channels  # final BN
    pooled = size // 8  # AVG POOL 8×8 then FLATTEN
    total += pooled * pooled * channels * classes + classes
    return total


def conv_and_dense_count(stages) -> int:
    """Kernels carrying an L2 penalty: stem CONV, 3 per module, 1 shortcut per stage, the FC."""
    return 1 + 3 * sum(stages) + len(stages) + 1


@pytest.mark.parametrize(
    ("stem", "sizes"), [("cifar", (32, 64)), ("tiny_imagenet", (64, 96))], ids=["cifar", "tiny"]
)
def test_output_shape_for_two_input_sizes(stem, sizes):
    for size in sizes:
        model = resnet((size, size, 3), 7, stem=stem, **TINY)
        assert model.output_shape == (None, 7)
        out = model(np.zeros((1, size, size, 3), "float32"))
        np.testing.assert_allclose(keras.ops.convert_to_numpy(out).sum(), 1.0, rtol=1e-5)
        assert model.count_params() == expected_params((size, size, 3), 7, stem=stem, **TINY)


# The book prints no "Total params" summary for its ResNet (neither the CIFAR-10 ResNet-56 nor the
# Tiny ImageNet one), so the hand count is the reference. The totals are pinned as well (worked out
# by hand, CIFAR-10: 12 input BN + 1,728 stem + 46,720 + 169,472 + 664,576 stages + 1,024 BN
# + 2,570 FC = 886,102) so that the formula itself cannot drift along with the code.
@pytest.mark.parametrize(
    ("preset", "total"),
    [("cifar10", 886_102), ("tiny-imagenet", 2_265_748)],
)
def test_preset_parameter_counts(preset, total):
    cfg = PRESETS[preset]
    analytic = expected_params(
        cfg["input_shape"], cfg["classes"], cfg["stages"], cfg["filters"], cfg["stem"]
    )
    assert analytic == total
    model = resnet(preset=preset)
    trainable = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    frozen = sum(int(np.prod(w.shape)) for w in model.non_trainable_weights)
    assert trainable + frozen == model.count_params() == analytic
    assert model.input_shape == (None, *cfg["input_shape"])
    assert model.output_shape == (None, cfg["classes"])
    # 282 / 146 layers: the book's module is 10 layers (3 BN, 3 ReLU, 3 CONV, add), +1 when reducing
    assert len(model.losses) == conv_and_dense_count(cfg["stages"])


def test_presets_match_the_books_training_scripts():
    # resnet_cifar10_decay.py: ResNet.build(32, 32, 3, 10, (9, 9, 9), (64, 64, 128, 256), reg=0.0005)
    assert PRESETS["cifar10"] == {
        "input_shape": (32, 32, 3),
        "classes": 10,
        "stages": (9, 9, 9),
        "filters": (64, 64, 128, 256),
        "reg": 0.0005,
        "stem": "cifar",
    }
    # train.py: ResNet.build(64, 64, 3, 200, (3, 4, 6), (64, 128, 256, 512), reg=0.0005,
    #                        dataset="tiny_imagenet")
    assert PRESETS["tiny-imagenet"] == {
        "input_shape": (64, 64, 3),
        "classes": 200,
        "stages": (3, 4, 6),
        "filters": (64, 128, 256, 512),
        "reg": 0.0005,
        "stem": "tiny_imagenet",
    }


def _regularizers(model):
    return [
        layer.kernel_regularizer
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D | keras.layers.Dense)
    ]


def test_l2_on_every_kernel_and_reg_zero_removes_it():
    model = resnet((32, 32, 3), 10, reg=0.001, **TINY)
    model(np.zeros((1, 32, 32, 3), "float32"))
    assert len(model.losses) == conv_and_dense_count(TINY["stages"]) > 0
    regs = _regularizers(model)
    assert all(r is not None and math.isclose(float(r.l2), 0.001) for r in regs)

    plain = resnet((32, 32, 3), 10, reg=0.0, **TINY)
    plain(np.zeros((1, 32, 32, 3), "float32"))
    assert plain.losses == []
    assert all(r is None for r in _regularizers(plain))


def test_module_reg_reproduces_the_printed_code():
    # The book's build() calls residual_module without reg=, so its modules keep 0.0001.
    model = resnet((32, 32, 3), 10, reg=0.0005, module_reg=0.0001, **TINY)
    strengths = sorted(float(r.l2) for r in _regularizers(model))
    assert strengths.count(pytest.approx(0.0005)) == 2  # stem CONV and FC
    assert strengths.count(pytest.approx(0.0001)) == len(strengths) - 2


def test_batch_norm_settings_and_no_conv_bias():
    model = resnet((32, 32, 3), 10, bn_eps=1e-3, bn_momentum=0.8, **TINY)
    bns = [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert len(bns) == 1 + 3 * sum(TINY["stages"]) + 1
    assert all(bn.epsilon == 1e-3 and bn.momentum == 0.8 and bn.axis == -1 for bn in bns)
    default = resnet(preset="tiny-imagenet", stages=(1, 1, 1), filters=(8, 8, 16, 32))
    bns = [layer for layer in default.layers if isinstance(layer, keras.layers.BatchNormalization)]
    assert all(bn.epsilon == 2e-5 and bn.momentum == 0.9 for bn in bns)
    convs = [layer for layer in model.layers if isinstance(layer, keras.layers.Conv2D)]
    assert all(not conv.use_bias for conv in convs)


def test_explicit_arguments_override_the_preset():
    model = resnet(preset="tiny-imagenet", classes=5, **TINY)
    assert model.input_shape == (None, 64, 64, 3)
    assert model.output_shape == (None, 5)
    assert model.count_params() == expected_params((64, 64, 3), 5, stem="tiny_imagenet", **TINY)
    assert any(isinstance(layer, keras.layers.MaxPooling2D) for layer in model.layers)
    cifar_stem = resnet(preset="tiny-imagenet", stem="cifar", **TINY)
    assert not any(isinstance(layer, keras.layers.MaxPooling2D) for layer in cifar_stem.layers)


def test_bad_options_raise_value_error():
    with pytest.raises(ValueError, match="cifar10, tiny-imagenet"):
        resnet(preset="imagenet")
    with pytest.raises(ValueError, match="stem"):
        resnet(stem="imagenet", **TINY)
    with pytest.raises(ValueError, match="filters"):
        resnet(stages=(1, 1), filters=(8, 8, 16, 32))
    with pytest.raises(ValueError, match="average pooling"):
        resnet((16, 16, 3), 10, **TINY)


def test_one_training_step_gives_a_finite_loss():
    keras.utils.set_random_seed(0)
    model = resnet((32, 32, 3), 10, reg=0.0005, **TINY)
    model.compile(
        optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="categorical_crossentropy"
    )
    x = np.random.default_rng(0).random((2, 32, 32, 3), dtype="float32")
    y = keras.utils.to_categorical([3, 7], 10)
    before = [np.array(w) for w in model.trainable_weights]
    loss = float(np.asarray(model.train_on_batch(x, y)))
    assert np.isfinite(loss) and loss > 0
    assert any(
        not np.allclose(b, np.array(w))
        for b, w in zip(before, model.trainable_weights, strict=True)
    )
