"""The quickstart grid end to end through papermill on real MNIST digits (slow: trains LeNet)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from cvlab.grid.cli import main
from cvlab.report.store import LeaderboardStore
from cvlab.workspace import Workspace

REPO = Path(__file__).resolve().parents[1]
QUICKSTART = REPO / "grids" / "quickstart.yaml"

pytestmark = pytest.mark.slow


def quickstart_copy(tmp_path: Path, **params) -> Path:
    """The real quickstart grid, with its notebook path made absolute and `params` overridden."""
    spec = yaml.safe_load(QUICKSTART.read_text())
    spec["notebook"] = str((QUICKSTART.parent / spec["notebook"]).resolve())
    spec["params"].update(params)
    path = tmp_path / "quickstart.yaml"
    path.write_text(yaml.safe_dump(spec))
    return path


@pytest.mark.backends
def test_quickstart_grid_one_epoch(tmp_path):
    out = tmp_path / "out"
    assert main([str(quickstart_copy(tmp_path, epochs=1)), "--out", str(out), "--quiet"]) == 0
    ws = Workspace.at(out)
    frame = LeaderboardStore(ws.leaderboard_db).frame()
    assert len(frame) == 4 and set(frame["status"]) == {"ok"}
    assert frame["rank_value"].notna().all()
    assert frame["rank_value"].max() > 0.8  # one epoch of Adam or momentum SGD learns MNIST
    for run_id in frame["run_id"]:
        run_dir = ws.run_dir("quickstart", run_id)
        for name in (
            "run.ipynb",
            "run.html",
            "record.json",
            "history.csv",
            "curves.png",
            "model.keras",
        ):
            assert (run_dir / name).exists(), name
        assert (run_dir / "figures" / "confusion_matrix.png").exists()
        # every cell that shows a plot has one in the executed notebook: nothing the library
        # does (curves every epoch) may switch the notebook's matplotlib backend
        nb = json.loads((run_dir / "run.ipynb").read_text())
        for cell in nb["cells"]:
            if cell["cell_type"] == "code" and "plt.show()" in "".join(cell["source"]):
                kinds = [k for out in cell.get("outputs", []) for k in out.get("data", {})]
                assert "image/png" in kinds, "".join(cell["source"])[:60]
    assert ws.leaderboard_page.exists()


def test_quickstart_best_run_is_believable(tmp_path):
    """The grid's best setting, trained as `make run` trains it, tops 95% test accuracy."""
    out = tmp_path / "out"
    grid = quickstart_copy(tmp_path)
    args = [
        str(grid),
        "--out",
        str(out),
        "--quiet",
        "--only",
        "optimizer=adam",
        "--only",
        "learning_rate=0.001",
    ]
    assert main(args) == 0
    frame = LeaderboardStore(Workspace.at(out).leaderboard_db).frame()
    assert len(frame) == 1
    assert frame["rank_value"].iloc[0] > 0.95
