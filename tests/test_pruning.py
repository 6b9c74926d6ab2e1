"""Early stopping (`prune:`): the pruners' cuts on hand-made histories (which runs a rung keeps),
the run's side (EpochReporter against a real SQLite study), and a pruned grid end to end: pruned
runs end `pruned` with their notebook executed up to the training cell, are a result (exit 0, not
re-run unless --force), and the pruner's decisions reach `--workers` and Dask runs."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
from pathlib import Path

import nbformat
import numpy as np
import optuna
import pytest
import yaml
from optuna.trial import TrialState

import cvlab
from cvlab.errors import PruneMetricError, RunPruned
from cvlab.grid.cli import main
from cvlab.runs import RunRecord
from cvlab.search.pruners import make_pruner, rung_of
from cvlab.search.spec import PruneSpec
from cvlab.search.storage import open_storage, sqlite_address
from cvlab.search.trial_link import EpochReporter, TrialLink
from cvlab.workspace import Workspace

from conftest import light_spec
from notebook_builder import write_notebook

optuna.logging.set_verbosity(optuna.logging.WARNING)


# ---- the pruners on hand-made histories -----------------------------------------------------


def _replay(pruner, histories, *, direction="maximize", name="hand-made"):
    """Run `histories` (one list of per-epoch values per run) one after the other through an
    in-memory study, as a grid with one worker does: each run reports its epochs until the
    pruner cuts it. Returns (study, {run index: epoch it was cut at, or None if it finished})."""
    study = optuna.create_study(study_name=name, direction=direction, pruner=pruner)
    cut: dict[int, int | None] = {}
    for i, values in enumerate(histories):
        trial = study.ask()
        cut[i] = None
        for epoch, value in enumerate(values, start=1):
            trial.report(value, epoch)
            if trial.should_prune():
                cut[i] = epoch
                break
        if cut[i] is None:
            study.tell(trial, values[-1])
        else:
            study.tell(trial, state=TrialState.PRUNED)
    return study, cut


# epoch-1 values of six runs, flat afterwards (3 epochs each)
FIRST = [0.5, 0.9, 0.1, 0.7, 0.3, 0.8]


def test_asha_rung_keeps_the_top_third_of_the_runs_that_reached_it():
    """reduction_factor 3: a run goes on past a rung if it is within the best third of the
    values reached there so far (at least the best); the others stop at the rung's epoch."""
    pruner = make_pruner(PruneSpec(metric="val_accuracy", method="asha", reduction_factor=3))
    study, cut = _replay(pruner, [[v] * 3 for v in FIRST])
    # rung 0 (epoch 1): 0.5 and 0.9 are the best so far when they arrive; 0.1, 0.7, 0.3 are
    # not the best of fewer than six; 0.8 is second of six, within the best third (6 // 3 = 2).
    # rung 1 (epoch 3): 0.8 is not the best of the three runs that reached it: cut there
    assert cut == {0: None, 1: None, 2: 1, 3: 1, 4: 1, 5: 3}
    trials = study.get_trials()
    assert [rung_of(t) for t in trials] == [1, 1, 0, 0, 0, 1]  # rung 1 is epoch 3
    assert [t.state for t in trials].count(TrialState.PRUNED) == 4


def test_asha_minimizes_when_the_mode_is_min():
    pruner = make_pruner(PruneSpec(metric="val_loss", method="sha", reduction_factor=3))
    study, cut = _replay(pruner, [[1 - v] * 3 for v in FIRST], direction="minimize")
    assert cut == {0: None, 1: None, 2: 1, 3: 1, 4: 1, 5: 3}


def test_asha_cuts_nothing_before_min_epochs_and_later_rungs_cut_too():
    """min_epochs 2, reduction_factor 2: rungs at epochs 2 and 4, none at 1 or 3."""
    pruner = make_pruner(
        PruneSpec(metric="val_accuracy", method="asha", min_epochs=2, reduction_factor=2)
    )
    histories = [
        [0.1, 0.5, 0.6, 0.9],  # first: kept everywhere
        [0.9, 0.1, 0.9, 0.9],  # great at epoch 1, which is no rung; worse at epoch 2: cut there
        [0.2, 0.6, 0.6, 0.5],  # best at epoch 2, worst at epoch 4 (rung 1): cut there
    ]
    study, cut = _replay(pruner, histories)
    assert cut == {0: None, 1: 2, 2: 4}
    assert [rung_of(t) for t in study.get_trials()] == [1, 0, 1]


