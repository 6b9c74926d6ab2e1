"""`Run`: the one object a notebook logs through (params, history, metrics, figures, model)."""

from __future__ import annotations

import csv
import importlib.util
import math
import random
import sys
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from cvlab.atomic_io import write_atomic
from cvlab.errors import RunPruned
from cvlab.image_prep import pair, to_uint8
from cvlab.runs.curves import plot_curves
from cvlab.runs.environment import collect_environment, runtime_environment
from cvlab.runs.epoch_metrics import summarize_history
from cvlab.runs.record import (
    CURVES_FILE,
    HISTORY_FILE,
    DataUse,
    PixelScale,
    Preprocessing,
    RunError,
    RunRecord,
    RunStatus,
    utc_now,
)
from cvlab.runs.tensorboard_log import TENSORBOARD_DIR, RunEvents
from cvlab.search.trial_link import EpochReporter
from cvlab.workspace import (
    project_root as project_root,  # re-exported: `cvlab.runs.run.project_root`
)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and Keras (with its backend), so that a run can be repeated."""
    random.seed(seed)
    np.random.seed(seed)
    if "keras" in sys.modules or importlib.util.find_spec("keras") is not None:
        import keras

        if keras.config.backend() == "tensorflow" or "tensorflow" in sys.modules:
            keras.utils.set_random_seed(seed)
            return
        # Keras's set_random_seed also seeds TensorFlow whenever it is installed, importing it
        # (seconds, hundreds of MB) into a JAX or PyTorch run whose input pipeline does not use
        # it (cvlab.data.make_pipeline is a PyDataset there). No public switch skips that part,
        # so the call runs with rng_utils' TensorFlow handle reporting "not installed"; the rest
        # (Keras's global seed and SeedGenerator, torch.manual_seed) is Keras's own code.
        from keras.src.utils import rng_utils

        class _NoTensorFlow:
            available = False

        installed = rng_utils.tf
        rng_utils.tf = _NoTensorFlow()
        try:
            keras.utils.set_random_seed(seed)
        finally:
            rng_utils.tf = installed


def _plain(value: Any) -> Any:
    """NumPy scalars and arrays to plain Python values that JSON and SQLite accept."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value


def _preprocessing(
    *,
    size: Any,
    class_names: Any,
    aspect: bool,
    scale: str,
    means: Any,
    channels: int,
    stored_size: Any,
    recipe: str,
    keras_preprocess: str | None = None,
) -> Preprocessing:
    """A checked `Preprocessing`: the mistakes that would make later predictions silently
    wrong (means on the other scale, no class names) are refused here, while the run trains."""
    if scale not in ("0-1", "0-255"):
        raise ValueError(f"scale={scale!r}: pixels are on '0-1' (divided by 255) or '0-255'")
    if channels not in (1, 3):
        raise ValueError(f"channels={channels!r}: 1 (grey) or 3 (RGB)")
    if keras_preprocess and scale != "0-255":
        raise ValueError(
            f"keras_preprocess={keras_preprocess!r} takes 0-255 pixels: record scale='0-255'"
        )
    names = [str(name) for name in class_names]
    if len(names) < 2:
        raise ValueError(f"class_names={class_names!r}: name every class the model outputs")
    if means is not None:
        if not isinstance(means, dict):
            means = dict(zip("RGB", means, strict=True))
        missing = [c for c in "RGB" if c not in means]
        if missing:
            raise ValueError(f"means={means!r}: missing channel(s) {missing}; keys R, G, B")
        means = {c: float(_plain(means[c])) for c in "RGB"}
        if (max(abs(v) for v in means.values()) > 1.5) != (scale == "0-255"):
            raise ValueError(
                f"means {means} do not look like the {scale} scale the pixels are on; give the "
                "means of the same images the model trained on"
            )
    return Preprocessing(
        size=pair(size, "size"),
        channels=channels,
        aspect=bool(aspect),
        scale=scale,  # type: ignore[arg-type]
        means=means,
        class_names=names,
        stored_size=None if stored_size is None else pair(stored_size, "stored_size"),
        keras_preprocess=keras_preprocess or None,
        recipe=recipe,
    )


