"""Searches end to end (`search:` in a grid file, the light notebook): a seeded sampler proposes
the same trials in two fresh output folders; a sampled run the search already has is not run
twice; and a search killed with SIGKILL mid-run resumes with every trial, none lost or run
twice (the study in logs/optuna.db against the run records)."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

import cvlab
from cvlab.grid.cli import main
from cvlab.runs import RunRecord
from cvlab.workspace import Workspace

from conftest import light_spec

RUN_GRID = Path(cvlab.__file__).parents[2] / "run_grid.py"


def _study(out: Path) -> optuna.Study:
    """The one study of the output folder's logs/optuna.db."""
    storage = f"sqlite:///{Workspace.at(out).logs / 'optuna.db'}"
    (summary,) = optuna.get_all_study_summaries(storage)
    return optuna.load_study(study_name=summary.study_name, storage=storage)


def _records(out: Path, grid: str = "g") -> dict[str, RunRecord]:
    grid_dir = Workspace.at(out).experiments / grid
    found = [RunRecord.load(d) for d in grid_dir.iterdir() if (d / "record.json").exists()]
    return {r.run_id: r for r in found}


def _run_trials(study: optuna.Study) -> list[optuna.trial.FrozenTrial]:
    """The trials that are runs (not a proposal of a run the search had, told its result)."""
    return [t for t in study.get_trials() if "run_id" in t.user_attrs]


def _spec(**overrides) -> dict:
    """The light notebook's grid without its `grid:` and `params:` (a search samples them)."""
    spec = light_spec(**overrides)
    for key in ("grid", "params"):
        if key not in overrides:
            del spec[key]
    return spec


def _search(**search) -> dict:
    return _spec(search=search)


def test_a_seeded_search_proposes_the_same_trials_in_two_fresh_folders(
    light_notebook, write_grid, tmp_path
):
    space = {"lr": {"loguniform": [0.01, 1.0]}, "x": {"int": [1, 50]}}
    grid = write_grid(_search(trials=2, sampler="tpe", seed=3, space=space))
    proposed = []
    for folder in ("first", "second"):
        out = tmp_path / folder
        assert main([str(grid), "--out", str(out), "--quiet", "--no-prewarm"]) == 0
        trials = _study(out).get_trials()
        assert [t.state for t in trials] == [TrialState.COMPLETE] * 2
        proposed.append([(t.params, t.user_attrs["run_id"]) for t in trials])
        assert {r.params["lr"] for r in _records(out).values()} == {
            p["lr"] for p, _ in proposed[-1]
        }
    assert proposed[0] == proposed[1]
    assert proposed[0][0][0] != proposed[0][1][0]  # two different trials, not one twice


@pytest.mark.parametrize(
    ("sampler", "space"),
    [("random", {"x": {"int": [1, 2]}}), ("grid", {"x": {"choice": [1, 2]}})],
)
def test_a_search_of_a_small_space_runs_each_point_once(
    light_notebook, write_grid, tmp_path, capsys, sampler, space
):
    """4 trials over 2 points: 2 runs, each once; the search stops there and says why, and
    the next call samples nothing. (The random sampler with seed 0 proposes x=2 four times in a
    row; Optuna's grid sampler stops its study when the grid is walked, which raised.)"""
    grid = write_grid(_search(trials=4, sampler=sampler, seed=0, space=space))
    out = tmp_path / "out"
    args = [str(grid), "--out", str(out), "--quiet", "--no-prewarm"]
    assert main(args) == 0
    assert "2 to sample (the space has 2 points, each run once)" in capsys.readouterr().out
    records = _records(out)
    assert sorted(r.params["x"] for r in records.values()) == [1, 2]
    assert {r.status for r in records.values()} == {"ok"}
    log = (Workspace.at(out).logs / "g" / "grid.log").read_text()
    assert sum(f"[{run_id}]: ok" in line for line in log.splitlines() for run_id in records) == 2
    study = _study(out)
    assert sorted(t.user_attrs["run_id"] for t in _run_trials(study)) == sorted(records)
    assert all(t.state != TrialState.RUNNING for t in study.get_trials())
    for trial in study.get_trials():  # a repeated proposal is told its run's result
        if "duplicate_of" in trial.user_attrs:
            assert trial.value == records[trial.user_attrs["duplicate_of"]].metrics["score"]

    n_trials = len(study.get_trials())
    assert main(args) == 0
    assert "0 to run, 2 already finished" in capsys.readouterr().out
    assert len(_study(out).get_trials()) == n_trials  # nothing more asked of the sampler
    assert {r.started_at for r in _records(out).values()} == {
        r.started_at for r in records.values()
    }


def test_a_search_resumed_later_samples_new_trials_not_the_first_again(
    light_notebook, write_grid, tmp_path
):
    """A seeded sampler built afresh would propose the first trials again: `--max-runs 1`
    then a second call gives three distinct runs in three trials."""
    grid = write_grid(
        _search(trials=3, sampler="random", seed=0, space={"lr": {"loguniform": [0.01, 1.0]}})
    )
    out = tmp_path / "out"
    args = [str(grid), "--out", str(out), "--quiet", "--no-prewarm"]
    assert main([*args, "--max-runs", "1"]) == 0
    (first,) = _records(out).values()
    assert main(args) == 0
    records = _records(out)
    assert len(records) == 3 and records[first.run_id].started_at == first.started_at
    trials = _study(out).get_trials()
    assert len(trials) == len(_run_trials(_study(out))) == 3
    assert len({t.params["lr"] for t in trials}) == 3


