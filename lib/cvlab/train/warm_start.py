"""Warm start: a new run begins from the weights of an earlier one (`init_from="run:<run_id>"`),
copied layer by layer wherever the layer and its weight shapes match, so a changed head, input
size or class count still reuses the rest. The leaderboard shows the earlier run as the parent.

Layers are matched by name. Names Keras made up (`conv2d_17`: the class name and a counter that
depends on how many layers the process built before) are compared without that counter: the k-th
auto-named `Conv2D` of one model meets the k-th of the other, so a model rebuilt in another
process, or after other models, still finds its layers; a nested model (a backbone inside a
classifier) is entered the same way. Layers named by the builder (`labels`, `block1_conv`) must
carry the same name. Only weights are copied (not the optimizer's state): the new run compiles
and trains as usual.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cvlab.errors import WarmStartError
from cvlab.runs.lookup import AmbiguousRunError, RunModelNotFoundError, find_run_model

if TYPE_CHECKING:
    import keras

    from cvlab.runs.run import Run

__all__ = ["WarmStartError", "WarmStartReport", "copy_matching_weights", "init_from"]

_SHOWN = 8  # skipped layers named in the printed summary (all go to the run's note)


@dataclass
class WarmStartReport:
    """What `copy_matching_weights` did: layers copied, and those skipped with the reason."""

    copied: list[str] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (layer, why)
    copied_parameters: int = 0
    total_parameters: int = 0

    def summary(self, source: str) -> str:
        line = (
            f"init_from {source}: copied {len(self.copied)} of "
            f"{len(self.copied) + len(self.skipped)} layers with weights "
            f"({self.copied_parameters:,} of {self.total_parameters:,} parameters)"
        )
        if self.skipped:
            shown = "; ".join(f"{name} ({why})" for name, why in self.skipped[:_SHOWN])
            more = f"; and {len(self.skipped) - _SHOWN} more" if len(self.skipped) > _SHOWN else ""
            line += f"; skipped {len(self.skipped)}: {shown}{more}"
        return line


def _auto_base(layer: Any) -> str:
    """The name Keras gives a layer of this class before its counter (`Conv2D` -> `conv2d`),
    as keras/src/utils/naming.py's `to_snake_case` makes it."""
    name = re.sub(r"\W+", "", type(layer).__name__)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _is_auto_named(layer: Any) -> bool:
    return re.fullmatch(rf"{re.escape(_auto_base(layer))}(_\d+)?", layer.name) is not None


def _keyed_layers(model: Any, prefix: str = "") -> Iterator[tuple[str, Any]]:
    """(key, layer) for every layer holding weights, entering nested models (a backbone inside
    a classifier: `<backbone key>/<layer key>`)."""
    seen: Counter[str] = Counter()
    for layer in model.layers:
        if _is_auto_named(layer):
            base = _auto_base(layer)
            key = f"{prefix}{base}#{seen[base]}"
            seen[base] += 1
        else:
            key = prefix + layer.name
        if getattr(layer, "layers", None) and hasattr(layer, "get_layer"):  # a nested model
            yield from _keyed_layers(layer, key + "/")
        elif layer.weights:
            yield key, layer


def layer_keys(model: Any) -> dict[str, Any]:
    """Each layer that holds weights, by its matching key: its name, or for a name Keras made
    up, `<class>#<k>` (the k-th layer of that class in its model, in build order)."""
    return dict(_keyed_layers(model))


def _shapes(layer: Any) -> list[tuple[int, ...]]:
    return [tuple(int(d) for d in w.shape) for w in layer.weights]


