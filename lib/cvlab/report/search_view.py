"""A searched or pruned grid on the page: the best value so far against trials and against epochs
spent, each parameter's importance, and which parameters have numeric axes (logarithmic where the
space is log).

The space comes from the grid file the store registered (`spec_path`): its `search:` and `grid:`
read with the foundations' parsers (report may not import cvlab.grid). Importance is Optuna's
(`optuna.importance.get_param_importances`) on an in-memory study built from the run records, so
the page needs neither the study file nor a running driver.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cvlab.config_yaml import parse_yaml
from cvlab.runs.record import RunRecord
from cvlab.search.spec import Distribution, PruneSpec, SearchSpec

SEARCH_FIGURE = "search.png"
# fewer complete trials than this: the page says importance cannot be computed yet
IMPORTANCE_MIN_TRIALS = 4
# a `choice` of positive numbers spanning this ratio or more is drawn on a logarithmic axis
LOG_SPAN = 100.0
CATEGORY, LINEAR, LOG = "category", "linear", "log"


@dataclass(frozen=True)
class GridSpace:
    """What the page needs of a grid file: its space (`grid:` joined with `search.space`, as the
    driver builds it), its search and prune blocks, and why the space is unknown when it is."""

    space: dict[str, Distribution] = field(default_factory=dict)
    search: SearchSpec | None = None
    prune: PruneSpec | None = None
    note: str = ""

    @property
    def uses_study(self) -> bool:
        return self.search is not None or self.prune is not None


def read_grid_space(spec_path: str | None, root: Path) -> GridSpace | None:
    """The grid file at `spec_path` (relative to the workspace `root`, as the store registers
    it); None when the store names none (a single run), a GridSpace with a `note` when it
    cannot be read (moved, edited into something invalid)."""
    if not spec_path:
        return None
    path = Path(spec_path)
    path = path if path.is_absolute() else root / path
    try:
        raw = parse_yaml(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        return GridSpace(note=f"{path}: cannot read the grid file ({exc})")
    except yaml.YAMLError as exc:  # the page says so; it never fails over a grid file
        return GridSpace(note=f"{path}: cannot parse the grid file ({exc})")
    if not isinstance(raw, dict):
        return GridSpace(note=f"{path}: not a grid file (no mapping at the top)")
    grid = raw.get("grid") if isinstance(raw.get("grid"), dict) else {}
    choices = {
        name: Distribution(choice=list(values))
        for name, values in grid.items()
        if isinstance(values, list) and values
    }  # as cvlab.search.space.grid_space builds it, without importing Optuna for it
    try:
        search = SearchSpec.model_validate(raw["search"]) if raw.get("search") else None
        prune = PruneSpec.model_validate(raw["prune"]) if raw.get("prune") else None
    except ValidationError as exc:
        return GridSpace(note=f"{path}: its search or prune block is not valid ({exc})")
    space = {**choices, **(search.space if search else {})}
    return GridSpace(space=space, search=search, prune=prune)


def _number(text: Any) -> float | None:
    if isinstance(text, bool):
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None


def axis_scale(dist: Distribution | None) -> str:
    """How a parameter's axis is drawn: `log` for loguniform/logint (and a choice of positive
    numbers spanning two decades, like learning rates), `linear` for uniform/int and other
    numeric choices, `category` for everything else (text, mixed values, unknown)."""
    if dist is None:
        return CATEGORY
    if dist.kind in {"loguniform", "logint"}:
        return LOG
    if dist.kind in {"uniform", "int"}:
        return LINEAR
    numbers = [_number(v) for v in dist.values]
    if len(numbers) < 2 or any(n is None for n in numbers):
        return CATEGORY
    low, high = min(numbers), max(numbers)  # type: ignore[type-var]
    return LOG if low > 0 and high / low >= LOG_SPAN else LINEAR


def axis_scales(space: GridSpace | None) -> dict[str, str]:
    """Numeric axes of a searched or pruned grid's parameters; other grids keep categories."""
    if space is None or not space.uses_study:
        return {}
    return {name: axis_scale(dist) for name, dist in space.space.items()}