class Run:
    """A run in progress. Every change is written to `record.json` at once, atomically."""

    def __init__(self, run_dir: Path, record: RunRecord):
        self.run_dir = run_dir
        self.record = record
        self.history: list[dict[str, float]] = []
        self._diverged = False
        # Called with the epoch after each `log_epoch` has written its row (by name: one each).
        self._epoch_listeners: dict[str, Callable[[int], None]] = {}
        self._reporter: EpochReporter | None = None  # a pruned grid's run reports each epoch
        self._epoch_clock = time.monotonic()  # when this process's next epoch began
        self._tensorboard = RunEvents(run_dir / TENSORBOARD_DIR)  # per-epoch scalars

    # -- parameters, metrics, notes -------------------------------------------------------
    @property
    def params(self) -> dict[str, Any]:
        return dict(self.record.params)

    @property
    def seed(self) -> int | None:
        return self.record.seed

    def log_params(self, **params: Any) -> None:
        """Add parameters the notebook derived (they show in the leaderboard beside the grid's)."""
        self.record.params.update({k: _plain(v) for k, v in params.items()})
        self._save()

    def log_metrics(self, **metrics: Any) -> None:
        """Record final metrics (test accuracy, rank-5, ...); the leaderboard ranks by one."""
        self.record.metrics.update({k: _plain(v) for k, v in metrics.items()})
        self._save()

    def note(self, text: str) -> None:
        """A free-form note, kept in the record and shown with the run."""
        self.record.notes.append(str(text))
        self._save()

    def log_preprocessing(
        self,
        spec: Preprocessing | None = None,
        *,
        size: int | tuple[int, int] | None = None,
        class_names: list[str] | None = None,
        aspect: bool = False,
        scale: PixelScale = "0-1",
        means: dict[str, float] | None = None,
        channels: int = 3,
        stored_size: int | tuple[int, int] | None = None,
        recipe: str = "",
        keras_preprocess: str | None = None,
    ) -> Preprocessing:
        """Record what the model expects as input (size, resize mode, pixel scale, the RGB
        means subtracted, class names), so `cvlab.runs.load` / `cvlab predict` can feed it new
        images in another process. The training recipes call it; a notebook that trains its
        own way calls it once, with the same values its data went through, or passes the
        `cvlab.image_prep.Preprocessing` its data was prepared with (`spec`, e.g.
        `cvlab.data.preprocessing_of(data)`)."""
        if spec is not None:
            size, class_names, aspect, scale = spec.size, spec.class_names, spec.aspect, spec.scale
            means, channels, stored_size = spec.means, spec.channels, spec.stored_size
            recipe, keras_preprocess = recipe or spec.recipe, spec.keras_preprocess
        if size is None or class_names is None:
            raise ValueError("log_preprocessing: give a Preprocessing, or size= and class_names=")
        spec = _preprocessing(
            size=size, class_names=class_names, aspect=aspect, scale=scale, means=means,
            channels=channels, stored_size=stored_size, recipe=recipe,
            keras_preprocess=keras_preprocess,
        )  # fmt: skip
        self.record.preprocessing = spec
        self._save()
        return spec

    def note_data(self, name: str, *, synthetic: bool, source: str = "") -> None:
        """Record a data set the run loaded (`cvlab.data.load` calls it); one synthetic set
        makes the run synthetic: it is then ranked only among synthetic runs."""
        use = DataUse(name=name, synthetic=bool(synthetic), source=source)
        if use not in self.record.data:
            self.record.data.append(use)
        self.record.synthetic = any(d.synthetic for d in self.record.data)
        self._save()

    # -- per-epoch history ----------------------------------------------------------------
    def log_epoch(self, epoch: int, total_epochs: int | None = None, **values: float) -> None:
        """Append one epoch's values, rewrite `history.csv` and redraw `curves.png`.

        Works for any training loop; Keras users get it through `keras_callback()`.
        A NaN or infinite loss marks the run as diverged.
        """
        row = {"epoch": int(epoch), **{k: float(_plain(v)) for k, v in values.items()}}
        self._time_epoch(total_epochs)
        self.history.append(row)
        self._write_history()
        self._tensorboard.log_epoch(row)
        self.record.artifacts.setdefault("tensorboard", TENSORBOARD_DIR)
        if not self.record.environment.get("device"):  # a run killed later still says where
            self.record.environment.update(runtime_environment())
        loss = values.get("loss")
        if loss is not None and not math.isfinite(float(loss)):
            self.mark_diverged(f"loss became {loss} at epoch {epoch}")
        self._save()
        shown = " - ".join(f"{k} {v:.4g}" for k, v in row.items() if k != "epoch")
        of = f"/{total_epochs}" if total_epochs else ""
        print(f"[{self.record.name or self.record.run_id}] epoch {epoch}{of} - {shown}", flush=True)
        self._report_to_trial(
            int(epoch), row, last=total_epochs is not None and epoch >= total_epochs
        )
        for listener in list(self._epoch_listeners.values()):
            listener(int(epoch))

    def _time_epoch(self, total_epochs: int | None) -> None:
        """The record's progress: epochs planned, when this epoch ended and how long it took
        (the live page shows s/epoch and the estimated end from them)."""
        now = time.monotonic()
        self.record.epoch_seconds.append(round(now - self._epoch_clock, 3))
        self._epoch_clock = now
        self.record.last_epoch_at = utc_now()
        if total_epochs:
            self.record.epochs_planned = int(total_epochs)

    def _report_to_trial(self, epoch: int, row: dict[str, float], last: bool) -> None:
        """A pruned grid's run: report the epoch to its trial; when the pruner cuts the run,
        record it `pruned` and raise RunPruned, which stops training (and the notebook) here.
        The last epoch is reported but never cut: its training is done, only the notebook's
        evaluation would be lost."""
        link = self.record.trial
        if link is None or link.prune is None or self._diverged:
            return
        if self._reporter is None:
            self._reporter = EpochReporter(link)
        verdict = self._reporter.report(epoch, row, may_prune=not last)
        if verdict is None:
            return
        self.record.status = "pruned"
        self.record.pruned_at_epoch = verdict.epoch
        self.record.rung = verdict.rung
        self.record.notes.append(verdict.message)
        self._save()
        raise RunPruned(verdict.message)

    def resume_history(self, upto: int) -> None:
        """A training resumed after epoch `upto` (from a backup): keep the rows of epochs
        1..`upto` exactly as recorded and drop later ones, which are trained again.

        The rows come from memory, or from `history.csv` when this process has none yet (a
        run started again after a kill). The backup's epoch is the truth: a row written after
        it (a kill between the row and the backup) is dropped, so every epoch appears once.
        """
        if not self.history:
            self.history = read_history(self.run_dir / HISTORY_FILE)
        kept = [row for row in self.history if int(row["epoch"]) <= upto]
        self._tensorboard.restart(upto + 1)
        dropped = len(kept) != len(self.history)
        self.history = kept
        if dropped:
            self._write_history()
        else:
            self._summarize()
        self._save()

    def add_epoch_listener(self, name: str, listener: Callable[[int], None]) -> None:
        """Call `listener(epoch)` after each epoch's row is written (replacing any listener
        of the same `name`): `EpochBackup` saves only once the row of its epoch is on disk."""
        self._epoch_listeners[name] = listener

    def remove_epoch_listener(self, name: str, listener: Callable[[int], None]) -> None:
        if self._epoch_listeners.get(name) == listener:
            del self._epoch_listeners[name]

    def _summarize(self) -> None:
        """The record's epoch count and `metric:best|last` from the whole history."""
        self.record.epochs_completed = int(self.history[-1]["epoch"]) if self.history else 0
        self.record.epoch_metrics = summarize_history(self.history)

    def _write_history(self) -> None:
        self._summarize()
        path = self.run_dir / HISTORY_FILE
        if not self.history:
            path.unlink(missing_ok=True)
            (self.run_dir / CURVES_FILE).unlink(missing_ok=True)
            return
        frame = pd.DataFrame(self.history)
        write_atomic(path, lambda tmp: frame.to_csv(tmp, index=False))
        plot_curves(frame, self.run_dir / CURVES_FILE, title=self.record.name or self.record.run_id)
        self.record.artifacts.setdefault("history", HISTORY_FILE)
        self.record.artifacts.setdefault("curves", CURVES_FILE)

    def keras_callback(self, **options: Any):
        """A Keras callback that logs every epoch here and stops training when loss is NaN."""
        from cvlab.runs.keras_callback import RunHistoryCallback  # lazy: tensorflow

        return RunHistoryCallback(self, **options)

    def mark_diverged(self, reason: str) -> None:
        """Training blew up (NaN loss): the run ends as `diverged`, not `ok`."""
        if not self._diverged:
            self._diverged = True
            self.record.notes.append(f"diverged: {reason}")
            self.record.status = "diverged"
            self._save()

    @property
    def diverged(self) -> bool:
        return self._diverged

    # -- artifacts ------------------------------------------------------------------------
    def save_figure(self, fig: Any, name: str) -> Path:
        """Save a matplotlib figure as `figures/<name>.png` in the run directory."""
        rel = f"figures/{name}.png"
        write_atomic(self.run_dir / rel, lambda tmp: fig.savefig(tmp, format="png", dpi=100))
        self.record.artifacts[f"figure:{name}"] = rel
        self._save()
        return self.run_dir / rel

    def save_image(
        self, image: Any, name: str, *, thumbnail: bool = False, scale: PixelScale = "0-1"
    ) -> Path:
        """Save an image array as `images/<name>.png`; `thumbnail=True` makes it the run's picture
        on the leaderboard page.

        `image` is HxW (grey) or HxWx1/3/4: uint8 0-255, or floats on `scale` ("0-1", the
        default, or "0-255"; rounded and clipped by `cvlab.image_prep.to_uint8`). It is written
        as it is, not resampled, so the file is the output itself and not a plot of it.
        """
        from PIL import Image

        array = np.asarray(image)
        if array.ndim == 3 and array.shape[-1] == 1:
            array = array[..., 0]
        if array.ndim not in (2, 3) or (array.ndim == 3 and array.shape[-1] not in (3, 4)):
            raise ValueError(f"save_image({name!r}): expected HxW or HxWx3/4, got {array.shape}")
        array = to_uint8(array, scale=scale)
        rel = f"images/{name}.png"
        write_atomic(self.run_dir / rel, lambda tmp: Image.fromarray(array).save(tmp, format="PNG"))
        self.record.artifacts[f"image:{name}"] = rel
        if thumbnail:
            self.record.artifacts["thumbnail"] = rel
        self._save()
        return self.run_dir / rel

    def save_model(self, model: Any, name: str = "model.keras") -> Path:
        """Save a Keras model in the run directory (reloadable with `keras.models.load_model`)."""
        path = self.run_dir / name
        # Keras picks the format from the suffix, so the temporary file keeps it.
        tmp = path.with_name(f".tmp-{name}")
        model.save(tmp)
        tmp.replace(path)
        self.record.artifacts["model" if name == "model.keras" else f"model:{name}"] = name
        self._save()
        return path

    def artifact_path(self, name: str) -> Path:
        """A path inside the run directory for a file the notebook writes itself."""
        return self.run_dir / name

    def log_artifact(self, name: str, relative_path: str) -> None:
        self.record.artifacts[name] = relative_path
        self._save()

    # -- end --------------------------------------------------------------------------------
    def finish(self) -> RunRecord:
        """Mark the run finished (`ok`, or `diverged` if training blew up)."""
        status: RunStatus = "diverged" if self._diverged else "ok"
        self.record.environment.update(runtime_environment())  # backend, device, precision
        self.record.finish(status)
        self._save()
        self._tensorboard.close()
        if self.record.grid == "interactive" and self.run_dir.parent.name == "interactive":
            _publish_interactive(self.run_dir.parents[2])  # no grid driver will
        return self.record

    def fail(self, exc: BaseException) -> None:
        """Record an exception the notebook caught but that ends the run."""
        self.record.environment.update(runtime_environment())
        self.record.finish("failed", RunError(type=type(exc).__name__, message=str(exc)))
        self._save()
        self._tensorboard.close()

    def _save(self) -> None:
        self.record.save(self.run_dir)

    def __repr__(self) -> str:
        return f"Run({self.record.name or self.record.run_id!r}, dir={str(self.run_dir)!r})"


