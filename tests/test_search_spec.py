"""`search:` and `prune:` as written in a grid file: the spec models and their Optuna forms, a
seeded sampler's proposals, and every bad input of issue 20, each exiting 2 before anything
runs with an error that names the file and the field (and the known names, where there are)."""

from __future__ import annotations

from pathlib import Path

import optuna
import pytest
import yaml
from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution
from pydantic import ValidationError

from cvlab.grid.cli import main
from cvlab.search.space import make_sampler, param_value, to_distribution, to_distributions
from cvlab.search.spec import Distribution, PruneSpec, SearchSpec

from notebook_builder import write_notebook

optuna.logging.set_verbosity(optuna.logging.WARNING)

# ---- the models -----------------------------------------------------------------------------


def test_distributions_and_their_optuna_forms():
    lr = Distribution.model_validate({"loguniform": [1.0e-4, 0.1]})
    assert (lr.kind, lr.values, lr.log) == ("loguniform", [1.0e-4, 0.1], True)
    assert to_distribution(lr) == FloatDistribution(1.0e-4, 0.1, log=True)
    drop = Distribution.model_validate({"uniform": [0, 0.5], "step": 0.1})
    assert to_distribution(drop) == FloatDistribution(0.0, 0.5, step=0.1)
    blocks = Distribution.model_validate({"int": [0, 4]})
    assert (blocks.kind, blocks.log) == ("int", False)
    assert to_distribution(blocks) == IntDistribution(0, 4)
    units = Distribution.model_validate({"logint": [8, 64]})
    assert to_distribution(units) == IntDistribution(8, 64, log=True)
    assert units.as_dict() == {"logint": [8, 64]} and drop.as_dict() == {
        "uniform": [0.0, 0.5],
        "step": 0.1,
    }
    # a choice of lists goes to Optuna as JSON text and comes back as the list
    sizes = Distribution.model_validate({"choice": [[32, 32], [64, 64], "auto"]})
    optuna_form = to_distribution(sizes)
    assert isinstance(optuna_form, CategoricalDistribution)
    assert optuna_form.choices == ("[32, 32]", "[64, 64]", "auto")
    assert param_value(sizes, "[64, 64]") == [64, 64] and param_value(sizes, "auto") == "auto"
    assert param_value(blocks, 3.0) == 3 and isinstance(param_value(blocks, 3.0), int)


def test_prune_spec_defaults_and_aliases():
    spec = PruneSpec(metric="val_accuracy")
    assert (spec.method, spec.min_epochs, spec.reduction_factor, spec.mode) == (
        "asha",
        1,
        3,
        None,
    )
    assert PruneSpec(metric="m", method="successive_halving").method == "asha"
    assert PruneSpec(metric="m", method="sha").method == "asha"
    for bad in ({"metric": ""}, {"metric": "m", "reduction_factor": 1}, {"metric": "m", "x": 1}):
        with pytest.raises(ValidationError):
            PruneSpec.model_validate(bad)


SPACE = {
    "lr": {"loguniform": [1.0e-4, 0.1]},
    "batch_size": {"choice": [32, 64, 128]},
    "dropout": {"uniform": [0.0, 0.5]},
    "blocks": {"int": [0, 4]},
}


def _proposals(sampler_name: str, seed: int | None, n: int = 6) -> list[dict]:
    search = SearchSpec.model_validate(
        {"trials": n, "sampler": sampler_name, "seed": seed, "space": SPACE}
    )
    study = optuna.create_study(sampler=make_sampler(search, search.space))
    distributions = to_distributions(search.space)
    proposed = []
    for _ in range(n):
        trial = study.ask(distributions)
        proposed.append(trial.params)
        study.tell(trial, trial.params["dropout"])  # something for TPE to learn from
    return proposed