def _study_runs(records: list[RunRecord]) -> tuple[list[RunRecord], str | None]:
    """The runs of the grid's current study (the latest run's), in trial order; a grid whose
    runs have no trial link (run before it pruned): all its runs, in start order."""
    linked = [r for r in records if r.trial is not None]
    if not linked:
        return sorted(records, key=lambda r: (r.started_at is None, r.started_at, r.run_id)), None
    latest = max(linked, key=lambda r: (r.started_at is not None, r.started_at, r.trial.number))
    study = latest.trial.study
    members = [r for r in linked if r.trial.study == study]
    return sorted(members, key=lambda r: r.trial.number), study


def _better(value: float, than: float | None, mode: str | None) -> bool:
    return than is None or (value < than if mode == "min" else value > than)


def progress(
    members: list[RunRecord], ranks: dict[str, float | None], mode: str | None
) -> list[dict[str, Any]]:
    """One entry per trial, in trial order: its value (ok runs with a rank value only, as the
    study is told), epochs trained, cumulative epochs spent, and the best value so far."""
    best: float | None = None
    spent = 0
    out = []
    for position, rec in enumerate(members, start=1):
        key = f"{rec.grid}/{rec.run_id}"
        value = ranks.get(key) if rec.status == "ok" else None
        spent += int(rec.epochs_completed or 0)
        if value is not None and _better(value, best, mode):
            best = value
        out.append(
            {
                "key": key,
                "name": rec.name or rec.run_id,
                "trial": position,
                "number": rec.trial.number if rec.trial is not None else None,
                "status": rec.status,
                "value": value,
                "epochs": int(rec.epochs_completed or 0),
                "spent": spent,
                "best": best,
            }
        )
    return out


def _trial_params(rec: RunRecord, distributions: dict[str, Any]) -> dict[str, Any] | None:
    """The record's values of the space's parameters, as Optuna holds them; None when one lies
    outside its distribution (a run of an earlier space)."""
    from optuna.distributions import CategoricalDistribution, IntDistribution  # lazy: optuna

    from cvlab.search.space import categorical_value  # lazy: optuna

    params, dists = {}, {}
    for name, dist in distributions.items():
        if name not in rec.params:
            continue
        value = rec.params[name]
        if isinstance(dist, CategoricalDistribution):
            value = categorical_value(value)
            if value not in dist.choices:
                return None
        else:
            number = _number(value)
            if number is None or not dist.low <= number <= dist.high:
                return None
            value = int(number) if isinstance(dist, IntDistribution) else number
        params[name], dists[name] = value, dist
    return {"params": params, "distributions": dists}


def importance(
    members: list[RunRecord],
    ranks: dict[str, float | None],
    space: GridSpace | None,
    mode: str | None,
    metric: str | None,
) -> dict[str, Any]:
    """Each parameter's importance for the rank metric (fANOVA, Optuna's default evaluator, seeded),
    as `{"params": [[name, importance], ...], "evaluator", "trials"}` highest first; or
    `{"note": why not}` when it cannot be computed (too few complete trials, no space)."""
    if space is None or not space.space:
        why = space.note if space is not None and space.note else "the grid file names no space"
        return {"note": f"Parameter importance needs the grid's space: {why}."}
    complete = [
        r for r in members if r.status == "ok" and ranks.get(f"{r.grid}/{r.run_id}") is not None
    ]
    if len(complete) < IMPORTANCE_MIN_TRIALS:
        return {
            "note": f"Parameter importance needs at least {IMPORTANCE_MIN_TRIALS} complete trials "
            f"with a value of {metric or 'the rank metric'}; this grid has {len(complete)} so far."
        }
    import optuna  # lazy: optuna

    from cvlab.search.space import to_distributions  # lazy: optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = to_distributions(space.space)
    study = optuna.create_study(direction="minimize" if mode == "min" else "maximize")
    for rec in complete:
        fitted = _trial_params(rec, distributions)
        if fitted is None or not fitted["params"]:
            continue
        study.add_trial(
            optuna.trial.create_trial(
                value=float(ranks[f"{rec.grid}/{rec.run_id}"]),  # type: ignore[arg-type]
                state=optuna.trial.TrialState.COMPLETE,
                **fitted,
            )
        )
    used = len(study.trials)
    if used < IMPORTANCE_MIN_TRIALS:
        return {
            "note": f"Parameter importance needs at least {IMPORTANCE_MIN_TRIALS} complete trials "
            f"inside the grid's space; {used} of this grid's are."
        }
    try:
        evaluator, name = optuna.importance.FanovaImportanceEvaluator(seed=0), "fANOVA"
    except ImportError:  # fANOVA needs scikit-learn; PED-ANOVA is Optuna's own
        evaluator, name = optuna.importance.PedAnovaImportanceEvaluator(), "PED-ANOVA"
    try:
        found = optuna.importance.get_param_importances(study, evaluator=evaluator)
    except (ValueError, RuntimeError) as exc:
        return {"note": f"Parameter importance could not be computed: {exc}"}
    ordered = sorted(found.items(), key=lambda item: (-item[1], item[0]))
    return {
        "params": [[param, float(value)] for param, value in ordered],
        "evaluator": name,
        "trials": used,
    }


