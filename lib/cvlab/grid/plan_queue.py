"""The runs of one call, handed out one at a time: `run_plans` asks for the next when a slot is
free, so a search (cvlab.grid.study.StudyPlans) samples each trial only then."""

from __future__ import annotations

from cvlab.grid.expand import RunPlan
from cvlab.runs.record import RunRecord


class PlanQueue:
    """The runs of one call, handed out one at a time (`run_plans` asks when a slot is free)."""

    def __init__(self, plans: list[RunPlan]):
        self._queue = list(reversed(plans))
        self.handed: list[RunPlan] = []

    def pop(self) -> RunPlan | None:
        if not self._queue:
            return None
        plan = self._prepare(self._queue.pop())
        self.handed.append(plan)
        return plan

    def peek(self) -> RunPlan | None:
        """The next run's plan if known (it picks the spare kernel to warm), else None."""
        return self._queue[-1] if self._queue else None

    def _prepare(self, plan: RunPlan) -> RunPlan:
        return plan

    def done(self, record: RunRecord) -> None:
        """A run ended (called before the next is handed out)."""
