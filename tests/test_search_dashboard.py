"""optuna-dashboard opens a searched grid's study as the README says
(`optuna-dashboard sqlite:///logs/optuna.db`): the study, its trials, their values and params."""

from __future__ import annotations

import json
from wsgiref.util import setup_testing_defaults

import pytest

from conftest import light_spec

optuna_dashboard = pytest.importorskip("optuna_dashboard")


def _get(app, path: str) -> dict:
    path, _, query = path.partition("?")
    environ: dict = {"PATH_INFO": path, "QUERY_STRING": query, "REQUEST_METHOD": "GET"}
    setup_testing_defaults(environ)
    status: list[str] = []
    body = b"".join(app(environ, lambda s, headers, exc_info=None: status.append(s)))
    assert status[0].startswith("200"), (path, status, body[:300])
    return json.loads(body)


def test_the_dashboard_shows_the_searched_grid(light_notebook, write_grid, run_cli):
    spec = light_spec(
        name="searched",
        params={},
        grid={},
        search={"trials": 3, "sampler": "random", "seed": 1, "space": {"x": {"int": [1, 4]}, "lr": {"loguniform": [0.01, 1.0]}}},
    )  # fmt: skip
    code, out, _ = run_cli(write_grid(spec), "--no-prewarm")
    assert code == 0, out
    db = run_cli.out / "logs" / "optuna.db"
    app = optuna_dashboard.wsgi(f"sqlite:///{db}")
    studies = _get(app, "/api/studies")["study_summaries"]
    assert [s["study_name"].split(".")[0] for s in studies] == ["searched"]
    assert studies[0]["directions"] == ["maximize"]  # rank_by: score, max
    detail = _get(app, f"/api/studies/{studies[0]['study_id']}?after=0")
    trials = detail["trials"]
    assert len(trials) == 3 and {t["state"] for t in trials} == {"Complete"}
    # the told value is the run's rank metric: score = x * lr (seed 0) in the light notebook
    for trial in trials:
        params = {p["name"]: float(p["param_external_value"]) for p in trial["params"]}
        assert trial["values"][0] == pytest.approx(params["x"] * params["lr"])
