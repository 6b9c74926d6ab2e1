"""Does early stopping find the grid's best configuration at a fraction of its cost? Three
strategies over the same space, side by side in one invocation, each through the real grid
runner (`cvlab.grid.runner.run_grid` on a grid YAML) into its own output folder:

A. the full grid: every configuration trained to its last epoch;
B. the same grid with ASHA (`prune: {metric: val_accuracy, method: asha, ...}`): hopeless runs
   stop at a rung;
C. a TPE search with the same ASHA pruning over the same ranges (learning rate continuous on a
   log scale), sampling trials while one more full run still fits in B's epoch budget, so its
   total epochs are at most B's.

The task (--dataset): MiniVGGNet on Flowers-17 (notebooks/02_augmentation.ipynb) or on a
CIFAR-10 subset (notebooks/09_googlenet.ipynb with model_name minivggnet: 200 images per class,
half of them for validation, so 1,000 training, 1,000 validation and 2,000 test images), from the
data cache of $CVLAB_DATA, with a stratified validation split beside the test split: runs are
pruned and chosen on validation accuracy (the last epoch's, the model the test split scores),
and the chosen run's test accuracy is reported. The space: learning rate x batch size x SGD
momentum.

For each strategy: the chosen run's validation and test accuracy, the epochs trained, the runs
(finished / pruned) and the wall time; then B/A and C/A epochs and the accuracy differences.
The target (issue 20): B within one point of A's test accuracy at no more than a third of its
epochs. The exit status is 0 either way (a benchmark, not a test).

    python bench/search.py                 # 16 runs, 32 px, 9 epochs
    python bench/search.py --size 64 --epochs 27 --results /tmp/bench-search
    python bench/search.py --dataset cifar10 --epochs 18 --min-epochs 2     # rungs at 2 and 6
"""

from __future__ import annotations

import argparse
import csv
import itertools
import json
import os
import platform
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from scipy.stats import spearmanr

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))  # the worktree's cvlab, as run_grid.py uses it

import cvlab.grid.study as study_module  # noqa: E402
from cvlab.config_yaml import parse_yaml  # noqa: E402
from cvlab.grid.runner import GridOptions, run_grid  # noqa: E402
from cvlab.runs.epoch_metrics import resolve_metric  # noqa: E402
from cvlab.runs.record import RunRecord  # noqa: E402

# The tasks (--dataset): MiniVGGNet, plain SGD, no augmentation, a validation split to prune and
# choose on and a test split to score the chosen run. Flowers-17 through the augmentation notebook
# (its 25% test split); CIFAR-10 through the MiniGoogLeNet notebook, the one whose loader takes
# CIFAR-10's options (the augmentation notebook's `aspect` is no CIFAR-10 option), with its model
# set to MiniVGGNet and a constant learning rate (its test split: the official test set, limited
# like train by limit_per_class).
TASKS: dict[str, dict[str, Any]] = {
    "flowers17": {
        "notebook": REPO / "notebooks" / "02_augmentation.ipynb",
        "options": {"test_fraction": 0.25},
        "size_option": False,
        "experiment": None,  # the notebook's experiment is a name: the grid's
        "params": {},
        "defaults": {"limit_per_class": None, "val_fraction": 0.15},
    },
    "cifar10": {
        "notebook": REPO / "notebooks" / "09_googlenet.ipynb",
        "options": {},
        "size_option": True,
        "experiment": 0,  # the notebook's experiment is a number
        "params": {"model_name": "minivggnet", "model_options": {}, "schedule": None},
        "defaults": {"limit_per_class": 200, "val_fraction": 0.5},
    },
}
RANK_METRIC = "val_accuracy:last"  # the last epoch's model is the one the test split scores
TEST_METRIC = "rank1"  # the notebook's test accuracy
TARGET_EPOCHS = 1 / 3  # B's epochs at most a third of A's...
TARGET_POINTS = 0.01  # ...and its test accuracy within one point of A's
STRATEGIES = {
    "A": ("search_full", "full grid, every run to its last epoch"),
    "B": ("search_asha", "the same grid with ASHA"),
    "C": ("search_tpe", "TPE + ASHA within B's epochs"),
}


@dataclass
class Outcome:
    """One strategy's runs, as their records say."""

    label: str
    wall_s: float
    folder: Path  # the grid's experiments/<grid>/ folder: one run folder per record
    records: list[RunRecord] = field(default_factory=list)

    @property
    def epochs(self) -> int:
        return sum(r.epochs_completed for r in self.records)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.records)

    def best(self) -> RunRecord | None:
        """The finished run with the highest validation accuracy (ties: the earlier run)."""
        finished = [r for r in self.records if r.status == "ok" and _val(r) is not None]
        return max(finished, key=_val, default=None)


