"""What a warm kernel imports before its run: the notebook's own top-level import statements
(plus the grid's `prewarm:` modules), run in a scratch namespace so no user name is bound."""

from __future__ import annotations

import ast
import json
from dataclasses import dataclass
from pathlib import Path

import nbformat

# Statements that change how later imports resolve (environment, search path, working folder,
# installed packages): importing what follows them ahead of time could load a different module
# or configure it differently (e.g. KERAS_BACKEND set in a cell), so collecting stops there.
# Reading these (`os.environ.get`, `"x" in sys.modules`) is harmless; changing them is not.
_MUTABLE_STATE = {"os.environ", "environ", "sys.path", "sys.modules", "sys.meta_path"}
_MUTATORS = {
    "append", "insert", "extend", "remove", "pop", "popitem", "update", "setdefault", "clear",
}  # fmt: skip
_CHANGING_CALLS = {
    "os.putenv", "os.unsetenv", "os.chdir", "site.addsitedir", "importlib.reload",
    "importlib.invalidate_caches", "putenv", "unsetenv", "chdir", "addsitedir", "reload",
}  # fmt: skip
# IPython magics and shell escapes that can do the same (`%env`, `%cd`, `%pip install`, `!...`).
_MAGIC_CHANGERS = {
    "env", "set_env", "cd", "pip", "conda", "mamba", "run", "load", "autoreload", "bash", "sh",
    "script", "system",
}  # fmt: skip

# The marker line the prewarm code prints, followed by the JSON list of imports that failed.
RESULT_MARKER = "__cvlab_prewarm__:"
_KERNEL_SCRIPT = """\
import json
failed = []
for statement in STATEMENTS:
    try:
        exec(statement, {"__name__": "__cvlab_prewarm__"})
    except Exception as exc:  # the notebook meets the same error at its own import line
        failed.append(f"{statement} ({type(exc).__name__}: {exc})")
print(MARKER + json.dumps(failed))
"""


@dataclass(frozen=True)
class ImportScan:
    """The import statements a notebook runs first, and where (if anywhere) collecting stopped."""

    statements: tuple[str, ...]
    stopped_at: str | None = None


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _magic_call(node: ast.AST) -> str | None:
    """The magic or shell escape that IPython turned into `get_ipython().<method>(...)`, if any."""
    if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
        return None
    owner = node.func.value
    if not (
        isinstance(owner, ast.Call)
        and isinstance(owner.func, ast.Name)
        and owner.func.id == "get_ipython"
    ):
        return None
    if node.func.attr in {"system", "getoutput"}:
        return "!"
    if node.func.attr in {"run_line_magic", "run_cell_magic"} and node.args:
        magic = node.args[0]
        if isinstance(magic, ast.Constant) and isinstance(magic.value, str):
            return f"%{magic.value}"
    return None


def _changes_resolution(statement: ast.stmt) -> str | None:
    """What in `statement` may change how later imports resolve, or None."""
    for node in ast.walk(statement):
        stores = isinstance(getattr(node, "ctx", None), ast.Store | ast.Del)
        if isinstance(node, ast.Subscript) and stores and _dotted(node.value) in _MUTABLE_STATE:
            return _dotted(node.value)
        if (
            isinstance(node, ast.Attribute | ast.Name)
            and stores
            and _dotted(node) in _MUTABLE_STATE
        ):
            return _dotted(node)
        if isinstance(node, ast.Call):
            func = node.func
            if _dotted(func) in _CHANGING_CALLS:
                return _dotted(func)
            if (
                isinstance(func, ast.Attribute)
                and func.attr in _MUTATORS
                and _dotted(func.value) in _MUTABLE_STATE
            ):
                return _dotted(func)
        magic = _magic_call(node)
        if magic == "!":
            return "a shell command"
        if magic is not None and magic[1:] in _MAGIC_CHANGERS:
            return magic
    return None


def _cell_tree(source: str) -> ast.Module | None:
    """A code cell as Python (IPython magics turned into calls), or None if it does not parse."""
    from IPython.core.inputtransformer2 import TransformerManager

    try:
        return ast.parse(TransformerManager().transform_cell(source))
    except SyntaxError:
        return None


def scan_notebook_imports(notebook: str | Path) -> ImportScan:
    """The top-level `import` / `from ... import` statements of the notebook's code cells, in
    order, up to the first statement that could change how they resolve."""
    nb = nbformat.read(str(notebook), as_version=4)
    statements: list[str] = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type != "code":
            continue
        tree = _cell_tree(cell.source)
        if tree is None:
            continue  # the notebook reports its own syntax error when the run reaches it
        for statement in tree.body:
            is_import = isinstance(statement, ast.Import) or (
                isinstance(statement, ast.ImportFrom)
                and statement.level == 0
                and statement.module != "__future__"
            )
            if is_import:
                text = ast.unparse(statement)
                if text not in statements:
                    statements.append(text)
                continue
            changer = _changes_resolution(statement)
            if changer is not None:
                where = f"cell {index + 1}, line {statement.lineno} ({changer})"
                return ImportScan(tuple(statements), stopped_at=where)
    return ImportScan(tuple(statements))


def prewarm_statements(
    notebook: str | Path, modules: list[str] | tuple[str, ...] = ()
) -> ImportScan:
    """The notebook's import statements, then `import <module>` for each extra module."""
    scan = scan_notebook_imports(notebook)
    statements = list(scan.statements)
    for module in modules:
        statement = f"import {module}"
        if statement not in statements:
            statements.append(statement)
    return ImportScan(tuple(statements), scan.stopped_at)


def kernel_code(statements: tuple[str, ...]) -> str:
    """One expression for the kernel: run `statements` in a throwaway namespace (so the user's
    namespace stays exactly a cold kernel's) and print which failed after RESULT_MARKER."""
    namespace = {"STATEMENTS": list(statements), "MARKER": RESULT_MARKER}
    return f"exec({_KERNEL_SCRIPT!r}, {namespace!r})"


def parse_result(output: str) -> tuple[str, list[str]]:
    """Split the kernel's output into what the imports printed and the list of failures."""
    printed, failed = [], []
    for line in output.splitlines(keepends=True):
        if line.startswith(RESULT_MARKER):
            failed = json.loads(line[len(RESULT_MARKER) :])
        else:
            printed.append(line)
    return "".join(printed), failed
