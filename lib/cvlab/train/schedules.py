"""Epoch-based learning-rate schedules from the book, named by a dict so a grid YAML can pick one.

    schedule: {name: polynomial, power: 1.0}          # the book's poly_decay
    schedule: {name: step, factor: 0.25, every: 5}    # the Starter Bundle's step_decay
    schedule: {name: stages, stages: [{until: 40, lr: 0.1}, {until: 60, lr: 0.01}, {lr: 0.001}]}

Epochs are counted from 0, as Keras passes them to `LearningRateScheduler` (`history.csv`
counts from 1: its epoch 1 is epoch 0 here). With `base_lr` = α₀, `epochs` = E and epoch e:

- constant:   α₀
- polynomial: end_lr + (α₀ - end_lr) · (1 - e/E)^power; with end_lr 0 this is the book's
              `alpha = baseLR * (1 - (epoch / float(maxEpochs))) ** power` (poly_decay, Line 30).
              e is clamped to E, so epochs past the plan stay at end_lr.
- step:       α₀ · factor^floor((1 + e) / every), the Starter Bundle's
              `alpha = initAlpha * (factor ** np.floor((1 + epoch) / dropEvery))`. Note the `1 +`:
              with every 5 the first drop is at epoch 4 (the fifth epoch already runs lower).
- piecewise:  values[i] for boundaries[i-1] <= e < boundaries[i] (absolute rates; α₀ unused).
              Unlike Keras's step-based `PiecewiseConstantDecay` (step <= boundary), a boundary
              here is the first epoch of the next value.
- cosine:     warm-up α₀ · (e + 1)/W for e < W (W = warmup_epochs), then
              min_lr + (α₀ - min_lr) · (1 + cos(π · (e - W)/(E - W))) / 2.
- stages:     the book's ctrl+c method planned as one run: stage i's `lr` for the epochs before its
              `until` (exclusive) and from the previous stage's `until` (absolute rates; α₀ unused).
              `until` must increase. The last stage may leave `until` out: it then runs to the end.
              If the last stage names an `until` below E, that is an error (the plan would not say
              what rate the remaining epochs use); an `until` past E is fine (a shortened run).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator

from cvlab.errors import ScheduleError

__all__ = [
    "SCHEDULES",
    "ScheduleError",
    "ScheduleSpec",
    "keras2_decay",
    "keras2_decay_rate",
    "learning_rate_at",
    "parse_schedule",
    "plan_table",
    "schedule_callback",
    "time_decay_schedule",
]


class _Schedule(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    def rate(self, base_lr: float, epochs: int, epoch: int) -> float:  # pragma: no cover
        raise NotImplementedError

    def check(self, epochs: int) -> None:
        """Problems that depend on the number of epochs (raise ScheduleError)."""


class Constant(_Schedule):
    name: Literal["constant"] = "constant"

    def rate(self, base_lr: float, epochs: int, epoch: int) -> float:
        return base_lr


class Polynomial(_Schedule):
    name: Literal["polynomial"] = "polynomial"
    power: float = Field(1.0, gt=0)
    end_lr: float = Field(0.0, ge=0)

    def rate(self, base_lr: float, epochs: int, epoch: int) -> float:
        remaining = 1.0 - min(epoch, epochs) / float(epochs)
        return self.end_lr + (base_lr - self.end_lr) * remaining**self.power


class Step(_Schedule):
    name: Literal["step"] = "step"
    factor: float = Field(0.25, gt=0, le=1)
    every: int = Field(5, ge=1)

    def rate(self, base_lr: float, epochs: int, epoch: int) -> float:
        return base_lr * self.factor ** math.floor((1 + epoch) / self.every)


class Piecewise(_Schedule):
    name: Literal["piecewise"] = "piecewise"
    boundaries: list[Annotated[int, Field(ge=1)]]
    values: list[Annotated[float, Field(gt=0)]]

    @field_validator("boundaries")
    @classmethod
    def _increasing(cls, boundaries: list[int]) -> list[int]:
        if any(b >= a for b, a in zip(boundaries, boundaries[1:], strict=False)):
            raise ValueError(f"boundaries must increase strictly, got {boundaries}")
        return boundaries

    @field_validator("values")
    @classmethod
    def _one_more(cls, values: list[float], info: ValidationInfo) -> list[float]:
        boundaries = info.data.get("boundaries")
        if boundaries is not None and len(values) != len(boundaries) + 1:
            raise ValueError(
                f"needs one value more than there are boundaries: {len(boundaries)} "
                f"boundaries, so {len(boundaries) + 1} values, got {len(values)}"
            )
        return values

    def rate(self, base_lr: float, epochs: int, epoch: int) -> float:
        index = sum(1 for b in self.boundaries if epoch >= b)
        return self.values[index]


class Cosine(_Schedule):
    name: Literal["cosine"] = "cosine"
    min_lr: float = Field(0.0, ge=0)
    warmup_epochs: int = Field(0, ge=0)

    def check(self, epochs: int) -> None:
        if self.warmup_epochs >= epochs:
            raise ScheduleError(
                f"schedule.warmup_epochs: {self.warmup_epochs} warm-up epochs leave none of the "
                f"{epochs} epochs for the cosine; use fewer than {epochs}"
            )

    def rate(self, base_lr: float, epochs: int, epoch: int) -> float:
        warm = self.warmup_epochs
        if epoch < warm:
            return base_lr * (epoch + 1) / warm
        progress = min(epoch - warm, epochs - warm) / float(epochs - warm)
        return self.min_lr + (base_lr - self.min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


class Stage(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    until: int | None = Field(None, ge=1)
    lr: float = Field(gt=0)


class Stages(_Schedule):
    name: Literal["stages"] = "stages"
    stages: list[Stage] = Field(min_length=1)

    @field_validator("stages")
    @classmethod
    def _increasing(cls, stages: list[Stage]) -> list[Stage]:
        untils = [s.until for s in stages]
        if any(u is None for u in untils[:-1]):
            first = untils.index(None)
            raise ValueError(
                f"stage {first} has no 'until'; only the last stage may leave it out "
                "(it then runs to the end)"
            )
        given = [u for u in untils if u is not None]
        if any(b >= a for b, a in zip(given, given[1:], strict=False)):
            raise ValueError(f"'until' must increase from stage to stage, got {untils}")
        return stages

    def check(self, epochs: int) -> None:
        last = self.stages[-1].until
        if last is not None and last < epochs:
            raise ScheduleError(
                f"schedule.stages[{len(self.stages) - 1}].until: the stages end at epoch {last} "
                f"but training runs {epochs} epochs; raise the last 'until' to {epochs} or leave "
                "it out so the last rate runs to the end"
            )

    def rate(self, base_lr: float, epochs: int, epoch: int) -> float:
        for stage in self.stages:
            if stage.until is None or epoch < stage.until:
                return stage.lr
        return self.stages[-1].lr  # past the plan (a longer fit than planned): keep the last rate


SCHEDULES: dict[str, type[_Schedule]] = {
    "constant": Constant,
    "polynomial": Polynomial,
    "step": Step,
    "piecewise": Piecewise,
    "cosine": Cosine,
    "stages": Stages,
}

ScheduleSpec = Constant | Polynomial | Step | Piecewise | Cosine | Stages


def _where(loc: tuple[Any, ...]) -> str:
    out = "schedule"
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}"
    return out


def parse_schedule(schedule: dict[str, Any] | str | _Schedule | None) -> ScheduleSpec:
    """Validate a schedule dict (`None` or a bare name like `"polynomial"` work too).

    Raises `ScheduleError` naming every bad field, with the known names or keys.
    """
    if schedule is None:
        return Constant()
    if isinstance(schedule, _Schedule):
        return schedule  # type: ignore[return-value]
    if isinstance(schedule, str):
        schedule = {"name": schedule}
    if not isinstance(schedule, dict):
        raise ScheduleError(
            f"schedule: expected a mapping like {{'name': 'step', 'factor': 0.25, 'every': 5}}, "
            f"got {type(schedule).__name__}"
        )
    choices = ", ".join(SCHEDULES)
    name = schedule.get("name")
    if name is None:
        raise ScheduleError(f"schedule.name: missing; choose one of: {choices}")
    cls = SCHEDULES.get(str(name).lower()) if isinstance(name, str) else None
    if cls is None:
        raise ScheduleError(f"schedule.name: unknown schedule {name!r}; choose one of: {choices}")
    try:
        return cls.model_validate({**schedule, "name": str(name).lower()})  # type: ignore[return-value]
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            where = _where(err["loc"])
            if err["type"] == "extra_forbidden":
                owner = Stage if "stages" in err["loc"][:-1] else cls
                allowed = ", ".join(owner.model_fields)
                problems.append(f"{where}: unknown key; allowed keys: {allowed}")
            elif err["type"] == "missing":
                problems.append(f"{where}: required for the {name!r} schedule")
            elif err["type"] == "value_error":
                problems.append(f"{where}: {err['msg'].removeprefix('Value error, ')}")
            else:
                problems.append(f"{where}: {err['msg']} (got {err.get('input')!r})")
        raise ScheduleError("invalid schedule:\n  - " + "\n  - ".join(problems)) from None


def _checked(
    schedule: dict[str, Any] | str | _Schedule | None, base_lr: float, epochs: int
) -> ScheduleSpec:
    spec = parse_schedule(schedule)
    if not base_lr > 0:
        raise ScheduleError(f"base_lr: must be positive, got {base_lr!r}")
    if int(epochs) != epochs or epochs < 1:
        raise ScheduleError(f"epochs: must be a whole number of at least 1, got {epochs!r}")
    spec.check(int(epochs))
    return spec


def learning_rate_at(
    schedule: dict[str, Any] | str | None, base_lr: float, epochs: int, epoch: int
) -> float:
    """The learning rate for 0-based `epoch` of a run of `epochs` epochs starting at `base_lr`."""
    spec = _checked(schedule, base_lr, epochs)
    if epoch < 0:
        raise ScheduleError(f"epoch: counted from 0, got {epoch}")
    return float(spec.rate(float(base_lr), int(epochs), int(epoch)))


def plan_table(
    schedule: dict[str, Any] | str | None, base_lr: float, epochs: int
) -> list[tuple[int, float]]:
    """`[(epoch, rate), ...]` for epochs 0 … epochs-1, to print or plot before training."""
    spec = _checked(schedule, base_lr, epochs)
    return [(e, float(spec.rate(float(base_lr), int(epochs), e))) for e in range(int(epochs))]


def schedule_callback(
    schedule: dict[str, Any] | str | None, base_lr: float, epochs: int, verbose: int = 0
):
    """A `keras.callbacks.LearningRateScheduler` following `schedule`; `None` for a constant rate
    (the optimizer keeps the `base_lr` it was made with). Validates the schedule at once.

    When `fit` resumes (BackupAndRestore, or `initial_epoch=`) Keras passes the true epoch, so
    the rate picks up where the plan was.
    """
    spec = _checked(schedule, base_lr, epochs)
    if isinstance(spec, Constant):
        return None
    import keras

    base, total = float(base_lr), int(epochs)

    def rate(epoch: int, lr: float | None = None) -> float:
        return float(spec.rate(base, total, int(epoch)))

    return keras.callbacks.LearningRateScheduler(rate, verbose=verbose)


# --- Keras 2's optimizer `decay=` ---------------------------------------------------------------
# Keras 2 optimizers took `decay=d` and updated at lr / (1 + d · iterations); Keras 3 dropped the
# argument. The book's recipes use it (ensembles: SGD 0.01, decay 0.01 / 40; DCGAN: Adam 2e-4,
# decay 2e-4 / epochs): both go through these two functions.


def keras2_decay_rate(learning_rate: float, decay: float, iterations: Any) -> Any:
    """Keras 2's rate after `iterations` updates (a number or a NumPy array, counted from 0):
    lr / (1 + decay · iterations), in float64 (what `keras2_decay` computes in float32)."""
    return learning_rate / (1.0 + decay * iterations)


def keras2_decay(learning_rate: float, decay: float):
    """Keras 2's `decay=` as a Keras 3 learning rate: Keras' own `InverseTimeDecay` with one
    update per decay step (lr / (1 + decay · iterations), as `keras2_decay_rate`); the plain
    `learning_rate` when `decay` is 0. It saves and loads with the optimizer like any Keras one."""
    if learning_rate <= 0 or decay < 0:
        raise ScheduleError(
            f"keras2_decay: learning_rate > 0 and decay >= 0, got {learning_rate}, {decay}"
        )
    if not decay:
        return float(learning_rate)
    import keras  # lazy: keras

    return keras.optimizers.schedules.InverseTimeDecay(
        learning_rate, decay_steps=1, decay_rate=decay, staircase=False
    )


def time_decay_schedule(
    learning_rate: float, decay: float, steps_per_epoch: int, epochs: int
) -> dict[str, Any]:
    """Keras 2's `SGD(lr, decay=d)` as an epoch schedule for `TrainingConfig.schedule`: each
    epoch runs at the mean of the `keras2_decay_rate`s Keras 2 used over that epoch's iterations
    (the book's ensembles use lr 0.01, decay 0.01 / 40)."""
    if learning_rate <= 0 or decay < 0 or steps_per_epoch < 1 or epochs < 1:
        raise ScheduleError(
            f"time_decay_schedule: learning_rate > 0, decay >= 0, steps_per_epoch >= 1 and "
            f"epochs >= 1, got {learning_rate}, {decay}, {steps_per_epoch}, {epochs}"
        )
    steps = np.arange(steps_per_epoch, dtype=np.float64)
    values = [
        float(np.mean(keras2_decay_rate(learning_rate, decay, e * steps_per_epoch + steps)))
        for e in range(epochs)
    ]
    return {"name": "piecewise", "boundaries": list(range(1, epochs)), "values": values}