def test_a_search_with_two_workers_samples_each_trial_once(light_notebook, write_grid, tmp_path):
    """Two runs at a time: each trial is sampled when a slot frees, told when its run ends."""
    space = {"lr": {"loguniform": [0.01, 1.0]}, "x": {"choice": [1, 2, 3]}}
    grid = write_grid(_search(trials=4, sampler="tpe", seed=0, space=space))
    out = tmp_path / "out"
    args = [str(grid), "--out", str(out), "--quiet", "--no-prewarm", "--workers", "2"]
    assert main(args) == 0
    records = _records(out)
    study = _study(out)
    assert len(records) == 4 and {r.status for r in records.values()} == {"ok"}
    assert sorted(t.user_attrs["run_id"] for t in _run_trials(study)) == sorted(records)
    for trial in _run_trials(study):
        assert trial.state == TrialState.COMPLETE
        assert trial.value == records[trial.user_attrs["run_id"]].metrics["score"]


# ---- a search killed with SIGKILL mid-run ------------------------------------------------------


def _wait_for_a_run_asleep(out: Path, proc: subprocess.Popen, timeout: float = 180) -> None:
    """Until one run has finished and another sleeps after its epochs (the light notebook's
    sleep mode), so that the kill lands mid-run with a result already in the study."""
    deadline = time.monotonic() + timeout
    grid_dir = Workspace.at(out).experiments / "g"
    while time.monotonic() < deadline:
        assert proc.poll() is None, "the search finished before it could be killed"
        records = []
        for run_dir in grid_dir.iterdir() if grid_dir.exists() else []:
            try:
                records.append((run_dir, RunRecord.load(run_dir)))
            except Exception:  # noqa: BLE001 - a record being written: look again
                continue
        finished = [r for _, r in records if r.status in {"ok", "pruned"}]
        asleep = [
            d
            for d, r in records
            if r.status == "running"
            and (d / "history.csv").exists()
            and len((d / "history.csv").read_text().strip().splitlines()) == 3
        ]
        if finished and asleep:
            time.sleep(0.3)
            return
        time.sleep(0.2)
    pytest.fail("no run was asleep mid-search in time")


@pytest.mark.slow
def test_a_search_killed_with_sigkill_resumes_with_no_trial_lost_or_run_twice(
    light_notebook, write_grid, tmp_path
):
    # val_loss = 1.5 / (epoch * x): ranked and pruned on it (lower is better), so runs end ok
    # or pruned; the ones not cut sleep 3 s after their epochs, where the kill lands
    spec = _spec(
        params={"mode": "sleep", "sleep_s": 3.0},
        rank_by={"metric": "val_loss:best", "mode": "min"},
        search={
            "trials": 4,
            "sampler": "random",
            "seed": 0,
            "space": {"x": {"int": [1, 8]}, "lr": {"loguniform": [0.01, 1.0]}},
        },
        prune={"metric": "val_loss", "method": "asha", "reduction_factor": 2},
    )
    grid, out = write_grid(spec), tmp_path / "out"
    cmd = [sys.executable, str(RUN_GRID), str(grid), "--out", str(out), "--quiet", "--no-prewarm"]
    with open(tmp_path / "driver.log", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait_for_a_run_asleep(out, proc)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=30) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
    before = _records(out)
    finished = {k: r for k, r in before.items() if r.status in {"ok", "pruned"}}
    assert finished and len(finished) < len(before) <= 4
    trials_before = _run_trials(_study(out))
    assert len(trials_before) == len(before)  # one trial per run, both in the study

    assert main([str(grid), "--out", str(out), "--quiet", "--no-prewarm"]) == 0

    final = _records(out)
    assert len(final) == 4 and {r.status for r in final.values()} <= {"ok", "pruned"}
    for run_id, old in finished.items():  # a finished run is neither lost nor run again
        assert final[run_id].started_at == old.started_at
        assert final[run_id].status == old.status
    study = _study(out)
    trials = study.get_trials()
    run_trials = _run_trials(study)
    assert len(trials) == len(run_trials) == 4  # none lost, none asked twice
    assert sorted(t.user_attrs["run_id"] for t in run_trials) == sorted(final)
    for trial in run_trials:  # each trial ended as its run did, in the run's own trial
        record = final[trial.user_attrs["run_id"]]
        expected = TrialState.PRUNED if record.status == "pruned" else TrialState.COMPLETE
        assert trial.state == expected, (trial, record.status)
        assert record.trial is not None and record.trial.number == trial.number
    # the trials sampled before the kill kept their numbers and values
    assert {t.number: t.params for t in trials_before} == {
        t.number: t.params for t in run_trials if t.number in {u.number for u in trials_before}
    }
    with sqlite3.connect(Workspace.at(out).leaderboard_db) as conn:
        rows = conn.execute("SELECT run_id FROM runs WHERE grid = 'g'").fetchall()
    assert sorted(r[0] for r in rows) == sorted(final)  # each run once on the leaderboard


def test_raising_trials_goes_on_with_the_same_study(light_notebook, write_grid, tmp_path):
    """A search given more trials samples only the new ones, in the study it had: the first
    trials are neither lost nor run again."""
    space = {"lr": {"loguniform": [0.01, 1.0]}, "x": {"int": [1, 50]}}
    out = tmp_path / "out"
    args = ["--out", str(out), "--quiet", "--no-prewarm"]
    assert (
        main([str(write_grid(_search(trials=2, sampler="tpe", seed=3, space=space))), *args]) == 0
    )
    first = {t.user_attrs["run_id"]: t.number for t in _run_trials(_study(out))}
    assert len(first) == 2
    assert (
        main([str(write_grid(_search(trials=3, sampler="tpe", seed=3, space=space))), *args]) == 0
    )
    trials = _run_trials(_study(out))  # one study still: _study asserts there is only one
    assert len(trials) == 3 and {t.user_attrs["run_id"]: t.number for t in trials[:2]} == first
    assert len(_records(out)) == 3