def read_history(path: str | Path) -> list[dict[str, float]]:
    """The rows of a `history.csv` as `log_epoch` wrote them: every column of the header in
    its order, floats parsed exactly (so that rewriting them gives the same text), an empty
    cell as NaN; `[]` when there is no file. (`pandas.read_csv` parses floats with its own
    fast parser, which may change the last digit, so rows read back could differ.)"""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, newline="", encoding="utf-8") as fh:
        rows = []
        for raw in csv.DictReader(fh):
            if not raw.get("epoch"):
                continue
            row: dict[str, float] = {"epoch": int(float(raw["epoch"]))}
            for key, text in raw.items():
                if key != "epoch" and key is not None:
                    row[key] = float(text) if text not in ("", None) else math.nan
            rows.append(row)
    return rows


_current: Run | None = None  # the run `start()` opened last in this process


def current() -> Run | None:
    """The run this process opened last with `start()`, None when there is none."""
    return _current


def note_data(name: str, *, synthetic: bool, source: str = "") -> None:
    """Note a loaded data set on this process's current run, if there is one."""
    if _current is not None:
        _current.note_data(name, synthetic=synthetic, source=source)


def _publish_interactive(root: Path) -> None:
    """Rebuild the page of the project at `root` so a run made in Jupyter shows at once. In a
    child process: the page is the report layer's (above this one) and imports matplotlib and
    scipy; a failure is a warning, the run is recorded already."""
    import subprocess
    import warnings

    cmd = [sys.executable, "-m", "cvlab.grid.cli", "--leaderboard", "--out", str(root)]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    except (OSError, subprocess.TimeoutExpired) as exc:
        warnings.warn(f"the page was not rebuilt ({exc}); `make leaderboard` does", stacklevel=3)
        return
    if done.returncode != 0:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-5:])
        warnings.warn(
            f"the page was not rebuilt (exit {done.returncode}): {tail}; `make leaderboard` does",
            stacklevel=3,
        )