def test_hyperband_runs_compete_within_their_bracket():
    """min 1, max 9 epochs, factor 3: three brackets whose first rungs are at epochs 1, 3 and
    9. With every run worse than the one before, each bracket keeps its first run and cuts each
    later one at the bracket's first rung."""
    pruner = make_pruner(
        PruneSpec(metric="val_accuracy", method="hyperband", reduction_factor=3), max_epochs=9
    )
    histories = [[1.0 - 0.05 * i] * 9 for i in range(12)]
    study, cut = _replay(pruner, histories, name="hyperband-hand-made")
    assert pruner._n_brackets == 3
    brackets = [pruner._get_bracket_id(study, t) for t in study.get_trials()]
    assert len(set(brackets)) >= 2  # the case exercises more than one bracket
    seen: set[int] = set()
    for i, bracket in enumerate(brackets):
        expected = None if bracket not in seen else 3**bracket
        assert cut[i] == expected, (i, bracket, cut)
        seen.add(bracket)
    # better and better runs: none is cut
    _, cut = _replay(
        make_pruner(PruneSpec(metric="m", method="hyperband"), max_epochs=9),
        [[0.05 * i] * 9 for i in range(12)],
        name="hyperband-rising",
    )
    assert set(cut.values()) == {None}


def test_median_cuts_below_the_median_of_finished_runs_from_min_epochs_on():
    """startup_runs 2: no cut before two runs finished; min_epochs 2: no cut at epoch 1; then
    a run whose best so far is below the finished runs' median at that epoch is cut."""
    pruner = make_pruner(
        PruneSpec(metric="val_accuracy", method="median", min_epochs=2, startup_runs=2)
    )
    histories = [
        [0.5, 0.6, 0.7],
        [0.1, 0.2, 0.3],  # worse than the first, but only one run finished: not cut
        [0.0, 0.9, 0.9],  # far below the median at epoch 1, which is before min_epochs
        [0.3, 0.3, 0.3],  # below the median at epoch 2 (0.6 and 0.2 and 0.9: 0.6)
        [0.5, 0.6, 0.65],  # at the median at epoch 2 (not below), below it at epoch 3
    ]
    _, cut = _replay(pruner, histories)
    assert cut == {0: None, 1: None, 2: None, 3: 2, 4: 3}


# ---- the run's side: EpochReporter against a real SQLite study --------------------------------


def _link(address: str, study: optuna.Study, trial, prune: PruneSpec, **extra) -> TrialLink:
    return TrialLink(
        storage=address,
        study=study.study_name,
        number=trial.number,
        trial_id=trial._trial_id,
        direction="minimize",
        prune=prune,
        **extra,
    )


def _linked_trial(tmp_path: Path, prune: PruneSpec) -> tuple[optuna.Study, TrialLink]:
    address = sqlite_address(tmp_path)
    study = optuna.create_study(study_name="g.test", storage=open_storage(address))
    trial = study.ask()
    return study, _link(address, study, trial, prune, grid_file="grids/g.yaml", max_epochs=3)


def test_epoch_reporter_names_a_missing_metric_and_the_logged_ones(tmp_path):
    _, link = _linked_trial(tmp_path, PruneSpec(metric="val_acc", method="asha"))
    reporter = EpochReporter(link)
    with pytest.raises(PruneMetricError) as info:
        reporter.report(1, {"epoch": 1, "loss": 0.5, "val_loss": 0.7, "accuracy": 0.6})
    message = str(info.value)
    assert "grids/g.yaml" in message and "prune.metric 'val_acc'" in message
    assert "loss, val_loss, accuracy" in message and "epoch" not in message.split("logs:")[1]