def _val(record: RunRecord) -> float | None:
    value = resolve_metric(RANK_METRIC, record.metrics, record.epoch_metrics, "max")
    return float(value) if isinstance(value, int | float) else None


def base_grid(args: argparse.Namespace, name: str) -> dict[str, Any]:
    """What every strategy shares: the notebook, the fixed parameters, the ranking."""
    task = TASKS[args.dataset]
    options: dict[str, Any] = {"val_fraction": args.val_fraction, **task["options"]}
    if task["size_option"]:
        options["size"] = args.size
    if args.limit_per_class:
        options["limit_per_class"] = args.limit_per_class
    params = {
        "experiment": name if task["experiment"] is None else task["experiment"],
        "dataset": args.dataset,
        "dataset_options": options,
        **({} if task["size_option"] else {"size": args.size}),
        **task["params"],
        "optimizer": "sgd",
        "epochs": args.epochs,
        "augment": None,
        "checkpoint_every": args.epochs + 1,  # no training backups: short runs, not resumed
        "book_value": None,
        "book_source": "bench/search.py: not the book's setup",
    }
    return {
        "name": name,
        "notebook": str(task["notebook"]),
        "description": f"bench/search.py: strategy {name} on {args.dataset}",
        "params": params,
        "timeout": 3600,
        "rank_by": {"metric": RANK_METRIC, "mode": "max"},
    }


def prune_block(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "metric": "val_accuracy",
        "mode": "max",
        "method": "asha",
        "min_epochs": args.min_epochs,
        "reduction_factor": args.reduction_factor,
    }


def grid_values(args: argparse.Namespace) -> dict[str, list[Any]]:
    return {
        "learning_rate": args.learning_rates,
        "batch_size": args.batch_sizes,
        "momentum": args.momenta,
    }