def start(
    run_dir: str | Path | None = None,
    *,
    params: dict[str, Any] | None = None,
    seed: int | None = None,
) -> Run:
    """Open the run a notebook logs to.

    Under the grid runner `run_dir` is injected and already holds the run's record
    (params, seed, grid). Interactively (`run_dir=None`) a new folder
    `experiments/interactive/<timestamp>/` is made in the project.
    """
    if run_dir is None:
        stamp = datetime.now().strftime("%Y%m%d-%H%M%S-%f")
        run_dir = project_root() / "experiments" / "interactive" / stamp
    run_dir = Path(run_dir).resolve()
    run_dir.mkdir(parents=True, exist_ok=True)
    record = RunRecord.load_if_present(run_dir)
    if record is None:
        record = RunRecord(
            run_id=run_dir.name,
            name=run_dir.name,
            started_at=utc_now(),
            environment=collect_environment(),
        )
    if params:
        record.params.update({k: _plain(v) for k, v in params.items()})
    if seed is not None:
        record.seed = int(seed)
    record.status = "running"
    record.environment.update(runtime_environment())  # the kernel's, when Keras is imported
    run = Run(run_dir, record)
    if record.seed is not None:
        seed_everything(record.seed)
    run._save()
    global _current
    _current = run
    return run