def test_epoch_reporter_reports_each_epoch_and_returns_the_verdict(tmp_path):
    study, first = _linked_trial(tmp_path, PruneSpec(metric="val_loss", method="asha"))
    assert EpochReporter(first).report(1, {"val_loss": 0.2}) is None  # the first run: kept
    study.tell(first.number, 0.2)
    second = study.ask()
    link = first.model_copy(update={"number": second.number, "trial_id": second._trial_id})
    reporter = EpochReporter(link)
    verdict = reporter.report(1, {"val_loss": 0.9, "loss": 0.1})
    assert verdict is not None and verdict.epoch == 1 and verdict.rung == 0
    assert "pruned by asha after epoch 1 at rung 0" in verdict.message
    assert "val_loss=0.9" in verdict.message
    stored = open_storage(link.storage).get_trial(link.trial_id)
    assert stored.intermediate_values == {1: 0.9}  # reported to the study in the file
    # a NaN epoch is left to the divergence check: no report, no verdict
    assert reporter.report(2, {"val_loss": float("nan")}) is None


# ---- a pruned grid end to end ------------------------------------------------------------------

# Trains `epochs` epochs; a larger x has a better val_accuracy at every epoch. The run finishes
# in a cell after the training one, which a pruned run never executes.
PRUNABLE_CELLS = [
    ("code", "run_dir = None\nx = 1\nepochs = 3\nsleep_s = 0.0\n"),
    ("code", "import time\nimport cvlab\n\nrun = cvlab.runs.start(run_dir)"),
    (
        "code",
        """
for epoch in range(1, epochs + 1):
    time.sleep(sleep_s)
    run.log_epoch(epoch, epochs, loss=1.0 / (x * epoch), val_accuracy=0.1 * x + 0.01 * epoch)
""",
    ),
    ("code", "run.log_metrics(score=float(x))\nrun.finish()\nprint('after training')"),
]

# reduction_factor 2, runs in the order x = 4, 3, 2, 1: x=4 is kept (the first); x=3 is not
# the best of two at epoch 1: cut; x=2 is not the best of three, x=1 not within the best half
# of four: cut. With two runs at a time, x=3 may be kept (it may report first), x=2 and x=1 not.
PRUNE = {"metric": "val_accuracy", "mode": "max", "method": "asha", "reduction_factor": 2}


@pytest.fixture
def prunable(tmp_path: Path):
    """Write the prunable notebook and a pruned grid over it; returns the grid file."""
    write_notebook(PRUNABLE_CELLS, tmp_path / "prunable.ipynb")

    def _grid(**overrides) -> Path:
        spec = {
            "notebook": "prunable.ipynb",
            "grid": {"x": [4, 3, 2, 1]},
            "rank_by": {"metric": "score", "mode": "max"},
            "prune": PRUNE,
            **overrides,
        }
        path = tmp_path / "g.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        return path

    return _grid


def _records(out: Path) -> dict[int, RunRecord]:
    grid_dir = Workspace.at(out).experiments / "g"
    records = [RunRecord.load(d) for d in grid_dir.iterdir() if (d / "record.json").exists()]
    return {r.params["x"]: r for r in records}


def _trial_states(out: Path) -> list[str]:
    with sqlite3.connect(Workspace.at(out).logs / "optuna.db") as conn:
        return [row[0] for row in conn.execute("SELECT state FROM trials ORDER BY number")]


def _check_pruned(record: RunRecord, epoch: int = 1) -> None:
    """A pruned run's record: status, epoch and rung, its note, no error, no final metrics."""
    assert record.status == "pruned" and record.error is None, record
    assert record.pruned_at_epoch == epoch and record.rung == 0
    assert any("pruned by asha after epoch" in note for note in record.notes)
    assert "score" not in record.metrics


