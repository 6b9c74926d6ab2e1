"""Where outputs go: `experiments/`, `logs/` and `figs/` under one root (`--out`), and where the
project is (`project_root`)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


def project_root(start: str | Path = ".") -> Path:
    """The nearest folder at or above `start` holding `pyproject.toml`, else `start` itself."""
    start = Path(start).resolve()
    for folder in (start, *start.parents):
        if (folder / "pyproject.toml").is_file():
            return folder
    return start


@dataclass(frozen=True)
class Workspace:
    """The output folders of a project (or of `--out DIR`)."""

    root: Path

    @classmethod
    def at(cls, root: str | Path = ".") -> Workspace:
        return cls(Path(root).resolve())

    @property
    def experiments(self) -> Path:
        return self.root / "experiments"

    @property
    def logs(self) -> Path:
        return self.root / "logs"

    @property
    def figs(self) -> Path:
        return self.root / "figs"

    @property
    def leaderboard_db(self) -> Path:
        return self.logs / "leaderboard.db"

    @property
    def leaderboard_csv(self) -> Path:
        return self.logs / "leaderboard.csv"

    @property
    def leaderboard_page(self) -> Path:
        return self.experiments / "index.html"

    def run_dir(self, grid: str, run_id: str) -> Path:
        return self.experiments / grid / run_id

    def run_log(self, grid: str, run_id: str) -> Path:
        return self.logs / grid / f"{run_id}.log"

    def grid_log(self, grid: str) -> Path:
        return self.logs / grid / "grid.log"

    def grid_figs(self, grid: str) -> Path:
        return self.figs / grid
