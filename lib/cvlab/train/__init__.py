"""Training helpers: optimizers and learning-rate schedules by name, interrupt-and-resume
checkpoints, warm starts from an earlier run, rank-1/rank-5 evaluation, mixed precision and XLA
options.

`import cvlab.train` stays light: the parts that need Keras load on first use.
"""

from __future__ import annotations

import importlib
from typing import Any

from cvlab.train.optimizers import OPTIMIZERS, make_optimizer
from cvlab.train.schedules import (
    SCHEDULES,
    ScheduleError,
    learning_rate_at,
    parse_schedule,
    plan_table,
    schedule_callback,
)

_LAZY = {
    "checkpoint_callbacks": "cvlab.train.checkpoints",
    "resume_from": "cvlab.train.checkpoints",
    "find_resume_point": "cvlab.train.checkpoints",
    "backup_epoch": "cvlab.train.checkpoints",
    "ResumeError": "cvlab.train.checkpoints",
    "EpochBackup": "cvlab.train.checkpoints",
    "rank_accuracy": "cvlab.train.evaluation",
    "evaluate_classifier": "cvlab.train.evaluation",
    "configure_precision": "cvlab.train.precision",
    "compile_options": "cvlab.train.precision",
    "init_from": "cvlab.train.warm_start",
}
# Submodules reachable as attributes without an import of their own, as notebooks write
# `cvlab.train.warm_start.init_from(...)` after `import cvlab`.
_SUBMODULES = ("checkpoints", "evaluation", "precision", "recipe", "warm_start")

__all__ = [
    "OPTIMIZERS",
    "SCHEDULES",
    "ScheduleError",
    "learning_rate_at",
    "make_optimizer",
    "parse_schedule",
    "plan_table",
    "schedule_callback",
    *_LAZY,
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name in _SUBMODULES:
        return importlib.import_module(f"cvlab.train.{name}")
    raise AttributeError(f"module 'cvlab.train' has no attribute {name!r}")