def _check_pruned_notebook(run_dir: Path) -> None:
    nb = nbformat.read(run_dir / "run.ipynb", as_version=4)
    code = [c for c in nb.cells if c.cell_type == "code"]
    training = next(c for c in code if "for epoch in range" in c.source)
    after = next(c for c in code if "after training" in c.source)
    assert training.execution_count is not None
    assert "RunPruned" in json.dumps(training.outputs)  # stopped there, and says why
    assert after.execution_count is None and not after.outputs  # later cells never ran
    history = (run_dir / "history.csv").read_text().strip().splitlines()
    assert len(history) == 2  # the header and epoch 1


def test_pruned_runs_end_pruned_with_their_notebook_and_are_not_rerun(prunable, tmp_path, capsys):
    grid, out = prunable(grid={"x": [4, 3, 1]}), tmp_path / "out"
    args = [str(grid), "--out", str(out), "--quiet", "--no-prewarm"]
    assert main(args) == 0  # pruned runs are results, not failures
    records = _records(out)
    assert records[4].status == "ok" and records[4].metrics["score"] == 4.0
    assert records[4].pruned_at_epoch is None and records[4].rung is None
    ws = Workspace.at(out)
    for x in (3, 1):
        _check_pruned(records[x])
        _check_pruned_notebook(ws.run_dir("g", records[x].run_id))
    assert sorted(_trial_states(out)) == ["COMPLETE", "PRUNED", "PRUNED"]
    assert "1 ok, 2 pruned" in capsys.readouterr().out

    # the next call runs nothing: a pruned run is finished
    assert main(args) == 0
    assert "0 to run, 3 already finished" in capsys.readouterr().out
    again = _records(out)
    assert {x: r.started_at for x, r in again.items()} == {
        x: r.started_at for x, r in records.items()
    }
    assert len(_trial_states(out)) == 3  # no new trial either


def test_force_runs_pruned_runs_again_as_new_trials(prunable, tmp_path):
    grid, out = prunable(grid={"x": [4, 3]}), tmp_path / "out"
    args = [str(grid), "--out", str(out), "--quiet", "--no-prewarm"]
    assert main(args) == 0
    first = _records(out)
    assert first[3].status == "pruned"
    assert main([*args, "--force"]) == 0
    forced = _records(out)
    assert all(forced[x].started_at > first[x].started_at for x in first)
    assert forced[4].status == "ok" and forced[3].status == "pruned"  # 0.31 < 0.41, 0.41
    _check_pruned(forced[3])
    assert _trial_states(out) == ["COMPLETE", "PRUNED", "COMPLETE", "PRUNED"]


def test_a_prune_metric_the_runs_never_log_fails_them_after_epoch_1(prunable, tmp_path, capsys):
    grid = prunable(grid={"x": [1]}, prune={**PRUNE, "metric": "val_acc"})
    out = tmp_path / "out"
    code = main([str(grid), "--out", str(out), "--quiet", "--no-prewarm"])
    assert code == 1  # a failed run, not bad input: the metric is known only once logged
    record = _records(out)[1]
    assert record.status == "failed" and record.error is not None
    assert record.error.type == "PruneMetricError"
    assert "prune.metric 'val_acc'" in record.error.message
    assert "loss, val_accuracy" in record.error.message  # what the run does log
    history = (Workspace.at(out).run_dir("g", record.run_id) / "history.csv").read_text()
    assert len(history.strip().splitlines()) == 2  # reported after the first epoch
    assert "val_acc" in capsys.readouterr().out


def _check_decisions_reached(out: Path) -> None:
    records = _records(out)
    assert records[4].status == "ok"
    for x in (2, 1):  # whatever order the two slots took: see PRUNE
        _check_pruned(records[x])
        _check_pruned_notebook(Workspace.at(out).run_dir("g", records[x].run_id))
    assert records[3].status in {"ok", "pruned"}
    assert "RUNNING" not in _trial_states(out) and len(_trial_states(out)) == 4


def test_pruning_reaches_a_workers_pool(prunable, tmp_path):
    out = tmp_path / "out"
    code = main([str(prunable()), "--out", str(out), "--quiet", "--no-prewarm", "--workers", "2"])
    assert code == 0
    _check_decisions_reached(out)


