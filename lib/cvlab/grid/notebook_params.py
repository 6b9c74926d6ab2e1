"""What a notebook's `parameters` cell defines and declares, read with papermill's inspector."""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cvlab.param_types import KINDS

_WORD = re.compile(r"\w+")


@dataclass
class NotebookParameter:
    """A variable defined in a notebook's `parameters` cell."""

    name: str
    default_source: str
    type_name: str

    @property
    def default(self) -> Any:
        """The default as a Python value, or `...` when it is not a literal."""
        try:
            return ast.literal_eval(self.default_source)
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            return ...

    @property
    def declared_kind(self) -> str | None:
        """The registry the annotation declares (`net: ModelName = ...` -> "model"), or None.
        `Optional[ModelName]` and the quoted `"ModelName"` declare the same."""
        for word in _WORD.findall(self.type_name or ""):
            if word in KINDS:
                return KINDS[word]
        return None


def read_notebook_parameters(notebook: Path) -> dict[str, NotebookParameter] | None:
    """The variables of the notebook's `parameters` cell (via papermill), or None if it has none."""
    import papermill  # lazy: papermill

    inspected = papermill.inspect_notebook(str(notebook))
    if not inspected:
        return None
    return {
        name: NotebookParameter(name, str(info.get("default")), str(info.get("inferred_type_name")))
        for name, info in inspected.items()
    }
