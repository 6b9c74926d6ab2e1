"""The grid runner end to end on a light notebook: statuses, resume, options, leaderboard, page."""

from __future__ import annotations

import json
import re
import sqlite3
import time
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlparse

import pandas as pd
import pytest

import cvlab
from cvlab.runs import RunRecord
from cvlab.workspace import Workspace

from conftest import light_spec


def records(out: Path, grid: str = "g") -> dict[str, RunRecord]:
    return {r.name: r for r in (RunRecord.load(d) for d in (out / "experiments" / grid).iterdir())}


def test_failed_run_is_recorded_and_grid_goes_on(light_notebook, write_grid, run_cli):
    path = write_grid(light_spec(grid={"mode": ["fail", "ok"]}))
    code, out, err = run_cli(path)
    assert code == 1  # a run failed
    recs = records(run_cli.out)
    failed, ok = recs["mode=fail"], recs["mode=ok"]
    assert failed.status == "failed" and ok.status == "ok"
    assert failed.error.type == "ValueError" and "bad value x=1" in failed.error.message
    assert 'raise ValueError(f"bad value x={x}")' in failed.error.traceback
    run_dir = Workspace.at(run_cli.out).run_dir("g", failed.run_id)
    assert (run_dir / "run.ipynb").exists() and (run_dir / "run.html").exists()
    html = (run_dir / "run.html").read_text()
    assert "ValueError" in html
    assert not re.findall(r'<script[^>]+src="https?://', html)  # opens offline: nothing from a CDN
    assert ok.metrics == {"score": 0.5}
    assert "1 failed, 1 ok" in out


def test_resume_skips_finished_and_retries_failed(light_notebook, write_grid, run_cli):
    path = write_grid(light_spec(grid={"x": [1, 2], "mode": ["ok", "fail"]}))
    run_cli(path)
    first = records(run_cli.out)
    code, out, _ = run_cli(path, "--dry-run")
    assert code == 0
    actions = [line.split()[-1] for line in out.splitlines()[2:]]
    assert sorted(actions) == ["run", "run", "skip", "skip"] and "failed" in out
    run_cli(path)
    second = records(run_cli.out)
    for name in ("x=1,mode=ok", "x=2,mode=ok"):
        assert second[name].started_at == first[name].started_at  # not executed again
    for name in ("x=1,mode=fail", "x=2,mode=fail"):
        assert second[name].started_at > first[name].started_at  # retried
    run_cli(path, "--force")
    third = records(run_cli.out)
    assert all(third[n].started_at > second[n].started_at for n in third)


def test_dry_run_runs_nothing(light_notebook, write_grid, run_cli):
    code, out, _ = run_cli(write_grid(light_spec(grid={"x": [1, 2, 3]})), "--dry-run")
    assert code == 0
    assert "3 runs, 3 to run" in out and "x=3" in out and " new " in out
    assert not (run_cli.out / "experiments").exists()


def test_bad_spec_exits_2_and_runs_nothing(light_notebook, write_grid, run_cli):
    code, _, err = run_cli(write_grid(light_spec(grid={"x": [1], "nope": [1]}, colour=1)))
    assert code == 2
    assert "grid.nope" in err and "colour" in err and "Fix:" in err and "g.yaml" in err
    assert not (run_cli.out / "experiments").exists() and not (run_cli.out / "logs").exists()


def test_only_and_max_runs(light_notebook, write_grid, run_cli):
    path = write_grid(light_spec(grid={"x": [1, 2, 3]}))
    code, _, err = run_cli(path, "--only", "x=2")
    assert code == 0 and set(records(run_cli.out)) == {"x=2"}
    run_cli(path, "--max-runs", "1")
    assert set(records(run_cli.out)) == {"x=2", "x=1"}
    code, _, err = run_cli(path, "--only", "depth=2")
    assert code == 2 and "no run has parameter 'depth'" in err


def test_timeout_interrupts_the_run(light_notebook, write_grid, run_cli):
    path = write_grid(light_spec(grid={}, params={"mode": "sleep", "sleep_s": 120.0}))
    start = time.monotonic()
    code, _, _ = run_cli(path, "--timeout", "4")
    assert time.monotonic() - start < 60
    assert code == 1
    rec = records(run_cli.out)["default"]
    assert rec.status == "timeout" and "4 s timeout" in rec.error.message
    assert rec.epochs_completed == 2  # what ran before the limit is kept
    run_dir = Workspace.at(run_cli.out).run_dir("g", rec.run_id)
    assert (run_dir / "run.html").exists() and (run_dir / "history.csv").exists()


def test_nan_loss_becomes_diverged(light_notebook, write_grid, run_cli):
    code, _, _ = run_cli(write_grid(light_spec(grid={"mode": ["nan", "ok"]})))
    assert code == 0  # diverged is a result, not an error
    recs = records(run_cli.out)
    assert recs["mode=nan"].status == "diverged" and recs["mode=ok"].status == "ok"


