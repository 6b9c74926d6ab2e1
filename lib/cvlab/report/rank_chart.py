"""The rank-against-parameter chart of a grid, as data: which parameters get a panel, their values
in order, each ranked run's point and the mean ± standard deviation per value.

Computed here once; two renderers draw it as they are: `plots.py` the figure
`figs/<grid>/rank_vs_params.png` (matplotlib), the page's script the interactive SVG panels (from
the page data). Neither decides anything about what the chart shows.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from typing import Any

import numpy as np

SEED = "seed"
NOT_SET = "(not set)"  # how a value reads for runs that do not set the parameter


def _value_key(text: str | None) -> tuple[int, float, list[Any]]:
    """Numbers in numeric order ("0.001" < "0.01"), then text in natural order, unset last."""
    if text is None:
        return (2, 0.0, [])
    try:
        number = float(text)
    except ValueError:
        number = math.nan
    if math.isfinite(number):
        return (0, number, [])
    parts = re.split(r"(\d+)", text.lower())
    return (1, 0.0, [(0, int(p), "") if p.isdigit() else (1, 0, p) for p in parts])


def _eligible(points: list[dict[str, Any]], include_stale: bool) -> list[dict[str, Any]]:
    """The runs the chart plots: with a rank value, current (unless `include_stale`), and real
    ones when any is real (synthetic runs rank only among themselves)."""
    ranked = [p for p in points if p["rank"] is not None and (include_stale or not p["stale"])]
    real = [p for p in ranked if not p["synthetic"]]
    return real or ranked


def _numeric(values: list[str | None]) -> bool:
    """Every value is set and reads as a finite number (a numeric axis can place it)."""
    for value in values:
        try:
            if value is None or not math.isfinite(float(value)):
                return False
        except ValueError:
            return False
    return True


def panel_scale(values: list[str | None], scale: str | None) -> str:
    """A panel's x axis: `scale` (linear or log, from a searched grid's space) when every value
    can sit on it (set, a number, positive on a log axis), else `category` (evenly spaced)."""
    if scale not in ("linear", "log") or not _numeric(values):
        return "category"
    if scale == "log" and any(float(v) <= 0 for v in values):  # type: ignore[arg-type]
        return "category"
    return scale


def rank_chart(
    runs: Iterable[dict[str, Any]],
    include_stale: bool = False,
    scales: dict[str, str] | None = None,
) -> dict[str, Any]:
    """The chart of one grid's `runs` (each: `key`, `name`, `params` as text, `rank`, `best`,
    `stale`, `synthetic`, as in the page data). Panels: the parameters whose values differ
    between runs, in name order; `seed` only when nothing else varies (with seeds, their spread
    is what the error bars show). Each panel: its values in order (None: not set) and, per value
    with points, the mean, the sample standard deviation (None for one run) and the count, and
    its axis `scale`: category, or linear / log where `scales` (a searched grid's space) says so."""
    members = list(runs)
    points = _eligible(members, include_stale)
    names = sorted({name for run in members for name in run["params"]})
    varied = [n for n in names if len({run["params"].get(n) for run in members}) > 1]
    if len(varied) > 1:
        varied = [n for n in varied if n != SEED]
    panels = []
    for name in varied:
        values = sorted({run["params"].get(name) for run in members}, key=_value_key)
        groups = []
        for value in values:
            ranks = np.array([p["rank"] for p in points if p["params"].get(name) == value], float)
            if not len(ranks):
                continue
            sd = float(np.std(ranks, ddof=1)) if len(ranks) > 1 else None
            groups.append(
                {"value": value, "mean": float(np.mean(ranks)), "sd": sd, "n": int(len(ranks))}
            )
        scale = panel_scale(values, (scales or {}).get(name))
        panels.append({"param": name, "values": values, "groups": groups, "scale": scale})
    return {
        "panels": panels,
        "points": [
            {
                "key": p["key"],
                "name": p["name"],
                "rank": p["rank"],
                "best": p["best"],
                "params": {name: p["params"].get(name) for name in varied},
            }
            for p in points
        ],
    }