def search_entry(
    records: list[RunRecord],
    ranks: dict[str, float | None],
    space: GridSpace | None,
    mode: str | None,
    metric: str | None,
) -> dict[str, Any] | None:
    """Everything the page shows of one grid's search or pruning; None for a plain grid (no run
    with a trial link, and a grid file without `search:` or `prune:`)."""
    if not any(r.trial is not None for r in records) and not (space and space.uses_study):
        return None
    members, study = _study_runs(records)
    trials = progress(members, ranks, mode)
    statuses = [t["status"] for t in trials]
    final = next((t for t in reversed(trials) if t["best"] is not None), None)
    reached = (
        next((t for t in trials if t["value"] is not None and t["value"] == final["best"]), None)
        if final
        else None
    )
    how = []
    if space is not None and space.search is not None:
        how.append(f"{space.search.sampler} search of {space.search.trials} trials")
    if space is not None and space.prune is not None:
        prune = space.prune
        how.append(f"pruned by {prune.method} on {prune.metric} from epoch {prune.min_epochs}")
    return {
        "study": study,
        # the same study in Optuna's own dashboard, run in the output folder: the study file is
        # always logs/optuna.db there (the runs' own links may name a moved folder, or a Dask
        # run's gRPC address, which is closed once the grid ends)
        "dashboard": "optuna-dashboard sqlite:///logs/optuna.db" if study else "",
        "how": ", ".join(how),
        "metric": metric,
        "mode": mode,
        "trials": trials,
        "complete": sum(t["value"] is not None for t in trials),
        "pruned": statuses.count("pruned"),
        "failed": sum(s in ("failed", "timeout") for s in statuses),
        "epochs": trials[-1]["spent"] if trials else 0,
        "best": final["best"] if final else None,
        "best_at": {"trial": reached["trial"], "spent": reached["spent"], "key": reached["key"]}
        if reached
        else None,
        "left_out": len(records) - len(members),  # runs of earlier studies of the grid
        "importance": importance(members, ranks, space, mode, metric),
        "scales": axis_scales(space),
        "note": space.note if space is not None else "",
    }


def grid_spaces(grids: dict[str, dict[str, Any]], root: Path) -> dict[str, GridSpace | None]:
    """Each registered grid's space, from the grid file the store names (`LeaderboardStore.grids`)."""
    return {name: read_grid_space(info.get("spec_path"), root) for name, info in grids.items()}


def pruned_text(epoch: int | None, rung: int | None) -> str:
    """How a pruned run reads on the page: `stopped after epoch 2 (rung 0)`."""
    text = "stopped" if epoch is None else f"stopped after epoch {epoch}"
    return text + ("" if rung is None else f" (rung {rung})")