def test_failure_the_notebook_records_itself_is_kept(light_notebook, write_grid, run_cli):
    code, _, _ = run_cli(write_grid(light_spec(grid={}, params={"mode": "caught"})))
    assert code == 1
    rec = records(run_cli.out)["default"]
    assert rec.status == "failed" and rec.error.type == "KeyError"


def test_seeds_reach_the_notebook(light_notebook, write_grid, run_cli):
    run_cli(write_grid(light_spec(grid={}, seeds=[3, 4])))
    recs = records(run_cli.out)
    assert {n: (r.seed, r.metrics["score"]) for n, r in recs.items()} == {
        "seed=3": (3, 0.5 + 0.003),
        "seed=4": (4, 0.5 + 0.004),
    }


def test_leaderboard_rows_match_runs(light_notebook, write_grid, run_cli):
    run_cli(write_grid(light_spec(grid={"x": [1, 2], "mode": ["ok", "fail"]})))
    run_cli(write_grid(light_spec(grid={"x": [3]}, name="second"), name="h.yaml"))
    ws = Workspace.at(run_cli.out)
    with sqlite3.connect(ws.leaderboard_db) as conn:
        rows = conn.execute("SELECT grid, run_id, status, rank_value, params FROM runs").fetchall()
    on_disk = {}
    for grid_dir in ws.experiments.iterdir():
        if grid_dir.is_dir():
            for d in grid_dir.iterdir():
                rec = RunRecord.load(d)
                on_disk[(rec.grid, rec.run_id)] = rec
    assert {(g, r) for g, r, *_ in rows} == set(on_disk)
    for grid, run_id, status, rank_value, params in rows:
        rec = on_disk[(grid, run_id)]
        assert status == rec.status and json.loads(params) == rec.params
        assert rank_value == rec.metrics.get("score")
    csv = pd.read_csv(ws.leaderboard_csv)
    assert len(csv) == 5 and {"params.x", "params.mode", "metrics.score", "status"} <= set(
        csv.columns
    )
    assert set(csv["grid"]) == {"g", "second"}


class _Links(HTMLParser):
    def __init__(self):
        super().__init__()
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("href", "src") and value:
                self.links.append(value)


def test_every_link_in_the_page_exists(light_notebook, write_grid, run_cli):
    run_cli(write_grid(light_spec(grid={"x": [1, 2], "mode": ["ok", "fail"]})))
    page = Workspace.at(run_cli.out).leaderboard_page
    text = page.read_text()
    parser = _Links()
    parser.feed(text)
    local = [
        link for link in parser.links if not urlparse(link).scheme and not link.startswith("#")
    ]
    assert len(local) >= 4 * 3  # notebook, ipynb and curves for each run, plus figures
    for link in local:
        assert (page.parent / unquote(link)).resolve().exists(), link
    assert "★ best" in text and "ValueError" in text and "x=2,mode=ok" in text
    # nothing is fetched from the network: the table's JavaScript is inlined
    assert not [link for link in parser.links if link.startswith(("http:", "https:"))]
    # the page's script is inlined; the one file it loads is its live data, beside it
    assert re.findall(r"<script src=([^>]*)>", text) == ['"live.js"']


def test_leaderboard_mode_only_rebuilds(light_notebook, write_grid, run_cli):
    run_cli(write_grid(light_spec()))
    ws = Workspace.at(run_cli.out)
    ws.leaderboard_page.unlink()
    before = {p: p.stat().st_mtime_ns for p in ws.experiments.rglob("record.json")}
    code, out, _ = run_cli("--leaderboard")
    assert code == 0 and ws.leaderboard_page.exists() and "Leaderboard:" in out
    assert before == {p: p.stat().st_mtime_ns for p in ws.experiments.rglob("record.json")}


def test_grid_figures_are_drawn(light_notebook, write_grid, run_cli):
    run_cli(write_grid(light_spec(grid={"x": [1, 2]})))
    figs = Workspace.at(run_cli.out).figs / "g"
    names = {p.name for p in figs.iterdir()}
    assert {"rank_vs_params.png", "validation_curves.png"} <= names
    assert len([n for n in names if n.endswith("-curves.png")]) == 2


def test_two_workers(light_notebook, write_grid, run_cli):
    code, _, _ = run_cli(write_grid(light_spec(grid={"x": [1, 2, 3]})), "--workers", "2")
    assert code == 0
    assert {n: r.status for n, r in records(run_cli.out).items()} == {
        "x=1": "ok",
        "x=2": "ok",
        "x=3": "ok",
    }


def test_run_notebook_api(light_notebook, tmp_path):
    record = cvlab.run_notebook(
        light_notebook, {"x": 4, "lr": 0.25}, tmp_path / "api", rank_by="score"
    )
    assert record.status == "ok" and record.metrics["score"] == 1.0
    ws = Workspace.at(tmp_path / "api")
    assert (ws.run_dir("light", record.run_id) / "run.html").exists()
    assert ws.leaderboard_page.exists()
    with pytest.raises(cvlab.errors.GridSpecError, match="not defined"):
        cvlab.run_notebook(light_notebook, {"depth": 4}, tmp_path / "api")