@pytest.mark.slow
def test_pruning_reaches_dask_workers_through_the_storage_proxy(prunable, tmp_path):
    pytest.importorskip("distributed")
    out = tmp_path / "out"
    args = ["--scheduler", "local", "--workers", "2", "--no-prewarm"]
    code = main([str(prunable()), "--out", str(out), "--quiet", *args])
    assert code == 0
    _check_decisions_reached(out)
    for record in _records(out).values():  # the runs reached the study through the proxy
        assert record.trial is not None and record.trial.storage.startswith("grpc://")


def test_a_trial_queued_by_a_stopped_driver_is_no_runs_trial(light_notebook, write_grid, tmp_path):
    """A driver stopped between queueing a run's trial and asking for it leaves a waiting
    trial with that run's values; the next driver's runs must not take it as theirs."""
    grid = write_grid(light_spec(prune={"metric": "loss", "mode": "min"}))
    out = tmp_path / "out"
    args = [str(grid), "--out", str(out), "--quiet", "--no-prewarm"]
    assert main([*args, "--max-runs", "1"]) == 0
    storage = sqlite_address(Workspace.at(out).logs)
    (summary,) = optuna.get_all_study_summaries(storage)
    study = optuna.load_study(study_name=summary.study_name, storage=storage)
    study.enqueue_trial({"x": 1}, skip_if_exists=False)  # what the stopped driver left
    assert main(args) == 0
    records = {r.params["x"]: r for r in _records(out).values()}
    assert set(records) == {1, 2}
    trials = study.get_trials()
    for x, record in records.items():
        trial = trials[record.trial.number]
        assert trial.params == {"x": x} and trial.user_attrs["run_id"] == record.run_id
        assert trial.state == TrialState.COMPLETE
    stale = [t for t in trials if "run_id" not in t.user_attrs]
    assert [t.state for t in stale] == [TrialState.FAIL]


@pytest.mark.backends
def test_the_keras_callback_stops_a_pruned_run_at_its_epoch_end(tmp_path):
    """A notebook needs no change: `run.keras_callback()` reports each epoch to the run's
    trial, and the pruner's cut stops `fit` there (on every backend)."""
    import keras  # lazy: keras

    address = sqlite_address(tmp_path)
    study = optuna.create_study(
        study_name="g.keras", storage=open_storage(address), direction="minimize"
    )
    best = study.ask()  # an earlier run that no real loss beats
    study.pruner = make_pruner(PruneSpec(metric="val_loss", reduction_factor=2))
    for epoch in (1, 2, 3):
        best.report(-1.0, epoch)
        assert not best.should_prune()  # which records the rungs it reached
    study.tell(best, -1.0)
    trial = study.ask()
    link = _link(
        address, study, trial, PruneSpec(metric="val_loss", method="asha", reduction_factor=2)
    )
    run_dir = tmp_path / "run"
    RunRecord(run_id="run", name="run", trial=link).save(run_dir)

    keras.utils.set_random_seed(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softmax")])
    model.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    x = np.random.default_rng(0).random((32, 4)).astype("float32")
    y = np.arange(32) % 3
    run = cvlab.runs.start(run_dir)
    with pytest.raises(RunPruned, match="pruned by asha after epoch 1"):
        model.fit(
            x, y, validation_split=0.25, epochs=4, verbose=0, callbacks=[run.keras_callback()]
        )
    record = RunRecord.load(run_dir)
    assert record.status == "pruned" and record.pruned_at_epoch == 1 and record.rung == 0
    assert len((run_dir / "history.csv").read_text().strip().splitlines()) == 2
    stored = open_storage(address).get_trial(trial._trial_id)
    assert list(stored.intermediate_values) == [1]


def test_runs_outside_a_pruned_grid_do_not_import_optuna():
    """`import cvlab` stays light, and so does a run that has no trial: Optuna is imported
    only by the driver of a searched or pruned grid and by its runs' first epoch report."""
    code = (
        "import sys, cvlab, cvlab.runs, cvlab.search.trial_link, cvlab.grid.cli\n"
        "print(sorted(m for m in ('optuna', 'sqlalchemy') if m in sys.modules))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]", done.stderr