def copy_matching_weights(source: Any, target: Any) -> WarmStartReport:
    """Copy `source`'s weights into `target`, layer by layer, where the layer key (see
    `layer_keys`) and every weight shape match; the rest of `target` keeps its initialisation."""
    if not getattr(target, "built", True) or not target.weights:
        raise WarmStartError(
            f"model {target.name!r} has no weights yet: build it (e.g. with keras.Input) before "
            "init_from"
        )
    sources = layer_keys(source)
    report = WarmStartReport()
    for key, layer in layer_keys(target).items():
        want = _shapes(layer)
        count = sum(math.prod(shape) for shape in want)
        report.total_parameters += count
        origin = sources.get(key)
        if origin is None:
            report.skipped.append((layer.name, "not in the earlier model"))
            continue
        have = _shapes(origin)
        if want != have:
            report.skipped.append((layer.name, f"shapes {have} there, {want} here"))
            continue
        layer.set_weights(origin.get_weights())
        report.copied.append(layer.name)
        report.copied_parameters += count
    return report


def _run_workspace(run: Any) -> Path | None:
    """The workspace holding `run` (`<root>/experiments/<grid>/<run_id>`), where a grid run
    with `--out` looks for its siblings first."""
    run_dir = Path(getattr(run, "run_dir", "") or "")
    if run_dir.parent.parent.name == "experiments":
        return run_dir.parent.parent.parent
    return None


def find_model_file(ref: str, *, run: Any = None, root: str | Path | None = None) -> Path:
    """The `.keras` file `ref` names: `run:<run_id>`, `run:<grid>/<run_id>`, or a path.
    Runs are looked for in `root`, else in the workspace of `run` and then the project's."""

    text = str(ref).strip()
    if not text.startswith("run:"):
        path = Path(text)
        if path.suffix == ".keras" and path.is_file():
            return path
        raise WarmStartError(
            f"init_from={ref!r}: expected 'run:<run_id>' (an earlier run's id, from the "
            "leaderboard) or an existing .keras file"
        )
    if root is not None:
        roots: list[Path | None] = [Path(root)]
    else:  # the run's own workspace (a grid's --out), then the project's
        own = _run_workspace(run)
        roots = [own, None] if own is not None else [None]
    errors: list[str] = []
    for where in roots:
        try:
            return find_run_model(text, where)
        except AmbiguousRunError as exc:
            raise WarmStartError(f"init_from={ref!r}: {exc}") from exc
        except (RunModelNotFoundError, ValueError) as exc:
            errors.append(str(exc))
    raise WarmStartError(f"init_from={ref!r}: " + " | ".join(dict.fromkeys(errors)))


def init_from(
    model: keras.Model,
    ref: str | None,
    *,
    run: Run | None = None,
    root: str | Path | None = None,
) -> keras.Model:
    """Start `model` from the weights of the earlier run `ref` (`"run:<run_id>"`,
    `"run:<grid>/<run_id>"` or a `.keras` path); returns `model`. `ref=None` changes nothing.

    Every layer whose key and weight shapes match gets the earlier weights; the others keep
    theirs (a new head for other classes, say). Prints how many layers were copied and which
    were skipped; with `run`, logs `init_from` (the leaderboard links the parent run),
    `init_from_copied` and `init_from_skipped` as parameters and the skipped layers as a note.
    Refuses (`WarmStartError`) when no layer matches at all.
    """
    if ref is None or (isinstance(ref, str) and not ref.strip()):
        return model
    import keras

    path = find_model_file(ref, run=run, root=root)
    source = keras.models.load_model(path, compile=False)
    report = copy_matching_weights(source, model)
    if not report.copied:
        theirs = ", ".join(list(layer_keys(source))[:_SHOWN])
        ours = ", ".join(list(layer_keys(model))[:_SHOWN])
        raise WarmStartError(
            f"init_from={ref!r}: no layer of {model.name!r} matches a layer of {path} by name and "
            f"weight shapes (there: {theirs}, ...; here: {ours}, ...). Warm-start from a run of "
            "the same architecture, or one that shares its layers."
        )
    summary = report.summary(str(ref))
    print(summary, flush=True)
    if run is not None:
        run.log_params(
            init_from=str(ref),
            init_from_copied=len(report.copied),
            init_from_skipped=len(report.skipped),
        )
        if len(report.skipped) > _SHOWN:
            summary += "; all skipped: " + ", ".join(name for name, _ in report.skipped)
        run.note(summary)
    return model
