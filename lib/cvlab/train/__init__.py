"""Training helpers: optimizers by name (schedules and callbacks come with the model zoo)."""

from cvlab.train.optimizers import OPTIMIZERS, make_optimizer

__all__ = ["OPTIMIZERS", "make_optimizer"]
