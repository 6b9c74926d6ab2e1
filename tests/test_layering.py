"""The package's import graph runs one way (docs/architecture.md, "Layers"): a module imports only
from its own layer or lower ones, and `cvlab` imports sit at module top unless they keep a heavy
third-party import lazy, said on the line (`# lazy: keras`)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

LIB = Path(__file__).resolve().parents[1] / "lib"
PACKAGE = LIB / "cvlab"

# Lowest first. A module's layer is the longest prefix of its dotted name listed here.
LAYERS: list[tuple[str, tuple[str, ...]]] = [
    (
        "foundations",
        (
            "cvlab.errors",
            "cvlab.atomic_io",
            "cvlab.workspace",
            "cvlab.registry",
            "cvlab.image_prep",
            "cvlab.config_yaml",
            "cvlab.figures",
            "cvlab.param_types",
            "cvlab.rank_accuracy",
            "cvlab.backends",
            "cvlab.search",
        ),
    ),
    ("runs", ("cvlab.runs",)),
    ("data and models", ("cvlab.data", "cvlab.models")),
    ("train", ("cvlab.train",)),
    ("chapters", ("cvlab.transfer", "cvlab.detection", "cvlab.generative")),
    ("report", ("cvlab.report",)),
    ("grid", ("cvlab.grid",)),
    ("command lines", ("cvlab.cli", "cvlab.data.__main__", "cvlab.grid.cli", "cvlab")),
]
RANK = {name: rank for rank, (name, _) in enumerate(LAYERS)}


def layer_of(module: str) -> str:
    best, length = None, -1
    for name, prefixes in LAYERS:
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > length:
                best, length = name, len(prefix)
    if best is None:
        raise AssertionError(f"{module}: in no layer; add it to LAYERS and docs/architecture.md")
    return best


def module_name(path: Path) -> str:
    parts = list(path.relative_to(LIB).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def cvlab_imports(path: Path) -> list[tuple[str, int, bool]]:
    """(imported cvlab module, line, inside a function) for every import in `path`."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    module = module_name(path)
    found: list[tuple[str, int, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            if isinstance(child, ast.Import):
                found.extend((a.name, child.lineno, in_function) for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                target = _resolve(child, module, path.name == "__init__.py")
                # `from cvlab.x import y` may name a submodule y: count it as cvlab.x.y if so
                for alias in child.names:
                    sub = f"{target}.{alias.name}"
                    exists = (LIB / Path(*sub.split("."))).with_suffix(".py").is_file() or (
                        LIB / Path(*sub.split(".")) / "__init__.py"
                    ).is_file()
                    found.append((sub if exists else target, child.lineno, in_function))
            visit(child, nested)

    visit(tree, False)
    unique = dict.fromkeys(found)  # one entry per name and line, in order
    return [(name, line, inner) for name, line, inner in unique if name.split(".")[0] == "cvlab"]


def type_checking_lines(path: Path) -> set[int]:
    """Lines under `if TYPE_CHECKING:` (annotations only, never executed)."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for child in node.body:
                lines.update(range(child.lineno, (child.end_lineno or child.lineno) + 1))
    return lines


SOURCES = sorted(PACKAGE.rglob("*.py"))


def test_every_module_has_a_layer():
    for path in SOURCES:
        layer_of(module_name(path))


def test_no_module_imports_a_higher_layer():
    problems = []
    for path in SOURCES:
        here = module_name(path)
        skip = type_checking_lines(path)
        for target, line, _ in cvlab_imports(path):
            if line in skip or target == "cvlab":
                continue
            if RANK[layer_of(target)] > RANK[layer_of(here)]:
                problems.append(
                    f"{path.relative_to(LIB)}:{line}: {here} ({layer_of(here)}) imports "
                    f"{target} ({layer_of(target)})"
                )
    assert not problems, "imports that run back up:\n" + "\n".join(problems)


def test_function_level_cvlab_imports_say_why():
    problems = []
    for path in SOURCES:
        text = path.read_text(encoding="utf-8").splitlines()
        lines = sorted({line for _, line, inner in cvlab_imports(path) if inner})
        for line in lines:
            if "# lazy:" not in text[line - 1]:
                problems.append(f"{path.relative_to(LIB)}:{line}: `{text[line - 1].strip()}`")
    assert not problems, (
        "cvlab imports inside functions without a reason (move them to the top, or keep one "
        "lazy for a heavy third-party import and say which, e.g. `# lazy: keras`):\n"
        + "\n".join(problems)
    )


@pytest.mark.parametrize(
    ("here", "imported", "allowed"),
    [
        ("cvlab.data.cache", "cvlab.runs.run", True),
        ("cvlab.train.ensembles", "cvlab.report", False),
    ],
)
def test_the_rule_itself(here, imported, allowed):
    # the checker's own arithmetic: data sits above runs, train below report
    assert (RANK[layer_of(imported)] <= RANK[layer_of(here)]) is allowed