@pytest.mark.parametrize("sampler_name", ["random", "tpe", "cmaes", "gp", "grid"])
def test_a_seeded_sampler_proposes_the_same_trials_twice(sampler_name):
    if sampler_name == "gp":
        pytest.importorskip("torch")  # Optuna's Gaussian-process sampler computes in torch
    if sampler_name == "grid":  # walks a product of choices
        search = SearchSpec.model_validate(
            {"trials": 6, "sampler": "grid", "seed": 7, "space": {"a": {"choice": [1, 2, 3]}, "b": {"choice": ["x", "y"]}}}
        )  # fmt: skip
        orders = []
        for seed in (7, 7, 8):
            study = optuna.create_study(
                sampler=make_sampler(search.model_copy(update={"seed": seed}), search.space)
            )
            trials = [study.ask(to_distributions(search.space)) for _ in range(6)]
            orders.append([(t.params["a"], t.params["b"]) for t in trials])
        assert orders[0] == orders[1] != orders[2]
        assert len(set(orders[0])) == 6  # each point once
        return
    first = _proposals(sampler_name, seed=7)
    assert _proposals(sampler_name, seed=7) == first
    assert _proposals(sampler_name, seed=8) != first  # the seed is what makes them equal
    assert len({tuple(sorted(p.items())) for p in first}) == len(first)


# ---- bad input: exit 2, naming the field ----------------------------------------------------

# A notebook with an epoch count (for min_epochs) and a seed (for seeds:); it trains nothing.
CELLS = [
    ("code", "run_dir = None\nseed = 0\nx = 1\nlr = 0.1\nepochs = 2\nopt = 'sgd'\n"),
    (
        "code",
        "import cvlab\nrun = cvlab.runs.start(run_dir)\n"
        "run.log_metrics(score=float(x))\nrun.finish()",
    ),
]
SEARCH = {"trials": 2, "sampler": "tpe", "seed": 0, "space": {"lr": {"loguniform": [1e-4, 0.1]}}}


def _spec(**overrides) -> dict:
    return {"notebook": "nb.ipynb", "rank_by": {"metric": "score", "mode": "max"}, **overrides}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("search-bad-input")
    write_notebook(CELLS, root / "nb.ipynb")
    return root


@pytest.fixture
def bad(project, capsys):
    """Run the CLI on a grid file; check exit 2, the file named, nothing run; return stderr."""
    counter = iter(range(1000))

    def _run(spec: dict) -> str:
        path = project / f"bad{next(counter)}.yaml"
        path.write_text(yaml.safe_dump(spec, sort_keys=False))
        out = project / "out"
        capsys.readouterr()
        code = main([str(path), "--out", str(out), "--quiet", "--no-prewarm"])
        err = capsys.readouterr().err
        assert code == 2, err
        assert path.name in err and "Fix:" in err and "Nothing was run." in err
        assert not (out / "experiments").exists() and not (out / "logs" / "optuna.db").exists()
        return err

    return _run


def _space(**space) -> dict:
    return {**SEARCH, "space": space}


