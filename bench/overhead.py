"""Does a cvlab grid cost more than plain scripts? N runs of a short training notebook, timed
wall clock three ways, side by side in one invocation:

A. plain scripts: for each of the N parameter sets, the notebook converted to a Python script
   with those parameters injected (papermill's parameter cell, then nbconvert's script export),
   run one after another with `python run_K.py`;
B. the grid: the same notebook and the same N parameter sets as one grid YAML, through the real
   CLI, `python run_grid.py GRID.yaml --out DIR --force` (warm kernels on: each run's kernel has
   started and imported the notebook's modules while the previous run trained);
C. the same grid with `--no-prewarm` (each run's kernel starts when the run begins).

The job: a small CNN on scikit-learn's `load_digits` (1,797 real 8×8 handwritten digits), one
epoch, logging through `cvlab.runs` (history, curves, metrics) in every variant, so the only
difference is how it is run. B and C include all the grid runner does: validation, the
executed notebooks, their HTML pages, the records, the leaderboard store, its page and figures.

The target is B / A ≤ 1.0: a grid of N runs finishes no later than the same N runs as plain
scripts. The exit status is 0 either way (a benchmark, not a test). Timings are noisy on a busy
machine: use --repeats (variants rotate their order each repeat) and read the medians.

    make bench                                    # = python bench/overhead.py (10 runs)
    python bench/overhead.py --runs 4 --repeats 3
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_notebook

REPO = Path(__file__).resolve().parents[1]
RUN_GRID = REPO / "run_grid.py"
GRID_NAME = "overhead"
TARGET_RATIO = 1.0
LEARNING_RATES = [0.003, 0.002, 0.001, 0.0005, 0.0003]
BATCH_SIZES = [32, 64]

PARAMETERS = "run_dir = None\nlearning_rate = 0.001\nbatch_size = 32\nepochs = 1"
IMPORTS = textwrap.dedent(
    """\
    import keras
    import numpy as np
    from sklearn.datasets import load_digits
    from sklearn.model_selection import train_test_split

    import cvlab.runs"""
)
DATA_AND_MODEL = textwrap.dedent(
    """\
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
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate),
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )"""
)
TRAIN = textwrap.dedent(
    """\
    run = cvlab.runs.start(run_dir)
    model.fit(
        x_train,
        y_train,
        validation_split=0.1,
        epochs=epochs,
        batch_size=batch_size,
        verbose=0,
        callbacks=[run.keras_callback()],
    )
    test_loss, test_accuracy = model.evaluate(x_test, y_test, verbose=0)
    run.log_metrics(test_accuracy=test_accuracy, test_loss=test_loss)
    run.finish()
    print(f"test accuracy {test_accuracy:.4f}")"""
)


def write_notebook(path: Path) -> Path:
    """The base notebook: a `parameters` cell, then imports, data and model, training."""
    nb = new_notebook()
    cells = [new_code_cell(source) for source in (PARAMETERS, IMPORTS, DATA_AND_MODEL, TRAIN)]
    cells[0].metadata["tags"] = ["parameters"]
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


def parameter_sets(n: int, epochs: int) -> list[dict]:
    combos = list(itertools.product(LEARNING_RATES, BATCH_SIZES))
    if n > len(combos):
        raise SystemExit(f"error: at most {len(combos)} runs (learning rate x batch size)")
    return [{"learning_rate": lr, "batch_size": bs, "epochs": epochs} for lr, bs in combos[:n]]


def write_scripts(notebook: Path, params: list[dict], folder: Path) -> list[Path]:
    """Variant A: per parameter set, the notebook with the parameters injected, as a script."""
    import papermill
    from nbconvert import PythonExporter

    folder.mkdir(parents=True)
    scripts = []
    for i, values in enumerate(params, 1):
        parameterized = folder / f"run_{i}.ipynb"
        run_dir = folder / f"run_{i}"
        papermill.execute_notebook(
            str(notebook),
            str(parameterized),
            parameters={**values, "run_dir": str(run_dir)},
            prepare_only=True,
            progress_bar=False,
        )
        source, _ = PythonExporter().from_filename(str(parameterized))
        script = folder / f"run_{i}.py"
        script.write_text(source, encoding="utf-8")
        scripts.append(script)
    return scripts


def write_grid(path: Path, notebook: Path, params: list[dict]) -> Path:
    """Variant B and C: the same parameter sets as the grid's explicit `runs`."""
    runs = "\n".join(f"  - {json.dumps(values)}" for values in params)
    path.write_text(
        f"# cvlab overhead benchmark: {len(params)} runs.\n"
        f"notebook: {notebook.name}\n"
        f"name: {GRID_NAME}\n"
        f"runs:\n{runs}\n"
        "timeout: 1800\n"
        "rank_by: {metric: test_accuracy, mode: max}\n",
        encoding="utf-8",
    )
    return path


def run(cmd: list[str], cwd: Path, label: str) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).splitlines()[-40:])
        sys.exit(f"error: {label} exited with status {proc.returncode}:\n{tail}")
    return proc.stdout


@dataclass
class Timing:
    wall_s: float
    warm_runs: int = 0


def time_scripts(scripts: list[Path]) -> Timing:
    start = time.perf_counter()
    for script in scripts:
        run([sys.executable, str(script)], script.parent, f"plain script {script.name}")
    return Timing(time.perf_counter() - start)


