"""Using a finished run: `cvlab.runs.load("run:<run_id>")` rebuilds its model and the
preprocessing it recorded, and classifies new images in any process, without retraining.

Inputs to `LoadedRun.predict` and friends are image files, or arrays as the run's data held them:
uint8 arrays are 0-255 pixels; float arrays are taken to be on the run's pixel scale already (a
`cvlab.data` Dataset's [0, 1] images for a `train_classifier` run). Either way they are resized,
scaled and centred exactly as the run's evaluation did: the run's record holds a
`cvlab.image_prep.Preprocessing` and `cvlab.image_prep.prepare` applies it.
"""

from __future__ import annotations

import glob
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from cvlab.errors import (
    NoPreprocessingError,
    NoSavedModelError,
    RunNotUsableError,
    UnreadableImageError,
)
from cvlab.image_prep import Preprocessing, decode, resize
from cvlab.image_prep import prepare as prepare_images
from cvlab.runs.lookup import MODEL_FILE, RunModelNotFoundError, find_run_model
from cvlab.runs.record import RECORD_FILE, RunRecord
from cvlab.workspace import Workspace, project_root

__all__ = [
    "IMAGE_SUFFIXES",
    "LoadedRun",
    "NoPreprocessingError",
    "NoSavedModelError",
    "Prediction",
    "RunNotUsableError",
    "UnreadableImageError",
    "load",
]

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm")
RECORDED_BY = (
    "the training recipes record it (cvlab.train.recipe.train_classifier and "
    "train_classifier_hdf5, as notebooks 07_alexnet_dogs_vs_cats, 09_googlenet and 10_resnet use "
    "them); a notebook that trains its own way calls run.log_preprocessing(...), e.g. "
    "run.log_preprocessing(cvlab.data.preprocessing_of(data)) as 00_quickstart does"
)


class Prediction(NamedTuple):
    label: str
    probability: float


def _run_folder(ref: str, root: str | Path | None) -> Path | None:
    """The folder of run `ref` ("run:<id>" or "run:<grid>/<id>") whether or not it saved a model."""

    ws = Workspace.at(project_root() if root is None else root)
    name = ref.strip().removeprefix("run:")
    pattern = glob.escape(name) if "/" in name else f"*/{glob.escape(name)}"
    found = sorted(ws.experiments.glob(f"{pattern}/{RECORD_FILE}"))
    return found[0].parent if len(found) == 1 else None


def resolve_run_dir(ref: str | Path, *, root: str | Path | None = None) -> Path:
    """The folder of the run `ref` names: "run:<run_id>", "run:<grid>/<run_id>" (looked for
    under `root`/experiments, by default the project's) or the path of a run folder."""
    text = str(ref).strip()
    if not text.startswith("run:"):
        folder = Path(text)
        if (folder / RECORD_FILE).is_file():
            return folder
        raise RunNotUsableError(
            f"{ref!r}: not a run; give 'run:<run_id>' (the id on the leaderboard) or a run folder "
            f"holding {RECORD_FILE}"
        )
    try:
        return find_run_model(text, root).parent
    except RunModelNotFoundError:
        folder = _run_folder(text, root)
        if folder is None:
            raise
        return folder


def _require_usable(run_dir: Path, record: RunRecord, ref: str) -> Preprocessing:
    where = f"run {ref} ({record.grid}/{record.run_id}, status {record.status}, in {run_dir})"
    if not (run_dir / MODEL_FILE).is_file():
        raise NoSavedModelError(
            f"{where} saved no {MODEL_FILE}: nothing to predict with. Use a run whose notebook "
            "reached run.save_model(model) (a finished run of 07, 09 or 10 does), or train one."
        )
    if record.preprocessing is None:
        raise NoPreprocessingError(
            f"{where} did not record the preprocessing its images went through (input size, "
            f"resize mode, pixel scale, means, class names), so new images cannot be prepared "
            f"the same way: {RECORDED_BY}. Re-run it with this version of cvlab."
        )
    return record.preprocessing


