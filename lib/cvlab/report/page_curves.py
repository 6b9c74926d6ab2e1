"""A run's per-epoch history (`history.csv`), shrunk for embedding in the leaderboard page.

The page overlays the curves of the runs a user compares; it cannot fetch files from `file://`,
so the curves travel inside the page. Long histories are thinned to `MAX_POINTS` epochs and
values rounded, which keeps a page of hundreds of runs to a few megabytes.
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from cvlab.runs.curves import metric_pairs

MAX_POINTS = 120  # epochs kept per curve: plenty for a chart a few hundred pixels wide
SIGNIFICANT_DIGITS = 5


def thin_indices(length: int, limit: int = MAX_POINTS) -> list[int]:
    """At most `limit` evenly spaced indices into a sequence, always the first and the last."""
    if length <= limit:
        return list(range(length))
    step = (length - 1) / (limit - 1)
    return sorted({round(i * step) for i in range(limit)})


def _number(text: str) -> float | None:
    """A CSV cell as a rounded finite number; empty, NaN and infinite cells become None."""
    try:
        value = float(text)
    except ValueError:
        return None
    if not math.isfinite(value):
        return None
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def load_curves(path: Path, limit: int = MAX_POINTS) -> dict[str, list[float | None]] | None:
    """`{"epoch": [...], "loss": [...], "val_loss": [...], ...}` from a history CSV, or None
    when there is no file or no epoch. Only metric columns (and their `val_` twins) are kept."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            rows = list(csv.DictReader(fh))
    except (FileNotFoundError, UnicodeDecodeError, csv.Error):
        return None
    if not rows or "epoch" not in rows[0]:
        return None
    columns = list(rows[0])
    pairs = metric_pairs(columns)
    keep = [name for pair in pairs for name in pair if name] or [
        c for c in columns if c.startswith("val_")
    ]
    picked = [rows[i] for i in thin_indices(len(rows), limit)]
    return {name: [_number(row.get(name) or "") for row in picked] for name in ["epoch", *keep]}
