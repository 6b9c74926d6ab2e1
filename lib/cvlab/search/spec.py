"""The grid file's `prune:` and `search:` blocks (pydantic): early stopping and search spaces.

prune:  {metric: val_accuracy, mode: max, method: asha, min_epochs: 2, reduction_factor: 3}
search: {trials: 40, sampler: tpe, seed: 0,
         space: {lr: {loguniform: [1.0e-4, 0.1]}, batch_size: {choice: [32, 64]}}}
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

PRUNE_METHODS = ("asha", "hyperband", "median")
# what each method is called elsewhere (W&B, Ray Tune, Optuna): the same pruner here
PRUNE_ALIASES = {"successive_halving": "asha", "sha": "asha"}
SAMPLERS = ("random", "tpe", "cmaes", "gp", "grid")
DISTRIBUTIONS = ("uniform", "loguniform", "int", "logint", "choice")


class PruneSpec(BaseModel):
    """Stop hopeless runs at epoch ends: which per-epoch metric, which direction, which rule."""

    model_config = ConfigDict(extra="forbid")

    metric: str = Field(min_length=1)
    # None: the direction of the grid's rank_by
    mode: Literal["max", "min"] | None = None
    method: str = "asha"
    # no run is cut before it has trained this many epochs (ASHA's and Hyperband's first rung)
    min_epochs: int = Field(default=1, ge=1)
    reduction_factor: int = Field(default=3, ge=2)
    # median: runs that must have reached an epoch before runs are cut there
    startup_runs: int = Field(default=5, ge=0)

    @field_validator("method")
    @classmethod
    def _known_method(cls, value: str) -> str:
        value = PRUNE_ALIASES.get(value, value)
        if value not in PRUNE_METHODS:
            raise ValueError(
                f"unknown pruning method {value!r}; known: {', '.join(PRUNE_METHODS)} "
                f"(successive_halving is asha)"
            )
        return value


class Distribution(BaseModel):
    """One parameter's range: exactly one of `uniform`, `loguniform`, `int`, `logint` ([low,
    high], both included) or `choice` (a list of values); `step` quantizes uniform and int."""

    model_config = ConfigDict(extra="forbid")

    uniform: list[float] | None = None
    loguniform: list[float] | None = None
    int_: list[int] | None = Field(default=None, alias="int")
    logint: list[int] | None = None
    choice: list[Any] | None = None
    step: float | None = Field(default=None, gt=0)

    @model_validator(mode="before")
    @classmethod
    def _one_kind(cls, raw: Any) -> Any:
        if not isinstance(raw, dict):
            raise ValueError(
                f"{raw!r} is not a distribution: write e.g. {{loguniform: [1.0e-4, 0.1]}}, "
                f"one of {', '.join(DISTRIBUTIONS)}"
            )
        unknown = [k for k in raw if k not in (*DISTRIBUTIONS, "step")]
        if unknown:
            raise ValueError(
                f"unknown distribution {unknown[0]!r}; known: {', '.join(DISTRIBUTIONS)}"
            )
        kinds = [k for k in raw if k in DISTRIBUTIONS]
        if len(kinds) != 1:
            raise ValueError(
                f"give exactly one of {', '.join(DISTRIBUTIONS)} (found "
                f"{', '.join(kinds) or 'none'})"
            )
        return raw

    @model_validator(mode="after")
    def _bounds(self) -> Distribution:
        kind, values = self.kind, self.values
        if kind == "choice":
            if not values:
                raise ValueError("choice: give a non-empty list of values")
            if self.step is not None:
                raise ValueError("step goes with uniform, int or logint, not choice")
            return self
        if len(values) != 2:
            raise ValueError(f"{kind}: give [low, high], two numbers (got {values!r})")
        low, high = values
        if low > high:
            raise ValueError(f"{kind}: low {low!r} is greater than high {high!r}")
        if kind.startswith("log") and low <= 0:
            raise ValueError(f"{kind}: bounds must be greater than 0 (got low {low!r})")
        if kind.startswith("log") and self.step is not None:
            raise ValueError(f"step does not go with {kind} (a logarithmic scale)")
        if kind == "int" and self.step is not None and self.step != int(self.step):
            raise ValueError(f"int: step must be a whole number (got {self.step!r})")
        return self

    @property
    def kind(self) -> str:
        for name in ("uniform", "loguniform", "logint", "choice"):
            if getattr(self, name) is not None:
                return name
        return "int"

    @property
    def values(self) -> list[Any]:
        return list(getattr(self, "int_" if self.kind == "int" else self.kind))

    @property
    def log(self) -> bool:
        return self.kind.startswith("log")

    def representatives(self) -> list[Any]:
        """Values this range can give, for checking against the notebook's default's type."""
        if self.kind in {"uniform", "loguniform"}:
            return [float(v) for v in self.values]
        return self.values

    def as_dict(self) -> dict[str, Any]:
        """The range as the grid file writes it (`{loguniform: [0.0001, 0.1]}`)."""
        out: dict[str, Any] = {self.kind: self.values}
        if self.step is not None:
            out["step"] = self.step
        return out


class SearchSpec(BaseModel):
    """Sample `trials` runs from `space` with a sampler (Optuna's), instead of listing values."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    trials: int = Field(ge=1)
    sampler: str = "tpe"
    seed: int | None = None
    space: dict[str, Distribution] = Field(default_factory=dict)

    @field_validator("sampler")
    @classmethod
    def _known_sampler(cls, value: str) -> str:
        if value not in SAMPLERS:
            raise ValueError(f"unknown sampler {value!r}; known: {', '.join(SAMPLERS)}")
        return value


SEARCH_FIXES = {
    "prune": ("write e.g. `prune: {metric: val_accuracy, mode: max, method: asha, min_epochs: 2}`"),
    "prune.metric": "name a per-epoch metric the runs log, e.g. val_accuracy or val_loss",
    "prune.mode": "use `max` (higher is better) or `min` (lower is better)",
    "prune.method": f"use one of: {', '.join(PRUNE_METHODS)}",
    "prune.min_epochs": "give a whole number of epochs, at least 1",
    "prune.reduction_factor": "give a whole number, at least 2 (3 keeps a third at each rung)",
    "prune.startup_runs": "give a whole number, 0 or more",
    "search": (
        "write e.g. `search: {trials: 20, sampler: tpe, seed: 0, space: "
        "{lr: {loguniform: [1.0e-4, 0.1]}}}`"
    ),
    "search.trials": "give how many runs to sample, a whole number, at least 1",
    "search.sampler": f"use one of: {', '.join(SAMPLERS)}",
    "search.seed": "give an integer, so the sampler proposes the same trials again",
    "search.space": (
        "map each parameter to one range, e.g. `lr: {loguniform: [1.0e-4, 0.1]}`, "
        "`units: {int: [32, 256]}`, `opt: {choice: [sgd, adam]}`"
    ),
}
