"""The leaderboard store: one SQLite file, written only by the driver, one transaction a run."""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd

from cvlab.atomic_io import write_atomic
from cvlab.runs.epoch_metrics import EpochSummary, flat_summary, resolve_metric
from cvlab.runs.record import RunRecord

_SCHEMA = """
CREATE TABLE IF NOT EXISTS grids (
    grid        TEXT PRIMARY KEY,
    notebook    TEXT,
    spec_path   TEXT,
    rank_metric TEXT,
    rank_mode   TEXT,
    description TEXT,
    code_digest TEXT
);
CREATE TABLE IF NOT EXISTS runs (
    grid        TEXT NOT NULL,
    run_id      TEXT NOT NULL,
    name        TEXT,
    notebook    TEXT,
    status      TEXT,
    seed        INTEGER,
    rank_value  REAL,
    params      TEXT,
    metrics     TEXT,
    error_type  TEXT,
    error_message TEXT,
    error_traceback TEXT,
    epochs      INTEGER,
    started_at  TEXT,
    ended_at    TEXT,
    duration_s  REAL,
    record      TEXT,
    pruned_at_epoch INTEGER,
    rung        INTEGER,
    PRIMARY KEY (grid, run_id)
);
"""

# The fixed columns of `LeaderboardStore.frame()`, before one column per parameter and metric.
BASE_COLUMNS = [
    "grid", "run_id", "name", "notebook", "status", "seed", "rank_metric", "rank_mode",
    "rank_value", "error_type", "error_message", "error_traceback", "epochs",
    "started_at", "ended_at", "duration_s", "code_digest", "stale", "synthetic",
    "pruned_at_epoch", "rung",
]  # fmt: skip
# Columns added to a table after stores existed: added to an older store when it is opened
# (a pruned run's epoch and rung are also in its stored record, from which they are filled in).
_ADDED_COLUMNS = {
    "grids": {"code_digest": "TEXT"},
    "runs": {"pruned_at_epoch": "INTEGER", "rung": "INTEGER"},
}
_RUN_COLUMNS = (
    "grid", "run_id", "name", "notebook", "status", "seed", "rank_value", "params", "metrics",
    "error_type", "error_message", "error_traceback", "epochs", "started_at", "ended_at",
    "duration_s", "record", "pruned_at_epoch", "rung",
)  # fmt: skip


