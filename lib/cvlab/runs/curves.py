"""Training-curve plots: loss and accuracy, training against validation, per epoch."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from cvlab.figures import new_figure, save_png


def metric_pairs(columns: list[str]) -> list[tuple[str, str | None]]:
    """Pair each training metric with its `val_` twin, loss first: [('loss', 'val_loss'), ...]."""
    train = [c for c in columns if c not in {"epoch", "lr", "learning_rate", "time_s"}]
    train = [c for c in train if not c.startswith("val_")]
    train.sort(key=lambda c: (c != "loss", c))
    return [(c, f"val_{c}" if f"val_{c}" in columns else None) for c in train]


def plot_curves(history: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Draw one panel per metric (train solid, validation dashed) and save it atomically."""
    pairs = metric_pairs(list(history.columns))
    if not pairs:  # only validation columns: plot those on their own
        pairs = [(c, None) for c in history.columns if c.startswith("val_")] or [("loss", None)]
    fig, axes = new_figure(1, len(pairs), figsize=(4.2 * len(pairs), 3.4))
    x = history["epoch"] if "epoch" in history else range(1, len(history) + 1)
    for ax, (train, val) in zip(axes[0], pairs, strict=True):
        if train in history:
            ax.plot(x, history[train], marker="o", ms=3, label=f"train {train}")
        if val:
            ax.plot(x, history[val], marker="o", ms=3, ls="--", label=f"validation {train}")
        ax.set_xlabel("epoch")
        ax.set_ylabel(train)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=10)
    return save_png(fig, path)