def load(ref: str | Path, *, root: str | Path | None = None) -> LoadedRun:
    """An earlier run, ready to predict: its record, its `model.keras` and its preprocessing.

    `ref` is "run:<run_id>", "run:<grid>/<run_id>" or a run folder; `root` is the workspace the
    grid wrote to (its `--out`), by default the project. Refuses a run without a saved model
    (`NoSavedModelError`) or without recorded preprocessing (`NoPreprocessingError`).
    """
    import keras

    run_dir = resolve_run_dir(ref, root=root)
    record = RunRecord.load(run_dir)
    preprocessing = _require_usable(run_dir, record, str(ref))
    model = keras.models.load_model(run_dir / MODEL_FILE, compile=False)
    expected = (*preprocessing.size, preprocessing.channels)
    takes = tuple(model.input_shape[1:])
    if any(t is not None and t != e for t, e in zip(takes, expected, strict=False)):
        raise NoPreprocessingError(
            f"run {ref}: its model takes inputs of {takes} but the record says {expected}; the "
            "record does not describe this model"
        )
    return LoadedRun(run_dir=run_dir, record=record, model=model, preprocessing=preprocessing)


def read_for(path: str | Path, preprocessing: Preprocessing) -> np.ndarray:
    """One image file as uint8 (H, W, 3) at the run's stored size (or input size), decoded and
    resized as its data was (`cvlab.image_prep`, the one path every image takes)."""
    return resize(decode(path), preprocessing.decode_size, aspect=preprocessing.aspect)


def prepare(images: np.ndarray, preprocessing: Preprocessing) -> np.ndarray:
    """A batch as the model takes it (`cvlab.image_prep.prepare`): channels matched, on the
    run's pixel scale, resized, minus the recorded means. uint8 input is 0-255; float input is
    on the run's scale."""
    return prepare_images(np.asarray(images), preprocessing)


@dataclass
class LoadedRun:
    """A finished run's model with the preprocessing it recorded: `predict(paths or arrays)`."""

    run_dir: Path
    record: RunRecord
    model: Any
    preprocessing: Preprocessing

    @property
    def class_names(self) -> list[str]:
        return list(self.preprocessing.class_names)

    def preprocess(self, inputs: Any) -> np.ndarray:
        """Image files (a path or a list of paths) or arrays, as the model's input batch."""
        if not isinstance(inputs, Iterable | str | Path | bytes):
            inputs = np.asarray(inputs)
        return prepare_images(inputs, self.preprocessing)

    def probabilities(self, inputs: Any, *, batch_size: int = 64) -> np.ndarray:
        """Class probabilities (N × classes) for image files or arrays."""
        x = self.preprocess(inputs)
        if len(x) == 0:
            return np.empty((0, len(self.class_names)), dtype=np.float32)
        return np.asarray(self.model.predict(x, batch_size=batch_size, verbose=0))

    def predict(self, inputs: Any, *, batch_size: int = 64) -> list[Prediction]:
        """The most probable class of each image: [(class name, probability), ...]."""
        return [top[0] for top in self.predict_top(inputs, 1, batch_size=batch_size)]

    def predict_top(
        self, inputs: Any, k: int = 5, *, batch_size: int = 64
    ) -> list[list[Prediction]]:
        """The `k` most probable classes of each image, most probable first."""
        if k < 1:
            raise ValueError(f"k={k}: ask for at least one class")
        probs = self.probabilities(inputs, batch_size=batch_size)
        names = self.class_names
        order = np.argsort(-probs, axis=1, kind="stable")[:, :k]
        return [
            [Prediction(names[i], float(row[i])) for i in top]
            for row, top in zip(probs, order, strict=True)
        ]

    def __repr__(self) -> str:
        prep = self.preprocessing
        return (
            f"LoadedRun({self.record.grid}/{self.record.run_id}, {len(prep.class_names)} classes, "
            f"input {prep.size[0]}×{prep.size[1]}×{prep.channels}, pixels {prep.scale})"
        )


def image_files(paths: Sequence[str | Path]) -> list[Path]:
    """The image files named, a folder standing for the images directly inside it (sorted)."""
    files: list[Path] = []
    for item in map(Path, paths):
        if item.is_dir():
            files += sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        else:
            files.append(item)
    return files