def _finite_or_none(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _epoch_metrics(record_json: str | None) -> dict[str, EpochSummary]:
    """The per-epoch summaries of a stored record (none in records written before they existed)."""
    if not record_json:
        return {}
    raw = json.loads(record_json).get("epoch_metrics") or {}
    return {name: EpochSummary.model_validate(value) for name, value in raw.items()}


def only_grids(frame: pd.DataFrame, grids: Iterable[str]) -> pd.DataFrame:
    """The rows of `grids`, without the parameter and metric columns only other grids have."""
    part = frame[frame["grid"].isin(list(grids))].reset_index(drop=True)
    keep = [c for c in part.columns if c in BASE_COLUMNS or part[c].notna().any()]
    return part[keep]


def _stale_flags(runs: pd.DataFrame) -> list[bool]:
    """A run is stale when its code digest is known and is not its grid's current one: the
    digest the grid was last registered with, else the digest of the grid's latest run."""
    current: dict[str, str | None] = {}
    for grid, group in runs.groupby("grid", sort=False):
        registered = group["current_digest"].iloc[0]
        if isinstance(registered, str) and registered:
            current[grid] = registered
            continue
        known = group[group["code_digest"].notna()].sort_values("started_at", na_position="first")
        current[grid] = known["code_digest"].iloc[-1] if len(known) else None
    return [
        isinstance(digest, str) and current.get(grid) is not None and digest != current[grid]
        for grid, digest in zip(runs["grid"], runs["code_digest"], strict=True)
    ]


class LeaderboardStore:
    """Runs of every grid in `logs/leaderboard.db`; `frame()` flattens them for the page and CSV."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as conn:
            conn.executescript(_SCHEMA)
            for table, columns in _ADDED_COLUMNS.items():
                have = {row[1] for row in conn.execute(f"PRAGMA table_info({table})")}
                for name, kind in columns.items():
                    if name not in have:
                        conn.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
                        if table == "runs":
                            self._fill_from_records(conn, name)

    @staticmethod
    def _fill_from_records(conn: sqlite3.Connection, column: str) -> None:
        """A column added to an older store: its value from each stored record's field."""
        conn.execute(
            f"UPDATE runs SET {column} = json_extract(record, '$.{column}') "
            "WHERE record IS NOT NULL AND json_valid(record)"
        )

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        """One transaction: committed on success, rolled back on error, connection closed."""
        conn = sqlite3.connect(self.path, timeout=30)
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            with conn:
                yield conn
        finally:
            conn.close()

    def register_grid(
        self,
        grid: str,
        *,
        notebook: str,
        spec_path: str,
        rank_metric: str,
        rank_mode: str,
        description: str = "",
        code_digest: str | None = None,
    ) -> None:
        """Add or update a grid; `code_digest` is its notebook's code now (the grid's runs with
        another digest are stale), kept from an earlier call when None."""
        with self._connect() as conn:
            conn.execute(
                "INSERT INTO grids (grid, notebook, spec_path, rank_metric, rank_mode, "
                "description, code_digest) VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(grid) DO UPDATE SET "
                "notebook=excluded.notebook, spec_path=excluded.spec_path, "
                "rank_metric=excluded.rank_metric, rank_mode=excluded.rank_mode, "
                "description=excluded.description, "
                "code_digest=COALESCE(excluded.code_digest, grids.code_digest)",
                (grid, notebook, spec_path, rank_metric, rank_mode, description, code_digest),
            )

    def grids(self) -> dict[str, dict[str, Any]]:
        with self._connect() as conn:
            conn.row_factory = sqlite3.Row
            return {row["grid"]: dict(row) for row in conn.execute("SELECT * FROM grids")}

    def upsert(self, records: Iterable[RunRecord]) -> None:
        """Insert or replace runs, all in one transaction."""
        grids = self.grids()
        rows = []
        for rec in records:
            grid = grids.get(rec.grid, {})
            metric = grid.get("rank_metric")
            rank_value = (
                _finite_or_none(
                    resolve_metric(metric, rec.metrics, rec.epoch_metrics, grid.get("rank_mode"))
                )
                if metric
                else None
            )
            rows.append(
                (
                    rec.grid, rec.run_id, rec.name, rec.notebook, rec.status, rec.seed, rank_value,
                    json.dumps(rec.params, default=str), json.dumps(rec.metrics, default=str),
                    rec.error.type if rec.error else None,
                    rec.error.message if rec.error else None,
                    rec.error.traceback if rec.error else None,
                    rec.epochs_completed,
                    rec.started_at.isoformat() if rec.started_at else None,
                    rec.ended_at.isoformat() if rec.ended_at else None,
                    rec.duration_s, rec.model_dump_json(), rec.pruned_at_epoch, rec.rung,
                )
            )  # fmt: skip
        with self._connect() as conn:
            conn.executemany(
                f"INSERT OR REPLACE INTO runs ({', '.join(_RUN_COLUMNS)}) "
                f"VALUES ({', '.join('?' * len(_RUN_COLUMNS))})",
                rows,
            )

    def records(self, grid: str | None = None) -> list[RunRecord]:
        query, args = "SELECT record FROM runs", ()
        if grid is not None:
            query, args = query + " WHERE grid = ?", (grid,)
        with self._connect() as conn:
            return [RunRecord.model_validate_json(r[0]) for r in conn.execute(query, args)]

    def frame(self) -> pd.DataFrame:
        """One row per run: the fixed columns, then `params.<name>` and `metrics.<name>` columns."""
        with self._connect() as conn:
            runs = pd.read_sql_query("SELECT * FROM runs ORDER BY grid, started_at", conn)
            grids = pd.read_sql_query(
                "SELECT grid, rank_metric, rank_mode, code_digest AS current_digest FROM grids",
                conn,
            )
        if runs.empty:
            return pd.DataFrame(columns=BASE_COLUMNS)
        runs = runs.merge(grids, on="grid", how="left")
        summaries = [_epoch_metrics(record) for record in runs["record"]]
        stored = [json.loads(record) if record else {} for record in runs["record"]]
        runs["code_digest"] = [r.get("code_digest") for r in stored]
        runs["synthetic"] = [bool(r.get("synthetic")) for r in stored]
        runs["stale"] = _stale_flags(runs)
        # Recomputed here so that a grid whose rank_by changed ranks its old runs by the new metric.
        runs["rank_value"] = [
            _finite_or_none(resolve_metric(metric, json.loads(m), summary, mode))
            if isinstance(metric, str)
            else None
            for m, summary, metric, mode in zip(
                runs["metrics"], summaries, runs["rank_metric"], runs["rank_mode"], strict=True
            )
        ]
        params = pd.json_normalize([json.loads(p) for p in runs["params"]], max_level=0)
        # Final metrics, then `<metric>:best`, `:best_epoch` and `:last` of each per-epoch metric.
        metrics = pd.json_normalize(
            [
                {**json.loads(m), **flat_summary(summary)}
                for m, summary in zip(runs["metrics"], summaries, strict=True)
            ],
            max_level=0,
        )
        params.columns = [f"params.{c}" for c in params.columns]
        metrics.columns = [f"metrics.{c}" for c in metrics.columns]
        return pd.concat([runs[BASE_COLUMNS], params, metrics], axis=1)

    def export_csv(self, path: str | Path) -> Path:
        frame = self.frame()
        return write_atomic(path, lambda tmp: frame.to_csv(tmp, index=False))
