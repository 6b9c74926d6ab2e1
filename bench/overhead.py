"""How much time the cvlab grid runner adds to one run, against a plain Python script.

The same small, deterministic Keras job (a tiny CNN on scikit-learn's 8x8 `load_digits`, fixed
seed, a few epochs) runs two ways, each in a fresh subprocess, and each is timed wall clock:

A. plain script: the job's code in a `.py` file, run with `python job.py`.
B. grid run: the same code in a notebook (a `parameters` cell with `run_dir` and `epochs`, then
   the job's cells, plus what the workbench adds: `cvlab.runs.start(run_dir)`,
   `run.keras_callback()`, `run.log_metrics(...)` and `run.finish()`), with a one-run grid YAML,
   executed through the real CLI: `python run_grid.py GRID.yaml --out DIR --force`. That time
   includes grid validation, the kernel's start, papermill, the HTML export of the executed
   notebook, the leaderboard store and its page.

The variants alternate (A B, then B A, ...) so that machine noise hits both. The report gives the
median and min seconds of each, the overhead B - A per run and the ratio B / A, then a breakdown of
the grid run from its `record.json` (`duration_s`: from the run's setup to the kernel's shutdown)
and from papermill's timings in the executed notebook. The target is "the workbench adds under
3 s per run"; the last line says PASS or FAIL, and the exit status is 0 either way (this is a
benchmark, not a test). Everything temporary lives in a temporary folder, removed at the end.

Run it from the repository root:

    make bench                                  # = python bench/overhead.py
    python bench/overhead.py --repeats 5 --epochs 2
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

REPO = Path(__file__).resolve().parents[1]
RUN_GRID = REPO / "run_grid.py"
TARGET_S = 3.0
GRID_NAME = "overhead"
JOB_TAG, CVLAB_TAG = "bench-job", "bench-cvlab"

# The job, written once: A runs these two parts as one script, B runs them as notebook cells.
# `epochs` and `callbacks` come from the caller (script preamble, or parameters/cvlab cells).
JOB_PREPARE = textwrap.dedent(
    """\
    import keras
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    keras.utils.set_random_seed(0)
    digits = load_digits()
    x = (digits.images[..., np.newaxis] / 16.0).astype("float32")
    y = digits.target.astype("int64")
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=0.2, stratify=y, random_state=0
    )
    model = keras.Sequential(
        [
            keras.Input(shape=(8, 8, 1)),
            keras.layers.Conv2D(16, 3, padding="same", activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(32, 3, padding="same", activation="relu"),
            keras.layers.Flatten(),
            keras.layers.Dense(64, activation="relu"),
            keras.layers.Dense(10, activation="softmax"),
        ]
    )
    model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
    """
)
JOB_TRAIN = textwrap.dedent(
    """\
    history = model.fit(
        x_train,
        y_train,
        validation_split=0.1,
        epochs=epochs,
        batch_size=32,
        verbose=0,
        callbacks=callbacks,
    )
    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
    print(f"test accuracy {test_accuracy:.4f}")
    """
)
# What a notebook adds to log through the workbench.
CVLAB_START = textwrap.dedent(
    """\
    import cvlab.runs

    run = cvlab.runs.start(run_dir)
    callbacks = [run.keras_callback()]
    """
)
CVLAB_FINISH = textwrap.dedent(
    """\
    run.log_metrics(test_accuracy=test_accuracy, test_loss=test_loss)
    run.finish()
    """
)
JOB_TIME_MARK = "BENCH_JOB_S="
ACCURACY = re.compile(r"^test accuracy ([0-9.]+)$", re.MULTILINE)


def write_script(path: Path, epochs: int) -> Path:
    """Variant A: the job as a plain script that also prints how long its own code took."""
    code = "\n".join(
        [
            "import time",
            "",
            "_bench_t0 = time.perf_counter()",
            f"epochs = {epochs}",
            "callbacks = []",
            JOB_PREPARE,
            JOB_TRAIN,
            f'print(f"{JOB_TIME_MARK}{{time.perf_counter() - _bench_t0:.3f}}")',
            "",
        ]
    )
    path.write_text(code, encoding="utf-8")
    return path


def write_notebook(path: Path, epochs: int) -> Path:
    """Variant B's notebook: parameters, job and cvlab cells (tagged so they can be timed)."""
    nb = new_notebook()
    params = new_code_cell(f"run_dir = None\nepochs = {epochs}")
    params.metadata["tags"] = ["parameters"]
    cells = [params]
    for source, tag in [
        (JOB_PREPARE, JOB_TAG),
        (CVLAB_START, CVLAB_TAG),
        (JOB_TRAIN, JOB_TAG),
        (CVLAB_FINISH, CVLAB_TAG),
    ]:
        cell = new_code_cell(source.rstrip("\n"))
        cell.metadata["tags"] = [tag]
        cells.append(cell)
    for i, cell in enumerate(cells):
        cell["id"] = f"cell-{i:02d}"
    nb.cells = cells
    nb.metadata["kernelspec"] = {
        "name": "python3",
        "display_name": "Python 3 (ipykernel)",
        "language": "python",
    }
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.write(nb, str(path))
    return path


def write_grid(path: Path, notebook: Path, epochs: int) -> Path:
    """A one-run grid: the notebook with its `epochs`, ranked by test accuracy."""
    path.write_text(
        textwrap.dedent(
            f"""\
            # cvlab overhead benchmark: one run, no grid axes.
            notebook: {notebook.name}
            name: {GRID_NAME}
            description: overhead benchmark (digits CNN, {epochs} epochs)
            params:
              epochs: {epochs}
            timeout: 1800
            rank_by:
              metric: test_accuracy
              mode: max
            """
        ),
        encoding="utf-8",
    )
    return path


@dataclass
class Sample:
    """One timed run of a variant, with what it reported about itself."""

    wall_s: float
    accuracy: float | None = None
    job_s: float | None = None  # A: the job's code inside the script; B: the job's cells
    parts: dict[str, float] = field(default_factory=dict)  # B only: breakdown of the grid run


def run_timed(cmd: list[str], cwd: Path, label: str) -> tuple[float, str]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        sys.exit(f"error: {label} exited with status {proc.returncode}:\n{tail}")
    return wall, proc.stdout


def run_plain(script: Path) -> Sample:
    wall, out = run_timed([sys.executable, str(script)], script.parent, "the plain script")
    accuracy = ACCURACY.search(out)
    job = re.search(rf"^{JOB_TIME_MARK}([0-9.]+)$", out, re.MULTILINE)
    return Sample(
        wall_s=wall,
        accuracy=float(accuracy.group(1)) if accuracy else None,
        job_s=float(job.group(1)) if job else None,
    )


def run_grid(grid_yaml: Path, out_dir: Path, run_dir: Path) -> Sample:
    cmd = [sys.executable, str(RUN_GRID), str(grid_yaml), "--out", str(out_dir), "--force"]
    wall, _ = run_timed(cmd, grid_yaml.parent, "the grid run")
    record = json.loads((run_dir / "record.json").read_text(encoding="utf-8"))
    if record.get("status") != "ok":
        sys.exit(f"error: the grid run ended {record.get('status')}: {record.get('error')}")
    executed = nbformat.read(str(run_dir / "run.ipynb"), as_version=4)

    def cell_s(tag: str | None = None) -> float:
        return sum(
            float(cell.metadata.get("papermill", {}).get("duration") or 0.0)
            for cell in executed.cells
            if cell.cell_type == "code" and (tag is None or tag in cell.metadata.get("tags", []))
        )

    run_s = float(record.get("duration_s") or 0.0)
    papermill_s = float(executed.metadata.get("papermill", {}).get("duration") or 0.0)
    cells_s = cell_s()
    job_s, cvlab_s = cell_s(JOB_TAG), cell_s(CVLAB_TAG)
    return Sample(
        wall_s=wall,
        accuracy=record.get("metrics", {}).get("test_accuracy"),
        job_s=job_s,
        parts={
            "run": run_s,
            "papermill": papermill_s,
            "cells": cells_s,
            "job": job_s,
            "cvlab": cvlab_s,
            "other_cells": cells_s - job_s - cvlab_s,
            "kernel": papermill_s - cells_s,
            "rest": run_s - papermill_s,
            "outside": wall - run_s,
        },
    )


def expected_run_dir(notebook: Path, out_dir: Path, epochs: int) -> Path:
    """Where the CLI records the run: the id is cvlab's hash of notebook and parameters."""
    sys.path.insert(0, str(REPO / "lib"))
    from cvlab.grid.expand import notebook_digest, run_id_for

    run_id = run_id_for(notebook_digest(notebook), {"epochs": epochs})
    return out_dir / "experiments" / GRID_NAME / run_id


def warm_up(cwd: Path) -> float:
    """Import the heavy libraries once, untimed, so that a cold disk cache does not hit A alone."""
    modules = "keras, sklearn.datasets, papermill, nbconvert, matplotlib.pyplot, pandas, cvlab.runs"
    wall, _ = run_timed([sys.executable, "-c", f"import {modules}"], cwd, "the warm-up")
    return wall


def _median(values: list[float]) -> float:
    return statistics.median(values)


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def report(plain: list[Sample], grid: list[Sample], epochs: int) -> None:
    a_med, a_min = _median([s.wall_s for s in plain]), min(s.wall_s for s in plain)
    b_med, b_min = _median([s.wall_s for s in grid]), min(s.wall_s for s in grid)
    overhead_med, overhead_min = b_med - a_med, b_min - a_min

    def acc(samples: list[Sample]) -> str:
        values = sorted({round(s.accuracy, 4) for s in samples if s.accuracy is not None})
        return ", ".join(f"{v:.4f}" for v in values) or "?"

    print()
    print(f"{'':28} {'median':>9} {'min':>9}   test accuracy")
    print(f"{'A plain script':28} {a_med:7.2f} s {a_min:7.2f} s   {acc(plain)}")
    print(f"{'B grid run (run_grid.py)':28} {b_med:7.2f} s {b_min:7.2f} s   {acc(grid)}")
    print(f"{'overhead B - A':28} {overhead_med:7.2f} s {overhead_min:7.2f} s")
    print(f"{'ratio B / A':28} {b_med / a_med:7.2f} x {b_min / a_min:7.2f} x")

    def part(key: str) -> float:
        return _median([s.parts[key] for s in grid])

    a_job = _median([s.job_s for s in plain if s.job_s is not None] or [float("nan")])
    rows = [
        ("grid run, whole CLI (wall)", b_med, ""),
        ("  outside the run", part("outside"), "interpreter, validation, HTML, leaderboard"),
        ("  run (record.json duration_s)", part("run"), "run setup to kernel shutdown"),
        ("    kernel and papermill", part("kernel"), "papermill's duration - its cells"),
        ("    rest of the run", part("rest"), "run setup and wrap-up outside papermill"),
        ("    cvlab cells", part("cvlab"), "start, keras_callback, log_metrics, finish"),
        ("    job cells", part("job"), f"the job's own code (plain script: {a_job:.2f} s)"),
        ("    other cells", part("other_cells"), "parameters and injected parameters"),
    ]
    print()
    runs = f"{len(grid)} run" + ("s" if len(grid) > 1 else "")
    print(f"breakdown of the grid run (medians over {runs}, {epochs} epochs):")
    for label, seconds, note in rows:
        print(f"  {label:32} {seconds:7.2f} s   {note}".rstrip())
    print()
    verdict = "PASS" if overhead_med < TARGET_S else "FAIL"
    print(f"overhead per run: {overhead_med:.2f} s (target < {TARGET_S:g} s): {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time one small Keras job as a plain script and as a cvlab grid run, "
        "side by side, and report the workbench's overhead per run."
    )
    parser.add_argument(
        "--repeats", type=int, default=3, metavar="N", help="runs of each variant (default 3)"
    )
    parser.add_argument(
        "--epochs", type=int, default=3, metavar="N", help="training epochs of the job (default 3)"
    )
    parser.add_argument(
        "--no-warmup", action="store_true", help="skip the untimed import of the libraries"
    )
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.epochs < 1:
        parser.error("--repeats and --epochs must be at least 1")

    tensorflow = _version("tensorflow-cpu")
    tensorflow = _version("tensorflow") if tensorflow == "?" else tensorflow
    print(
        f"cvlab overhead benchmark: digits CNN, {args.epochs} epochs, "
        f"{args.repeats} repeat{'s' if args.repeats > 1 else ''}; "
        f"Python {platform.python_version()}, keras {_version('keras')}, tensorflow {tensorflow}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="cvlab-bench-") as tmp:
        root = Path(tmp)
        work = root / "work"
        work.mkdir()
        out_dir = root / "out"
        script = write_script(work / "job.py", args.epochs)
        notebook = write_notebook(work / "overhead.ipynb", args.epochs)
        grid_yaml = write_grid(work / "overhead.yaml", notebook, args.epochs)
        run_dir = expected_run_dir(notebook, out_dir, args.epochs)

        if not args.no_warmup:
            print(f"warm-up (untimed import of the libraries): {warm_up(work):.2f} s", flush=True)
        plain: list[Sample] = []
        grid: list[Sample] = []
        for i in range(args.repeats):
            order = "AB" if i % 2 == 0 else "BA"
            for variant in order:
                if variant == "A":
                    plain.append(run_plain(script))
                else:
                    grid.append(run_grid(grid_yaml, out_dir, run_dir))
            a, b = plain[-1], grid[-1]
            print(
                f"repeat {i + 1}/{args.repeats} ({' then '.join(order)}): "
                f"A {a.wall_s:.2f} s, B {b.wall_s:.2f} s, B - A {b.wall_s - a.wall_s:.2f} s",
                flush=True,
            )
        report(plain, grid, args.epochs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
