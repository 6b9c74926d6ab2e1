"""cvlab: a notebook-driven experiment workbench for deep learning in computer vision.

`import cvlab` stays light (no TensorFlow, no Jupyter): the heavy parts load when used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from pathlib import Path

    from cvlab.runs.record import RunRecord

__all__ = ["__version__", "leaderboard", "run_notebook"]


def run_notebook(
    notebook: str | Path,
    params: dict[str, Any] | None = None,
    out_dir: str | Path | None = None,
    *,
    timeout: float | None = None,
    kernel_name: str = "python3",
    rank_by: str | None = None,
    rank_mode: str = "max",
) -> RunRecord:
    """Execute one notebook with `params` and record it as a run, like nbrun's `run_notebook`.

    The executed notebook, its HTML, `record.json` and the leaderboard row land under
    `out_dir` (default: the current directory) exactly as for a grid run, in a grid named
    after the notebook; `rank_by` names the metric that ranks it on the leaderboard.
    """
    from cvlab.grid.single import run_single_notebook

    return run_single_notebook(
        notebook,
        params or {},
        out_dir,
        timeout=timeout,
        kernel_name=kernel_name,
        rank_by=rank_by,
        rank_mode=rank_mode,
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
    from cvlab.report.leaderboard import leaderboard as _leaderboard

    return _leaderboard(grid, group_by_seed=group_by_seed, include_stale=include_stale, out=out)


def __getattr__(name: str) -> Any:
    # Subpackages load on first use, so `cvlab.runs`, `cvlab.data`, ... work after `import cvlab`.
    import importlib

    if name in {"runs", "data", "models", "train", "grid", "report", "detection", "generative"}:
        return importlib.import_module(f"cvlab.{name}")
    raise AttributeError(f"module 'cvlab' has no attribute {name!r}")
