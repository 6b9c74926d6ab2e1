"""SRCNN super resolution (book ch. 17): the patch pairs line up with the photo exactly, the
network is the book's (9-1-5, 64/32 filters, 33 -> 21), whole-image enlargement equals the
patch-by-patch one and tiles do not show, PSNR/SSIM behave, and after a short training (fixed
seed, under a minute) SRCNN beats bicubic PSNR on a held-out photo; (slow) the notebook
through papermill with its grid's smoke row."""

from __future__ import annotations

import numpy as np
import pytest
import skimage.data

from cvlab.generative import srcnn


def test_crop_degrade_and_bicubic_sizes():
    image = np.zeros((101, 67, 3), dtype=np.uint8)
    assert srcnn.crop_to_scale(image, 2).shape == (100, 66, 3)
    assert srcnn.crop_to_scale(image, 3).shape == (99, 66, 3)
    assert srcnn.downscale(image, 2).shape == (50, 33, 3)
    assert srcnn.degrade(image, 2).shape == (100, 66, 3)
    assert srcnn.bicubic_upscale(np.zeros((10, 7, 3), np.uint8), 3).shape == (30, 21, 3)
    flat = np.full((40, 40, 3), 77, dtype=np.uint8)  # a flat image survives the round trip
    np.testing.assert_array_equal(srcnn.degrade(flat, 2), flat)


def test_patches_pair_the_blurred_input_with_the_sharp_centre():
    rng = np.random.default_rng(0)
    photo = rng.integers(0, 256, size=(70, 61, 3), dtype=np.uint8)
    x, y = srcnn.make_patches([photo], scale=2, input_dim=33, label_size=21, stride=14)
    hr = srcnn.crop_to_scale(photo, 2)  # 70 x 60
    lr = srcnn.degrade(hr, 2)
    ys, xs = [0, 14, 28], [0, 14]  # range(0, 70 - 33 + 1, 14), range(0, 60 - 33 + 1, 14)
    assert x.shape == (6, 33, 33, 3) and y.shape == (6, 21, 21, 3)
    assert x.dtype == y.dtype == np.uint8
    for k, (py, px) in enumerate((a, b) for a in ys for b in xs):
        np.testing.assert_array_equal(x[k], lr[py : py + 33, px : px + 33])
        np.testing.assert_array_equal(y[k], hr[py + 6 : py + 27, px + 6 : px + 27])
    xs_, ys_ = srcnn.make_patches([photo], max_patches=4, seed=1)
    assert len(xs_) == 4 and any((xs_[0] == x[k]).all() for k in range(6))
    with pytest.raises(ValueError, match="at least 33"):
        srcnn.make_patches([photo[:20]])


def test_the_books_architecture():
    model = srcnn.build_srcnn()
    convs = [layer for layer in model.layers if hasattr(layer, "kernel_size")]
    assert [(c.filters, c.kernel_size, c.padding) for c in convs] == [
        (64, (9, 9), "valid"), (32, (1, 1), "valid"), (3, (5, 5), "valid"),
    ]  # fmt: skip
    # 9*9*3*64+64 + 1*1*64*32+32 + 5*5*32*3+3
    assert model.count_params() == 15616 + 2080 + 2403 == 20099
    assert model.compute_output_shape((None, 33, 33, 3)) == (None, 21, 21, 3)
    assert srcnn.shave() == 6 and srcnn.shave((9, 5, 5)) == 8
    assert srcnn.build_srcnn(1).output_shape[-1] == 1