@pytest.mark.parametrize(
    ("spec", "field", "words"),
    [
        (
            _spec(search={**SEARCH, "sampler": "tpee"}),
            "search.sampler",
            ["unknown sampler 'tpee'", "random, tpe, cmaes, gp, grid"],
        ),
        (
            _spec(grid={"x": [1]}, prune={"metric": "loss", "method": "hyperbandd"}),
            "prune.method",
            ["unknown pruning method 'hyperbandd'", "asha, hyperband, median"],
        ),
        (
            _spec(search=_space(lr={"normal": [0.0, 1.0]})),
            "search.space.lr",
            ["unknown distribution 'normal'", "uniform, loguniform, int, logint, choice"],
        ),
        (
            _spec(search=_space(lr={"uniform": [0.5, 0.1]})),
            "search.space.lr",
            ["low 0.5 is greater than high 0.1"],
        ),
        (
            _spec(search=_space(x={"int": [4, 1]})),
            "search.space.x",
            ["low 4 is greater than high 1"],
        ),
        (
            _spec(search=_space(lr={"loguniform": [0.0, 0.1]})),
            "search.space.lr",
            ["greater than 0"],
        ),
        (
            _spec(search=_space(x={"logint": [-2, 4]})),
            "search.space.x",
            ["greater than 0"],
        ),
        (
            _spec(search=_space(x={"uniform": [0.5, 2.0]})),
            "search.space.x",
            ["is a float", "notebook default is 1 (int)"],
        ),
        (
            _spec(search=_space(opt={"choice": ["sgd", 3]})),
            "search.space.opt",
            ["3 is a", "notebook default is 'sgd' (str)"],
        ),
        (_spec(search={**SEARCH, "trials": 0}), "search.trials", ["at least 1"]),
        (
            _spec(grid={"x": [1]}, prune={"metric": "loss", "min_epochs": 3}),
            "prune.min_epochs",
            ["min_epochs 3 is more than the runs' epochs (2)"],
        ),
        (
            _spec(params={"epochs": 5}, grid={"x": [1]}, prune={"metric": "loss", "min_epochs": 6}),
            "prune.min_epochs",
            ["(5)"],
        ),
        (
            _spec(grid={"epochs": [1, 4]}, prune={"metric": "loss", "min_epochs": 5}),
            "prune.min_epochs",
            ["(4)", "no run would ever be cut"],
        ),
        (
            _spec(search=SEARCH, seeds=[1, 2]),
            "seeds",
            ["`seeds` with `search`", "ambiguous"],
        ),
        (_spec(search=SEARCH, runs=[{"x": 2}]), "runs", ["a search samples its own runs"]),
        (
            _spec(search={**SEARCH, "sampler": "grid"}),
            "search.sampler",
            ["the grid sampler walks a product of choices, but lr is a range"],
        ),
        (
            _spec(grid={"x": [1]}, prune={"metric": "loss", "patience": 3}),
            "prune.patience",
            ["unknown key 'patience'", "min_epochs"],
        ),
        (
            _spec(search={**SEARCH, "samplr": "random"}),
            "search.samplr",
            ["unknown key 'samplr'", "sampler"],
        ),
        (
            _spec(search=_space(lr=[0.01, 0.1])),
            "search.space.lr",
            ["is not a distribution"],
        ),
        (
            _spec(search=_space(depth={"int": [1, 3]})),
            "search.space.depth",
            ["not defined in the parameters cell"],
        ),
        (
            _spec(search=SEARCH, prune={"metric": "loss", "mode": "min"}),
            "prune.mode",
            ["differs from rank_by.mode"],
        ),
    ],
    ids=[
        "unknown-sampler",
        "unknown-prune-method",
        "unknown-distribution",
        "low-above-high",
        "int-low-above-high",
        "loguniform-zero",
        "logint-negative",
        "uniform-over-int-default",
        "choice-type-unlike-default",
        "no-trials",
        "min-epochs-above-default-epochs",
        "min-epochs-above-params-epochs",
        "min-epochs-above-every-grid-epochs",
        "search-and-seeds",
        "search-and-runs",
        "grid-sampler-over-a-range",
        "unknown-prune-key",
        "unknown-search-key",
        "space-entry-not-a-distribution",
        "searched-parameter-not-in-notebook",
        "prune-mode-against-rank-by",
    ],
)
def test_bad_search_or_prune_exits_2_naming_the_field(bad, spec, field, words):
    err = bad(spec)
    assert f": {field}:" in err, err
    for word in words:
        assert word in err, err


def test_min_epochs_between_the_runs_epoch_counts_is_valid(project, capsys):
    """Runs of 1 and 4 epochs, cut from epoch 2: the 4-epoch ones can be cut, so it is valid."""
    path = project / "mixed_epochs.yaml"
    spec = _spec(grid={"epochs": [1, 4]}, prune={"metric": "loss", "min_epochs": 2})
    path.write_text(yaml.safe_dump(spec))
    code = main([str(path), "--out", str(project / "dry"), "--quiet", "--dry-run"])
    assert code == 0, capsys.readouterr().err