def test_interrupted_grid_resumes(light_notebook, write_grid, tmp_path):
    """Ctrl-C in the middle of a grid keeps finished runs; the next call runs only the rest."""
    import signal
    import subprocess
    import sys

    path = write_grid(light_spec(grid={"x": [1, 2, 3]}, params={"mode": "sleep", "sleep_s": 4.0}))
    out = tmp_path / "out"
    cmd = [
        sys.executable,
        str(Path(cvlab.__file__).parents[2] / "run_grid.py"),
        str(path),
        "--out",
        str(out),
        "--quiet",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    first_dir = None
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and first_dir is None:  # wait until the first run is ok
        time.sleep(0.5)
        for rec_path in (out / "experiments" / "g").glob("*/record.json"):
            if RunRecord.load(rec_path.parent).status == "ok":
                first_dir = rec_path.parent
    assert first_dir is not None
    time.sleep(1.5)  # the second run is now executing
    proc.send_signal(signal.SIGINT)
    assert proc.wait(timeout=60) == 130
    statuses = sorted(r.status for r in records(out).values())
    assert statuses == ["interrupted", "ok"]
    finished = RunRecord.load(first_dir)
    from cvlab.grid.cli import main

    assert main([str(path), "--out", str(out), "--quiet"]) == 0
    final = records(out)
    assert {r.status for r in final.values()} == {"ok"} and len(final) == 3
    assert final[finished.name].started_at == finished.started_at  # not run again


def test_deleted_record_is_rebuilt_and_grid_goes_on(light_notebook, write_grid, run_cli):
    code, _, _ = run_cli(write_grid(light_spec(grid={"mode": ["delrec", "ok"]})))
    assert code == 0
    recs = records(run_cli.out)
    assert recs["mode=delrec"].status == "ok" and recs["mode=ok"].status == "ok"
    assert any("rebuilt" in note for note in recs["mode=delrec"].notes)


def test_divergence_explains_a_later_error(light_notebook, write_grid, run_cli):
    run_cli(write_grid(light_spec(grid={}, params={"mode": "divfail"})))
    rec = records(run_cli.out)["default"]
    assert rec.status == "diverged" and rec.error.type == "FloatingPointError"


def test_timeout_kills_a_kernel_that_ignores_the_interrupt(
    light_notebook, write_grid, run_cli, monkeypatch
):
    monkeypatch.setattr("cvlab.grid.execute.INTERRUPT_GRACE_S", 2.0)
    path = write_grid(light_spec(grid={}, params={"mode": "stubborn", "sleep_s": 120.0}))
    start = time.monotonic()
    code, _, _ = run_cli(path, "--timeout", "3")
    assert time.monotonic() - start < 60 and code == 1
    rec = records(run_cli.out)["default"]
    assert rec.status == "timeout" and rec.epochs_completed == 2
    assert (Workspace.at(run_cli.out).run_dir("g", rec.run_id) / "run.html").exists()


def test_workers_record_failures_too(light_notebook, write_grid, run_cli):
    code, _, _ = run_cli(
        write_grid(light_spec(grid={"mode": ["ok", "fail", "nan"]})), "--workers", "2"
    )
    assert code == 1
    assert {n: r.status for n, r in records(run_cli.out).items()} == {
        "mode=ok": "ok",
        "mode=fail": "failed",
        "mode=nan": "diverged",
    }


def test_metric_text_is_escaped_in_the_page(light_notebook, write_grid, run_cli):
    run_cli(write_grid(light_spec(grid={}, params={"mode": "html"})))
    text = Workspace.at(run_cli.out).leaderboard_page.read_text()
    assert "<img src=x" not in text and "&lt;img src=x" in text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--timeout", "0"], "--timeout must be a positive number"),
        (["--only", "x=7"], "no run matches; the grid has x: 1, 2"),
    ],
)
def test_bad_options_exit_2(light_notebook, write_grid, run_cli, args, message):
    path = write_grid(light_spec())
    if args[0] == "--timeout":
        with pytest.raises(SystemExit) as info:
            run_cli(path, *args)
        assert info.value.code == 2
    else:
        code, _, err = run_cli(path, *args)
        assert code == 2 and message in err
    assert not (run_cli.out / "experiments").exists()


def test_outputs_are_readable_by_others(light_notebook, write_grid, run_cli):
    run_cli(write_grid(light_spec(grid={})))
    ws = Workspace.at(run_cli.out)
    for path in [ws.leaderboard_page, ws.leaderboard_csv, *ws.experiments.rglob("record.json")]:
        assert path.stat().st_mode & 0o044 == 0o044, path


def test_rerun_keeps_history_when_a_backup_will_resume(tmp_path):
    from cvlab.grid.execute import _reset_run_dir

    for with_backup in (True, False):
        run_dir = tmp_path / str(with_backup)
        run_dir.mkdir()
        (run_dir / "history.csv").write_text("epoch,loss\n1,0.5\n")
        if with_backup:
            (run_dir / "backup").mkdir()
        _reset_run_dir(run_dir)
        assert (run_dir / "history.csv").exists() is with_backup
