"""`cvlab export mlflow`: the leaderboard's runs into an MLflow tracking store, one MLflow run per
cvlab run (found again by its `cvlab.run_id` tag, so a second export updates it instead of adding
a copy): parameters, per-epoch metrics as steps, final metrics, tags and the run's files.

Driver side: it reads the store (`logs/leaderboard.db`) and the run folders, never a kernel.
MLflow is the optional extra `[mlflow]`, imported only here.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cvlab.errors import MlflowExportError
from cvlab.report.interactive_runs import INTERACTIVE, interactive_records
from cvlab.report.store import LeaderboardStore
from cvlab.runs.record import HISTORY_FILE, RunRecord
from cvlab.runs.run import read_history
from cvlab.workspace import Workspace

INSTALL_FIX = "install it with: pip install -e '.[mlflow]' (or: make setup MLFLOW=1)"
RUN_ID_TAG = "cvlab.run_id"
# MLflow's statuses for cvlab's: a pruned run ended on purpose (its tag says `pruned`); an
# interrupted one was stopped and resumes at the next call.
MLFLOW_STATUS = {
    "ok": "FINISHED",
    "pruned": "FINISHED",
    "diverged": "FAILED",
    "failed": "FAILED",
    "timeout": "FAILED",
    "interrupted": "KILLED",
    "running": "RUNNING",
    "pending": "SCHEDULED",
}
# The files of a run folder sent as artifacts, by their key in `record.artifacts` (plus the
# record itself); anything else the run saved (figures, images) goes too.
_FIXED_FILES = ("record.json", "run.html", HISTORY_FILE, "curves.png")
_BAD_KEY = re.compile(r"[^/\w.\- :]")  # MLflow's allowed characters in metric and param names
_BATCH = 100  # MLflow's limit on params and tags per log_batch (metrics: 1,000)
_PARAM_LIMIT, _TAG_LIMIT = 6000, 8000  # MLflow's value lengths


@dataclass
class ExportSummary:
    """What one export did: MLflow run ids by cvlab run key (`grid/run_id`), and counts."""

    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    metric_points: int = 0
    artifacts: int = 0
    mlflow_runs: dict[str, str] = field(default_factory=dict)


def _mlflow():
    try:
        import mlflow  # lazy: slow import, and an optional extra
        from mlflow.tracking import MlflowClient
    except ImportError as exc:
        raise MlflowExportError(f"MLflow is not installed ({exc}); {INSTALL_FIX}") from exc
    return mlflow, MlflowClient


def _key(name: str) -> str:
    return _BAD_KEY.sub("_", str(name))


def _ms(when) -> int | None:
    return int(when.timestamp() * 1000) if when is not None else None


def _tags(record: RunRecord) -> dict[str, str]:
    env = record.environment
    tags = {
        RUN_ID_TAG: record.run_id,
        "cvlab.grid": record.grid,
        "cvlab.status": record.status,
        "cvlab.notebook": record.notebook or "",
        "cvlab.backend": str(env.get("backend") or ""),
        "cvlab.device": str(env.get("device") or ""),
        "cvlab.precision": str(env.get("precision") or ""),
        "cvlab.epochs_completed": str(record.epochs_completed),
        "mlflow.runName": record.name or record.run_id,
        "mlflow.source.git.commit": str(env.get("git_commit") or ""),
    }
    if record.error is not None:
        tags["cvlab.error"] = f"{record.error.type}: {record.error.message}"
    if record.pruned_at_epoch is not None:
        tags["cvlab.pruned_at_epoch"] = str(record.pruned_at_epoch)
    return {k: v[:_TAG_LIMIT] for k, v in tags.items() if v != ""}


def _numbers(values: dict[str, Any]) -> dict[str, float]:
    out = {}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        out[_key(name)] = float(value)
    return out


class MlflowExporter:
    """Sends cvlab runs to one tracking store; `export` is safe to repeat (it updates)."""

    def __init__(self, tracking_uri: str, artifact_root: str | Path | None = None):
        self._mlflow, client_class = _mlflow()
        from mlflow.exceptions import MlflowException

        self._error = MlflowException
        self.tracking_uri = tracking_uri
        self.artifact_root = artifact_root or _default_artifact_root(tracking_uri)
        try:
            self.client = client_class(tracking_uri=tracking_uri)
            self.client.search_experiments(max_results=1)  # reach the store now, not per run
        except Exception as exc:  # noqa: BLE001 - MLflow raises many kinds for a bad URI
            raise MlflowExportError(
                f"--tracking-uri {tracking_uri}: cannot open the MLflow tracking store "
                f"({type(exc).__name__}: {exc}); give e.g. sqlite:///mlflow.db or the URL of "
                "an MLflow server (http://host:5000)"
            ) from exc
        self._experiments: dict[str, str] = {}

    def experiment_id(self, grid: str) -> str:
        """The MLflow experiment of a grid (named after it), created on first use."""
        if grid not in self._experiments:
            found = self.client.get_experiment_by_name(grid)
            if found is not None:
                self._experiments[grid] = found.experiment_id
            else:
                location = (
                    Path(self.artifact_root, grid).resolve().as_uri()
                    if self.artifact_root is not None
                    else None
                )
                self._experiments[grid] = self.client.create_experiment(
                    grid, artifact_location=location, tags={"cvlab.grid": grid}
                )
        return self._experiments[grid]

    def find_run(self, experiment_id: str, run_id: str):
        runs = self.client.search_runs(
            [experiment_id], filter_string=f"tags.`{RUN_ID_TAG}` = '{run_id}'", max_results=2
        )
        return runs[0] if runs else None

    def export(self, record: RunRecord, run_dir: Path, summary: ExportSummary) -> str:
        """Create or update the MLflow run of `record`; returns its MLflow run id."""
        from mlflow.entities import Metric, Param, RunTag

        experiment = self.experiment_id(record.grid)
        existing = self.find_run(experiment, record.run_id)
        key = f"{record.grid}/{record.run_id}"
        if existing is None:
            run = self.client.create_run(
                experiment,
                start_time=_ms(record.started_at),
                tags={RUN_ID_TAG: record.run_id},
                run_name=record.name or record.run_id,
            )
            mlflow_id, logged_params = run.info.run_id, {}
            summary.created.append(key)
        else:
            mlflow_id, logged_params = existing.info.run_id, dict(existing.data.params)
            summary.updated.append(key)

        # Parameters are write-once in MLflow: the new ones are logged; one whose value changed
        # (a notebook that logs a derived parameter differently after a resume) goes in a tag.
        params, tags = [], _tags(record)
        for name, value in sorted(record.params.items()):
            text = str(value)[:_PARAM_LIMIT]
            if _key(name) not in logged_params:
                params.append(Param(_key(name), text))
            elif logged_params[_key(name)] != text:
                tags[f"cvlab.param.{_key(name)}"] = text[:_TAG_LIMIT]
        seed = record.seed
        if seed is not None and "seed" not in record.params and "seed" not in logged_params:
            params.append(Param("seed", str(seed)))

        metrics = self._new_metric_points(mlflow_id, record, run_dir)
        tag_list = [RunTag(k, v) for k, v in tags.items()]
        for start in range(0, max(len(params), len(tag_list), 1), _BATCH):
            self.client.log_batch(
                mlflow_id,
                params=params[start : start + _BATCH],
                tags=tag_list[start : start + _BATCH],
            )
        for start in range(0, len(metrics), 1000):
            batch = [Metric(k, v, t, s) for k, v, t, s in metrics[start : start + 1000]]
            self.client.log_batch(mlflow_id, metrics=batch)
        summary.metric_points += len(metrics)
        summary.artifacts += self._log_files(mlflow_id, record, run_dir)

        status = MLFLOW_STATUS.get(record.status, "RUNNING")
        if status in ("FINISHED", "FAILED", "KILLED"):
            self.client.set_terminated(mlflow_id, status, end_time=_ms(record.ended_at))
        else:
            self.client.update_run(mlflow_id, status=status)
        summary.mlflow_runs[key] = mlflow_id
        return mlflow_id

    def _new_metric_points(
        self, mlflow_id: str, record: RunRecord, run_dir: Path
    ) -> list[tuple[str, float, int, int]]:
        """(key, value, timestamp ms, step) of the history rows and final metrics the MLflow run
        does not hold yet: a step already there is not logged again."""
        history = read_history(run_dir / HISTORY_FILE)
        started = _ms(record.started_at) or 0
        ended = _ms(record.ended_at) or started
        wanted: dict[str, list[tuple[float, int, int]]] = {}
        for row in history:
            step = int(row["epoch"])
            # history.csv keeps no wall time per epoch: the timestamps only order the points
            # (MLflow plots by step); points are matched by (step, value), not by time.
            for name, value in row.items():
                if name != "epoch" and math.isfinite(value):
                    wanted.setdefault(_key(name), []).append((value, started + step, step))
        # Final metrics at the last epoch's step (0 for a run that logged no epochs).
        final_step = record.epochs_completed
        for name, value in _numbers(record.metrics).items():
            if math.isfinite(value):
                wanted.setdefault(name, []).append((value, ended, final_step))
        points = []
        for name, series in wanted.items():
            have = {(m.step, m.value) for m in self.client.get_metric_history(mlflow_id, name)}
            points += [(name, v, t, s) for v, t, s in series if (s, v) not in have]
        return points

    def _log_files(self, mlflow_id: str, record: RunRecord, run_dir: Path) -> int:
        files = {name for name in _FIXED_FILES if (run_dir / name).is_file()}
        files.update(rel for rel in record.artifacts.values() if (run_dir / rel).exists())
        for rel in sorted(files):
            if (run_dir / rel).is_dir():  # e.g. the TensorBoard event files
                self.client.log_artifacts(mlflow_id, str(run_dir / rel), artifact_path=rel)
                continue
            folder = str(Path(rel).parent) if Path(rel).parent != Path(".") else None
            self.client.log_artifact(mlflow_id, str(run_dir / rel), artifact_path=folder)
        return len(files)


def _default_artifact_root(tracking_uri: str) -> Path | None:
    """A SQLite or file store's artifacts beside it (`<its folder>/mlartifacts`); a server
    chooses its own."""
    if tracking_uri.startswith("sqlite:///"):
        return Path(tracking_uri.removeprefix("sqlite:///")).parent / "mlartifacts"
    if tracking_uri.startswith("file://") or "://" not in tracking_uri:
        return None  # MLflow's file store keeps artifacts in it
    return None


def runs_to_export(ws: Workspace, grids: Iterable[str] = ()) -> list[RunRecord]:
    """The runs of `grids` (every grid, and the interactive runs, when empty) from the store."""
    grids = list(grids)
    if not ws.leaderboard_db.is_file() and not (ws.experiments / INTERACTIVE).is_dir():
        raise MlflowExportError(
            f"{ws.leaderboard_db}: no leaderboard here; run a grid first, or give the folder "
            "it wrote to with --out"
        )
    store = LeaderboardStore(ws.leaderboard_db)
    records = [r for r in store.records() if r.grid != INTERACTIVE]
    records += interactive_records(ws)
    known = sorted({r.grid for r in records})
    unknown = [g for g in grids if g not in known]
    if unknown:
        raise MlflowExportError(
            f"no runs of grid {', '.join(map(repr, unknown))} in {ws.leaderboard_db}; "
            f"grids there: {', '.join(known) or 'none'}"
        )
    return [r for r in records if not grids or r.grid in grids]


def export_to_mlflow(
    ws: Workspace,
    tracking_uri: str,
    grids: Iterable[str] = (),
    *,
    artifact_root: str | Path | None = None,
) -> ExportSummary:
    """Export the runs of `grids` (all when empty) to the MLflow store at `tracking_uri`."""
    records = runs_to_export(ws, grids)
    exporter = MlflowExporter(tracking_uri, artifact_root)
    summary = ExportSummary()
    for record in records:
        exporter.export(record, ws.run_dir(record.grid, record.run_id), summary)
    return summary