def time_grid(grid_yaml: Path, out_dir: Path, n: int, prewarm: bool) -> Timing:
    cmd = [sys.executable, str(RUN_GRID), str(grid_yaml), "--out", str(out_dir), "--force"]
    cmd += ["--quiet"] + ([] if prewarm else ["--no-prewarm"])
    start = time.perf_counter()
    run(cmd, grid_yaml.parent, "the grid")
    wall = time.perf_counter() - start
    records = [
        json.loads(p.read_text())
        for p in (out_dir / "experiments" / GRID_NAME).glob("*/record.json")
    ]
    bad = [r["name"] for r in records if r.get("status") != "ok"]
    if len(records) != n or bad:
        sys.exit(f"error: the grid ended with {len(records)} records, not ok: {bad}")
    logs = (out_dir / "logs" / GRID_NAME).glob("*.log")
    # Each run's log says which kernel ran it; count this invocation's lines only.
    warm = 0
    for log in logs:
        if log.name == "grid.log":
            continue
        last_kernel_line = [
            line for line in log.read_text().splitlines() if line.startswith("kernel:")
        ]
        warm += bool(last_kernel_line) and last_kernel_line[-1].startswith("kernel: warm")
    return Timing(wall, warm)


def warm_up(cwd: Path) -> float:
    """Import the heavy libraries once, untimed, so that a cold disk cache does not hit one
    variant alone."""
    modules = "keras, sklearn.datasets, papermill, nbconvert, matplotlib.pyplot, pandas, cvlab.runs"
    start = time.perf_counter()
    run([sys.executable, "-c", f"import {modules}"], cwd, "the warm-up")
    return time.perf_counter() - start


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def report(timings: dict[str, list[Timing]], n: int) -> None:
    scripts = statistics.median(t.wall_s for t in timings["A"])
    rows = [
        ("A", f"plain scripts ({n} x python)"),
        ("B", "grid (run_grid.py, prewarm)"),
        ("C", "grid, --no-prewarm"),
    ]
    print()
    print(f"{'':34} {'wall':>9} {'per run':>9} {'ratio':>7}")
    for key, label in rows:
        wall = statistics.median(t.wall_s for t in timings[key])
        print(f"{label:34} {wall:7.2f} s {wall / n:7.2f} s {wall / scripts:7.2f}")
    warm = statistics.median(t.warm_runs for t in timings["B"])
    print(f"warm kernels in the prewarm grid: {warm:g} of {n} runs (the first run starts cold)")
    ratio = statistics.median(t.wall_s for t in timings["B"]) / scripts
    ratio_cold = statistics.median(t.wall_s for t in timings["C"]) / scripts
    verdict = "PASS" if ratio <= TARGET_RATIO else "FAIL"
    print()
    print(f"ratio grid / plain scripts: {ratio:.2f} with prewarm, {ratio_cold:.2f} without")
    print(f"target: grid with prewarm <= {TARGET_RATIO:g} x plain scripts: {verdict}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Time N runs of a short training notebook as plain scripts and as a cvlab "
        "grid (with and without prewarm), side by side."
    )
    parser.add_argument("--runs", type=int, default=10, metavar="N", help="runs (default 10)")
    parser.add_argument("--epochs", type=int, default=1, metavar="N", help="epochs (default 1)")
    parser.add_argument(
        "--repeats", type=int, default=1, metavar="N", help="timings of each variant (default 1)"
    )
    parser.add_argument(
        "--no-warmup", action="store_true", help="skip the untimed import of the libraries"
    )
    args = parser.parse_args(argv)
    if min(args.runs, args.epochs, args.repeats) < 1:
        parser.error("--runs, --epochs and --repeats must be at least 1")

    tensorflow = _version("tensorflow-cpu")
    tensorflow = _version("tensorflow") if tensorflow == "?" else tensorflow
    print(
        f"cvlab overhead benchmark: {args.runs} runs of a digits CNN ({args.epochs} epoch"
        f"{'s' if args.epochs > 1 else ''} each), {args.repeats} repeat"
        f"{'s' if args.repeats > 1 else ''}; Python {platform.python_version()}, "
        f"keras {_version('keras')}, tensorflow {tensorflow}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="cvlab-bench-") as tmp:
        root = Path(tmp)
        work = root / "work"
        work.mkdir()
        notebook = write_notebook(work / "overhead.ipynb")
        params = parameter_sets(args.runs, args.epochs)
        scripts = write_scripts(notebook, params, root / "scripts")
        grid_yaml = write_grid(work / "overhead.yaml", notebook, params)
        if not args.no_warmup:
            print(f"warm-up (untimed import of the libraries): {warm_up(work):.2f} s", flush=True)
        timings: dict[str, list[Timing]] = {"A": [], "B": [], "C": []}
        for i in range(args.repeats):
            order = "ABC"[i % 3 :] + "ABC"[: i % 3]  # rotate, so machine noise hits each variant
            for variant in order:
                if variant == "A":
                    timings["A"].append(time_scripts(scripts))
                else:
                    out = root / f"out-{variant}"
                    timings[variant].append(time_grid(grid_yaml, out, args.runs, variant == "B"))
            print(
                f"repeat {i + 1}/{args.repeats} ({' '.join(order)}): "
                + ", ".join(f"{v} {timings[v][-1].wall_s:.2f} s" for v in "ABC"),
                flush=True,
            )
        report(timings, args.runs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
