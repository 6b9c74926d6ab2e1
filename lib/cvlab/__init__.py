"""cvlab: a notebook-driven experiment workbench for deep learning in computer vision.

`import cvlab` stays light (no TensorFlow, no Jupyter): the heavy parts load when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from pathlib import Path

    from cvlab.grid.runner import GridResult
    from cvlab.grid.spec import ValidatedGrid
    from cvlab.runs.record import RunRecord

__all__ = ["__version__", "leaderboard", "run_grid", "run_notebook"]


def run_grid(
    spec_or_path: str | Path | ValidatedGrid,
    *,
    only: Mapping[str, Any] | Sequence[str] = (),
    workers: int = 1,
    out: str | Path = ".",
    force: bool = False,
    dry_run: bool = False,
    max_runs: int | None = None,
    timeout: float | None = None,
    scheduler: str | None = None,
    shared_out: bool = False,
    report: str | Path | None = None,
    echo: bool = True,
    prewarm: bool = True,
    check_data: bool = True,
    backend: str | None = None,
) -> GridResult:
    """Run a grid YAML file (or a grid from `cvlab.grid.spec.load_grid_spec`) as `run_grid.py`
    does and return its runs' results: `result.runs`, each with run_id, name, state, metrics
    and run_dir; `result.failed`; `result.leaderboard`. `only={"smoke": True}` keeps the runs
    whose parameter has that value. `backend="jax"` overrides the grid's `backend:`. Bad input (a wrong spec, a data set not in the cache, the
    grid's lock held...) raises before any run starts; see cvlab.grid.runner.BAD_INPUT_ERRORS.
    """
    from cvlab.grid.runner import GridOptions  # lazy: papermill, h5py
    from cvlab.grid.runner import run_grid as _run_grid  # lazy: papermill, h5py

    options = GridOptions(
        only=only,
        workers=workers,
        out=out,
        force=force,
        dry_run=dry_run,
        max_runs=max_runs,
        timeout=timeout,
        scheduler=scheduler,
        shared_out=shared_out,
        report=report,
        echo=echo,
        prewarm=prewarm,
        check_data=check_data,
        backend=backend,
    )
    return _run_grid(spec_or_path, options)


def run_notebook(
    notebook: str | Path,
    params: dict[str, Any] | None = None,
    out_dir: str | Path | None = None,
    *,
    timeout: float | None = None,
    kernel_name: str = "python3",
    rank_by: str | None = None,
    rank_mode: str = "max",
    backend: str | None = None,
) -> RunRecord:
    """Execute one notebook with `params` and record it as a run, like nbrun's `run_notebook`.

    The executed notebook, its HTML, `record.json` and the leaderboard row land under
    `out_dir` (default: the current directory) exactly as for a grid run, in a grid named
    after the notebook; `rank_by` names the metric that ranks it on the leaderboard;
    `backend` the Keras backend its kernel gets (tensorflow, jax, torch; default $KERAS_BACKEND,
    else tensorflow).
    """
    from cvlab.grid.single import run_single_notebook  # lazy: pandas

    return run_single_notebook(
        notebook,
        params or {},
        out_dir,
        timeout=timeout,
        kernel_name=kernel_name,
        rank_by=rank_by,
        rank_mode=rank_mode,
        backend=backend,
    )


def leaderboard(
    grid: str | None = None,
    *,
    group_by_seed: bool = False,
    include_stale: bool = False,
    out: str | Path = ".",
) -> Any:
    """The leaderboard of `out` (default: the current folder) as a pandas DataFrame: one row
    per run, or with `group_by_seed=True` one row per combination with each metric's mean and
    standard deviation over seeds; runs of older notebook code rank only with `include_stale`.
    See `cvlab.report.leaderboard.leaderboard`."""
    from cvlab.report.leaderboard import leaderboard as _leaderboard  # lazy: scipy

    return _leaderboard(grid, group_by_seed=group_by_seed, include_stale=include_stale, out=out)


def __getattr__(name: str) -> Any:
    # Subpackages load on first use, so `cvlab.runs`, `cvlab.data`, ... work after `import cvlab`.
    import importlib

    if name in {"runs", "data", "models", "train", "grid", "report", "detection", "generative"}:
        return importlib.import_module(f"cvlab.{name}")
    raise AttributeError(f"module 'cvlab' has no attribute {name!r}")