def grid_dicts(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The three grid files' contents, by strategy."""
    values = grid_values(args)
    full = {**base_grid(args, STRATEGIES["A"][0]), "grid": values}
    asha = {**base_grid(args, STRATEGIES["B"][0]), "grid": values, "prune": prune_block(args)}
    space = {
        "learning_rate": {
            "loguniform": [min(values["learning_rate"]), max(values["learning_rate"])]
        },
        "batch_size": {"choice": values["batch_size"]},
        "momentum": {"choice": values["momentum"]},
    }
    search = {"trials": args.max_trials, "sampler": "tpe", "seed": args.seed, "space": space}
    tpe = {**base_grid(args, STRATEGIES["C"][0]), "search": search, "prune": prune_block(args)}
    return {"A": full, "B": asha, "C": tpe}


def write_yaml(path: Path, content: dict[str, Any]) -> Path:
    """JSON is YAML: the grid file as the runner reads it (checked to parse back the same)."""
    text = json.dumps(content, indent=2)
    assert parse_yaml(text) == content
    path.write_text(f"# written by bench/search.py\n{text}\n", encoding="utf-8")
    return path


def records_of(out: Path, grid: str) -> list[RunRecord]:
    folder = runs_folder(out, grid)
    found = (RunRecord.load_if_present(p.parent) for p in sorted(folder.glob("*/record.json")))
    return sorted(
        (r for r in found if r is not None),
        key=lambda r: r.started_at.timestamp() if r.started_at else 0.0,
    )


def runs_folder(out: Path, grid: str) -> Path:
    return out / "experiments" / grid


@contextmanager
def epoch_budget(out: Path, grid: str, budget: int, max_epochs: int):
    """A search samples its next trial only while one more run to its last epoch still fits in
    `budget` epochs. Written here because run_grid has no epoch budget (a search stops at
    `trials`); runs go one at a time, so every earlier run's record is final when this asks."""
    original = study_module.StudyPlans.pop

    def pop(self):
        if (
            not self._queue
            and sum(r.epochs_completed for r in records_of(out, grid)) + (max_epochs) > budget
        ):
            self.new = 0
            return None
        return original(self)

    study_module.StudyPlans.pop = pop
    try:
        yield
    finally:
        study_module.StudyPlans.pop = original


def run_strategy(key: str, grid_yaml: Path, out: Path, budget: int | None, args) -> Outcome:
    grid, label = STRATEGIES[key]
    print(f"\n== {key}: {label} ({grid_yaml.name} -> {out})", flush=True)
    options = GridOptions(out=out, force=True, echo=args.echo, max_runs=args.max_trials + 64)
    start = time.perf_counter()
    if budget is None:
        result = run_grid(grid_yaml, options)
    else:
        with epoch_budget(out, grid, budget, args.epochs):
            result = run_grid(grid_yaml, options)
    wall = time.perf_counter() - start
    if result.interrupted:
        sys.exit(f"interrupted during {key}")
    outcome = Outcome(label, wall, runs_folder(out, grid), records_of(out, grid))
    timings = out.parent / "timings.json"
    saved = json.loads(timings.read_text()) if timings.exists() else {}
    timings.write_text(json.dumps({**saved, key: wall}), encoding="utf-8")
    print(
        f"== {key}: {len(outcome.records)} runs, {outcome.epochs} epochs, {wall / 60:.1f} min",
        flush=True,
    )
    return outcome


def reuse_strategy(key: str, out: Path) -> Outcome | None:
    """A strategy of an earlier invocation (--reuse): its records, and its wall time as that
    invocation timed it (else from its first run's start to its last run's end)."""
    grid, label = STRATEGIES[key]
    records = records_of(out, grid)
    if not records:
        return None
    timings = out.parent / "timings.json"
    wall = json.loads(timings.read_text()).get(key) if timings.exists() else None
    if wall is None:
        ends = [r.ended_at for r in records if r.ended_at]
        starts = [r.started_at for r in records if r.started_at]
        wall = (max(ends) - min(starts)).total_seconds() if ends and starts else 0.0
    print(f"== {key}: reused {len(records)} runs from {out}", flush=True)
    return Outcome(label, wall, runs_folder(out, grid), records)


def rung_epochs(args: argparse.Namespace) -> list[int]:
    """ASHA's rungs before the last epoch: min_epochs, x reduction_factor, ..."""
    rungs, epoch = [], args.min_epochs
    while epoch < args.epochs:
        rungs.append(epoch)
        epoch *= args.reduction_factor
    return rungs


def val_history(outcome: Outcome, record: RunRecord) -> dict[int, float]:
    path = outcome.folder / record.run_id / "history.csv"
    if not path.exists():
        return {}
    with path.open(encoding="utf-8") as f:
        return {int(row["epoch"]): float(row["val_accuracy"]) for row in csv.DictReader(f)}


def early_agreement(full: Outcome, rungs: list[int]) -> list[tuple[int, float]]:
    """Do early epochs say something? Over the full grid's runs, the rank correlation
    (Spearman) of each rung's validation accuracy with the last epoch's: near 1, a rung keeps
    the runs that end best; near 0 or below, it cuts at random or the wrong ones."""
    histories = [h for h in (val_history(full, r) for r in full.records) if h]
    out = []
    for epoch in rungs:
        pairs = [(h[epoch], h[max(h)]) for h in histories if epoch in h]
        if len(pairs) >= 3:
            rho = spearmanr([a for a, _ in pairs], [b for _, b in pairs]).statistic
            out.append((epoch, float(rho)))
    return out


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "?"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _setting(record: RunRecord | None) -> str:
    if record is None:
        return "-"
    p = record.params
    return f"lr {p['learning_rate']:.3g}, batch {p['batch_size']}, momentum {p['momentum']:g}"


def report(outcomes: dict[str, Outcome], rungs: list[int]) -> None:
    print()
    header = f"{'':3}{'strategy':40} {'runs (ok/pruned)':>17} {'epochs':>7} {'wall':>9}"
    print(f"{header} {'best val':>9} {'its test':>9}  chosen configuration")
    tests: dict[str, float | None] = {}
    for key, o in outcomes.items():
        best = o.best()
        val = _val(best) if best else None
        test = best.metrics.get(TEST_METRIC) if best else None
        tests[key] = test
        runs = f"{len(o.records)} ({o.count('ok')}/{o.count('pruned')})"
        print(
            f"{key:3}{o.label:40} {runs:>17} {o.epochs:>7} {o.wall_s / 60:7.1f} m "
            f"{_pct(val):>9} {_pct(test):>9}  {_setting(best)}"
        )
    a = outcomes.get("A")
    if a is None or not a.epochs:
        return
    print()
    agreement = early_agreement(a, rungs)
    if agreement:
        print(
            "A's runs, rank correlation (Spearman) of val_accuracy at a rung with the last "
            "epoch's: " + ", ".join(f"epoch {e}: {rho:+.2f}" for e, rho in agreement)
        )
    for key in ("B", "C"):
        o = outcomes.get(key)
        if o is None:
            continue
        diff = (
            f"{100 * (tests[key] - tests['A']):+.2f} points"
            if tests[key] is not None and tests["A"] is not None
            else "-"
        )
        print(
            f"{key}/A: epochs {o.epochs / a.epochs:.2f}, wall {o.wall_s / a.wall_s:.2f}, "
            f"test accuracy {diff}"
        )
    b = outcomes.get("B")
    if b is not None and tests["A"] is not None and tests["B"] is not None:
        met = b.epochs <= TARGET_EPOCHS * a.epochs and tests["B"] >= tests["A"] - TARGET_POINTS
        print(
            f"target: B within {100 * TARGET_POINTS:g} point of A's test accuracy at <= "
            f"{TARGET_EPOCHS:.2f} of its epochs: {'MET' if met else 'NOT MET'}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Full grid vs. the grid with ASHA vs. TPE + ASHA at the same epoch budget, "
        "on MiniVGGNet (Flowers-17 or a CIFAR-10 subset), side by side."
    )
    parser.add_argument("--size", type=int, default=32, help="image side in pixels (32)")
    parser.add_argument("--epochs", type=int, default=9, help="epochs of a full run (9)")
    parser.add_argument("--min-epochs", type=int, default=1, help="ASHA's first rung (1)")
    parser.add_argument("--reduction-factor", type=int, default=3, help="ASHA's factor (3)")
    parser.add_argument("--learning-rates", type=float, nargs="+", default=[0.1, 0.03, 0.01, 0.003])
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--momenta", type=float, nargs="+", default=[0.0, 0.9])
    parser.add_argument(
        "--dataset", choices=sorted(TASKS), default="flowers17", help="the task (flowers17)"
    )
    parser.add_argument(
        "--val-fraction",
        type=float,
        default=None,
        help="validation split (flowers17: 0.15 of the images; cifar10: 0.5 of train)",
    )
    parser.add_argument(
        "--limit-per-class",
        type=int,
        default=None,
        help="images per class (flowers17: all 80; cifar10: 200 of train, 200 of test)",
    )
    parser.add_argument("--seed", type=int, default=0, help="the TPE sampler's seed (0)")
    parser.add_argument(
        "--max-trials", type=int, default=64, help="at most this many TPE trials (64)"
    )
    parser.add_argument(
        "--strategies", default="ABC", help="which of A, B, C to run (ABC; C needs B)"
    )
    parser.add_argument(
        "--results", type=Path, default=None, help="keep the output folders here (a temp dir)"
    )
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="with --results: read back the strategies an earlier run left there, run the rest",
    )
    parser.add_argument("--echo", action="store_true", help="echo every epoch's line")
    args = parser.parse_args(argv)
    for option, value in TASKS[args.dataset]["defaults"].items():
        if getattr(args, option) is None:
            setattr(args, option, value)
    keys = [k for k in "ABC" if k in args.strategies.upper()]
    if "C" in keys and "B" not in keys:
        parser.error("strategy C needs B (its epoch budget)")
    if args.min_epochs > args.epochs:
        parser.error("--min-epochs must be at most --epochs")
    if args.reuse and args.results is None:
        parser.error("--reuse needs --results DIR")

    n = len(list(itertools.product(args.learning_rates, args.batch_sizes, args.momenta)))
    tensorflow = _version("tensorflow-cpu")
    tensorflow = _version("tensorflow") if tensorflow == "?" else tensorflow
    print(
        f"cvlab search benchmark: MiniVGGNet on {args.dataset} at {args.size} px (limit_per_class "
        f"{args.limit_per_class}, val_fraction {args.val_fraction:.3g}), {n} configurations "
        f"x {args.epochs} epochs; ASHA min_epochs {args.min_epochs}, reduction factor "
        f"{args.reduction_factor}; TPE seed {args.seed}; {os.cpu_count()} CPUs; Python "
        f"{platform.python_version()}, keras {_version('keras')}, tensorflow {tensorflow}, "
        f"optuna {_version('optuna')}; CVLAB_DATA={os.environ.get('CVLAB_DATA', '(unset)')}",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="cvlab-bench-search-") as tmp:
        root = args.results or Path(tmp)
        root.mkdir(parents=True, exist_ok=True)
        grids = grid_dicts(args)
        outcomes: dict[str, Outcome] = {}
        for key in keys:
            grid_yaml = write_yaml(root / f"{STRATEGIES[key][0]}.yaml", grids[key])
            out = root / f"out-{key}"
            reused = reuse_strategy(key, out) if args.reuse else None
            budget = outcomes["B"].epochs if key == "C" else None
            outcomes[key] = reused or run_strategy(key, grid_yaml, out, budget, args)
            report(outcomes, rung_epochs(args))  # the figures so far, should one not finish
        print(f"\nresults in {root}" if args.results else "")
    return 0


if __name__ == "__main__":
    sys.exit(main())