def test_enhance_whole_image_equals_patch_by_patch():
    """Fully convolutional: the whole image, tiles of any size and the book's 33 -> 21 patches
    give the same pixels (to rounding)."""
    import keras

    keras.utils.set_random_seed(3)
    model = srcnn.build_srcnn()
    image = skimage.data.coffee()[100:180, 200:300]
    whole = srcnn.enhance(model, image, tile=None)
    tiled = srcnn.enhance(model, image, tile=32)
    assert whole.shape == image.shape and whole.dtype == np.uint8
    assert np.abs(whole.astype(int) - tiled.astype(int)).max() <= 1
    padded = np.pad(image, ((6, 6), (6, 6), (0, 0)), "reflect").astype(np.float32)
    patch = model.predict_on_batch(padded[None, 10:43, 20:53])[0]
    np.testing.assert_allclose(patch, whole[10:31, 20:41], atol=1.0)
    assert srcnn.upscale(model, image[:40, :50], 2).shape == (80, 100, 3)


def test_psnr_and_ssim():
    a = np.full((32, 32, 3), 100, dtype=np.uint8)
    b = a.copy()
    b[..., 0] += 10  # MSE = 100 / 3 on every pixel
    assert srcnn.psnr(a, b) == pytest.approx(10 * np.log10(255**2 / (100 / 3)))
    assert srcnn.ssim(a, a) == pytest.approx(1.0)
    noisy = np.clip(a + np.random.default_rng(0).normal(0, 20, a.shape), 0, 255).astype(np.uint8)
    assert srcnn.ssim(a, noisy) < 0.5
    c = b.copy()
    c[:2] = 0  # damage only the border
    assert srcnn.psnr(a, c, border=2) == pytest.approx(srcnn.psnr(a, b))


def test_srcnn_beats_bicubic_on_a_held_out_photo():
    """Three scikit-image photos, 3,000 patch pairs, 12 epochs of 16 (the book's recipe otherwise:
    Adam 1e-3, MSE, 0-255 pixels); chelsea, never seen, gains PSNR and SSIM over bicubic."""
    import keras

    keras.utils.set_random_seed(0)
    train, test = srcnn.load_photos(
        "skimage", train_images=0, test_images=0,
        train_photos=["astronaut", "coffee", "rocket"], test_photos=["chelsea"],
    )  # fmt: skip
    x, y = srcnn.make_patches(train.values(), max_patches=3000, seed=0)
    model = srcnn.build_srcnn()
    trained = srcnn.train_srcnn(model, x, y, epochs=12, batch_size=16, seed=0)
    assert trained.epochs == 12 and trained.steps_per_epoch == 188
    assert trained.history["loss"][-1] < trained.history["loss"][0]
    (result,) = srcnn.evaluate(model, test, 2)
    print(
        f"chelsea x2: bicubic {result.psnr_bicubic:.2f} dB, SRCNN {result.psnr_srcnn:.2f} dB; "
        f"SSIM {result.ssim_bicubic:.4f} vs {result.ssim_srcnn:.4f}"
    )
    assert result.psnr_srcnn > result.psnr_bicubic
    assert result.ssim_srcnn > result.ssim_bicubic
    fig = srcnn.comparison_figure(result, crop=64)
    assert len(fig.axes) == 4


@pytest.mark.slow
def test_super_resolution_smoke_row(tmp_path):
    from chapter_runs import run_smoke_row

    run_dir, record = run_smoke_row("super_resolution", tmp_path, "experiment=smoke")
    metrics = record.metrics
    assert record.params["patches"] == 3000 and record.epochs_completed == 6
    for key in ("psnr_bicubic", "psnr_srcnn", "ssim_bicubic", "ssim_srcnn"):
        assert 0 < metrics[key] < 100, key
    assert metrics["psnr_gain"] == pytest.approx(metrics["psnr_srcnn"] - metrics["psnr_bicubic"])
    assert metrics["seconds_per_epoch"] > 0 and metrics["seconds_per_step"] > 0
    thumbnail = record.artifacts["thumbnail"]
    assert thumbnail == "images/srcnn_0_chelsea.png" and (run_dir / thumbnail).is_file()
    for name in ("figures/side_by_side.png", "figures/patches.png", "history.csv", "model.keras"):
        assert (run_dir / name).is_file(), name
    html = (run_dir / "run.html").read_text()
    assert "Smoke run" in html and "no PSNR given" in html
