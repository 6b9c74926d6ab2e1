"""Grid expansion: a validated spec becomes a list of runs with stable ids and readable names."""

from __future__ import annotations

import hashlib
import io
import itertools
import json
import math
import tokenize
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import nbformat

from cvlab.backends import DEFAULT_BACKEND
from cvlab.errors import RunFilterError
from cvlab.grid.spec import SEED_PARAM, ValidatedGrid, parse_yaml
from cvlab.search.trial_link import TrialLink


@dataclass(frozen=True)
class RunPlan:
    """One run to execute: which notebook, with which parameters, under which id."""

    run_id: str
    name: str
    grid: str
    notebook: Path
    params: dict[str, Any] = field(hash=False)
    seed: int | None = None
    timeout: float | None = None
    kernel: str = "python3"
    # the notebook's code digest (`notebook_digest`): recorded with the run, so that a later
    # change of the code marks it stale (`cvlab.grid.staleness`)
    code_digest: str = ""
    backend: str = DEFAULT_BACKEND  # the Keras backend its kernel gets (KERAS_BACKEND)
    # a searched or pruned grid's run: its Optuna trial, given when the run is handed out
    trial: TrialLink | None = field(default=None, hash=False, compare=False)


# Tokens that cannot change what a cell does: comments, blank lines and line continuations.
_NOISE_TOKENS = frozenset({tokenize.COMMENT, tokenize.NL, tokenize.ENCODING, tokenize.ENDMARKER})
# Structure tokens whose text is spacing (an indent's width, a last line without its newline).
_MARKERS = {tokenize.INDENT: "<indent>", tokenize.DEDENT: "<dedent>", tokenize.NEWLINE: "<nl>"}


def normalized_code(source: str) -> str:
    """A code cell as what it runs: IPython magics and shell escapes turned into the calls
    IPython makes of them, then its tokens without comments, blank lines or spacing (a cell
    Python cannot tokenize: its non-blank lines, stripped, without whole-line comments)."""
    from IPython.core.inputtransformer2 import TransformerManager  # lazy: IPython

    try:
        python = TransformerManager().transform_cell(source)
    except (SyntaxError, ValueError):  # a magic IPython itself cannot read: keep the text
        python = source
    try:
        tokens = [
            _MARKERS.get(tok.type, tok.string)
            for tok in tokenize.generate_tokens(io.StringIO(python).readline)
            if tok.type not in _NOISE_TOKENS
            and (tok.type != tokenize.ERRORTOKEN or tok.string.strip())
        ]
    except (tokenize.TokenError, SyntaxError):
        lines = (line.strip() for line in python.splitlines())
        return "\n".join(line for line in lines if line and not line.startswith("#"))
    return json.dumps(tokens)


def notebook_digest(path: str | Path) -> str:
    """Hash of what a notebook's code cells run, in order (the `parameters` cell included):
    markdown, outputs, metadata, comments, blank lines and spacing do not change it, so fixing
    the explanation of a notebook leaves its runs' ids, and their results, as they were."""
    nb = nbformat.read(str(path), as_version=4)
    cells = [normalized_code(cell.source) for cell in nb.cells if cell.cell_type == "code"]
    return hashlib.sha256(json.dumps(cells).encode()).hexdigest()


def run_id_for(digest: str, params: dict[str, Any], backend: str = DEFAULT_BACKEND) -> str:
    """A stable id from the notebook's content, the run's full parameters and its Keras backend
    (named in the payload only when not the default: runs under TensorFlow keep their ids)."""
    content: dict[str, Any] = {"notebook": digest, "params": params}
    if backend != DEFAULT_BACKEND:
        content["backend"] = backend
    payload = json.dumps(content, sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:12]


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list | dict):
        return json.dumps(value, separators=(",", ":"))
    return str(value)


def readable_name(params: dict[str, Any], keys: list[str]) -> str:
    """`lr=0.01,opt=sgd` from the parameters that vary across the grid."""
    return ",".join(f"{k}={_short(params[k])}" for k in keys if k in params) or "default"


def run_count(grid: ValidatedGrid) -> int:
    """How many runs `expand` makes at most (before duplicates are dropped), without making
    them: a grid of many long lists must be refused before its product is built."""
    spec = grid.spec
    if spec.search is not None:
        return spec.search.trials
    combos = math.prod(len(v) for v in spec.grid.values()) if spec.grid else 0
    combos += len(spec.runs or [])
    return max(combos, 1) * max(len(spec.seeds or []), 1)


