"""Where a grid's Optuna study lives: `logs/optuna.db` (SQLite) beside the leaderboard, one
study per searched or pruned grid, which `optuna-dashboard sqlite:///logs/optuna.db` opens.

Runs on this machine (in-process, `--workers`) open the SQLite file themselves. Runs on Dask
workers, which may not see the driver's files, reach it through Optuna's gRPC storage proxy,
which the driver serves while the grid runs (`serve_storage`).
"""

from __future__ import annotations

import contextlib
import socket
from collections.abc import Iterator
from pathlib import Path

import optuna

STUDY_DB = "optuna.db"
_GRPC = "grpc://"
# Runs report at every epoch end while the driver records trials: wait for SQLite's lock
# rather than fail (Optuna's RDBStorage passes these to SQLAlchemy's engine).
_SQLITE_TIMEOUT_S = 120


def sqlite_address(logs: Path) -> str:
    return f"sqlite:///{(Path(logs) / STUDY_DB).resolve()}"


def open_storage(address: str) -> optuna.storages.BaseStorage:
    """The storage at `address`: `sqlite:///...` (or any SQLAlchemy URL), or `grpc://HOST:PORT`."""
    if address.startswith(_GRPC):
        host, _, port = address.removeprefix(_GRPC).rpartition(":")
        return optuna.storages.GrpcStorageProxy(host=host, port=int(port))
    return optuna.storages.RDBStorage(
        address, engine_kwargs={"connect_args": {"timeout": _SQLITE_TIMEOUT_S}}
    )


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("", 0))
        return probe.getsockname()[1]


@contextlib.contextmanager
def serve_storage(storage: optuna.storages.BaseStorage) -> Iterator[str]:
    """Serve `storage` over gRPC on a free port of this host while the block runs; yields the
    address runs on other machines reach it at (`grpc://HOST:PORT`)."""
    from optuna.storages._grpc.server import make_server  # run_grpc_proxy_server blocks

    port = _free_port()
    server = make_server(storage, "0.0.0.0", port, None)
    server.start()
    try:
        yield f"{_GRPC}{socket.gethostname()}:{port}"
    finally:
        server.stop(grace=None)
