"""Every grid the project ships validates against its notebook (`--dry-run`: nothing runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from cvlab.grid.cli import main

GRIDS = sorted((Path(__file__).resolve().parents[1] / "grids").glob("*.yaml"))


def test_the_project_ships_grids():
    assert len(GRIDS) >= 20


@pytest.mark.parametrize("grid", GRIDS, ids=lambda p: p.stem)
def test_grid_validates(grid, tmp_path, capsys):
    assert main([str(grid), "--dry-run", "--out", str(tmp_path)]) == 0, capsys.readouterr().err