def expand(
    grid: ValidatedGrid, timeout: float | None = None, backend: str = DEFAULT_BACKEND
) -> list[RunPlan]:
    """Cartesian product of `grid`, then explicit `runs`, each repeated per seed; no duplicates;
    every run on Keras backend `backend`."""
    spec = grid.spec
    combos: list[dict[str, Any]] = []
    if spec.grid:
        keys = list(spec.grid)
        combos += [
            dict(zip(keys, values, strict=True))
            for values in itertools.product(*spec.grid.values())
        ]
    combos += [dict(run) for run in spec.runs or []]
    if not combos:
        combos = [{}]
    seeds: list[int | None] = list(spec.seeds) if spec.seeds else [None]

    full: list[tuple[dict[str, Any], int | None]] = []
    for combo in combos:
        for seed in seeds:
            params = {**spec.params, **combo}
            if seed is not None:
                params[SEED_PARAM] = seed
            full.append((params, seed))

    varied = _varied_keys([p for p, _ in full], order=[*spec.grid, *_run_keys(spec.runs)])
    if spec.name_by:  # the grid says which parameters name a run (e.g. an experiment number)
        varied = [*spec.name_by, *([SEED_PARAM] if SEED_PARAM in varied else [])]
    digest = notebook_digest(grid.notebook)
    plans: list[RunPlan] = []
    seen: set[str] = set()
    for params, seed in full:
        plan = make_plan(grid, params, varied, digest, timeout=timeout, backend=backend, seed=seed)
        if plan.run_id in seen:
            continue
        seen.add(plan.run_id)
        plans.append(plan)
    return plans


def make_plan(
    grid: ValidatedGrid,
    params: dict[str, Any],
    name_keys: list[str],
    digest: str,
    *,
    timeout: float | None = None,
    backend: str = DEFAULT_BACKEND,
    seed: int | None = None,
) -> RunPlan:
    """The run of `grid` with these full `params`, named by `name_keys` (a grid's expansion,
    or one trial a search sampled)."""
    return RunPlan(
        run_id=run_id_for(digest, params, backend),
        name=readable_name(params, name_keys),
        grid=grid.name,
        notebook=grid.notebook,
        params=params,
        seed=seed if seed is not None else params.get(SEED_PARAM),
        timeout=timeout if timeout is not None else grid.spec.timeout,
        kernel=grid.spec.kernel,
        code_digest=digest,
        backend=backend,
    )


def _run_keys(runs: list[dict[str, Any]] | None) -> list[str]:
    return [k for run in runs or [] for k in run]


def _varied_keys(all_params: list[dict[str, Any]], order: list[str]) -> list[str]:
    keys = list(dict.fromkeys([*order, SEED_PARAM, *(k for p in all_params for k in p)]))
    marker = object()
    return [
        k
        for k in keys
        if len({json.dumps(p.get(k, marker), sort_keys=True, default=str) for p in all_params}) > 1
    ]


def filter_plans(plans: list[RunPlan], only: list[str]) -> list[RunPlan]:
    """Keep runs matching every `KEY=VALUE` (values parsed as YAML; repeated keys mean OR)."""
    wanted: dict[str, list[Any]] = {}
    for item in only:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise RunFilterError(f"--only {item!r}: expected KEY=VALUE, e.g. --only lr=0.01")
        if not any(key in p.params for p in plans):
            known = sorted({k for p in plans for k in p.params})
            raise RunFilterError(
                f"--only {item!r}: no run has parameter {key!r}; known: {', '.join(known)}"
            )
        wanted.setdefault(key, []).append(parse_yaml(raw))

    def matches(plan: RunPlan) -> bool:
        return all(
            any(plan.params.get(k) == v or str(plan.params.get(k)) == str(v) for v in values)
            for k, values in wanted.items()
        )

    kept = [p for p in plans if matches(p)]
    if only and not kept:
        values = {k: sorted({str(p.params.get(k)) for p in plans}) for k in wanted}
        shown = "; ".join(f"{k}: {', '.join(v)}" for k, v in values.items())
        raise RunFilterError(f"--only {' '.join(only)}: no run matches; the grid has {shown}")
    return kept
