"""The result beside the book: one call that logs a run's number next to the book's and shows the
two as a Markdown table, every text cell escaped (values come from grid files: no markup, no
script reaches the notebook or its `run.html`).

    beside_the_book(run, metrics["rank1"], book_value=book_value, book_source=book_source)

logs `book_value` and `gap_to_book` (measured − book) when the book gives a number, nothing when
`book_value` is None, and displays

    |                    | test accuracy |
    |---|---|
    | this run           | 91.20% |
    | the book: <source> | 93.58% |
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cvlab.errors import BookTableError

if TYPE_CHECKING:
    from cvlab.runs.run import Run

__all__ = ["BookComparison", "beside_the_book", "escape_markdown", "markdown_code"]

# Characters Markdown (CommonMark, and the Jupyter/nbconvert renderers) would read as markup in a
# table cell: emphasis, code, links, headings, math, table pipes, escapes. No library offers a
# Markdown escape (markdown-it and mistune only escape HTML), hence this one line.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]|$~])")

Cell = float | int | str | None


def escape_markdown(text: Any) -> str:
    """`text` as literal Markdown: HTML special characters as entities (`<img ...>` shows as text,
    never as an element), Markdown punctuation backslash-escaped, line breaks as spaces (a table
    row is one line)."""
    escaped = html.escape(str(text), quote=True)
    escaped = _MARKDOWN_SPECIAL.sub(r"\\\1", escaped)
    return " ".join(escaped.splitlines())


def markdown_code(text: Any) -> str:
    """`text` as a Markdown code span (outside tables) that no backtick in it can close: the
    fence is one longer than its longest run of backticks. Code spans show HTML as text."""
    line = " ".join(str(text).splitlines())
    longest = max((len(run) for run in re.findall(r"`+", line)), default=0)
    fence = "`" * (longest + 1)
    pad = " " if line.startswith("`") or line.endswith("`") else ""
    return f"{fence}{pad}{line}{pad}{fence}"


def _cell(value: Cell, fmt: str) -> str:
    if value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return escape_markdown(value)
    if isinstance(value, float) and not math.isfinite(value):
        return escape_markdown(value)
    return escape_markdown(fmt.format(value))


def _row(cells: Sequence[Cell], fmt: str, width: int) -> str:
    label, *values = cells
    shown = [escape_markdown("" if label is None else label)]
    shown += [_cell(v, fmt) for v in values]
    shown += [""] * (width - len(shown))
    return _line(shown)


def _line(cells: Sequence[str]) -> str:
    return "|" + "|".join(f" {c} " if c else " " for c in cells) + "|"


@dataclass(frozen=True)
class BookComparison:
    """What `beside_the_book` logged in the run's record and showed; renders as its table."""

    markdown: str
    logged: dict[str, float] = field(default_factory=dict)

    def _repr_markdown_(self) -> str:
        return self.markdown


def beside_the_book(
    run: Run | None,
    measured: float | None,
    *,
    book_value: float | None,
    book_source: str,
    metric: str = "test accuracy",
    columns: Sequence[str] | None = None,
    rows: Sequence[Sequence[Cell]] | None = None,
    book_rows: Sequence[Sequence[Cell]] | None = None,
    book_label: str = "the book",
    fmt: str = "{:.2%}",
    log_gap: bool = True,
    show: bool = True,
) -> BookComparison:
    """Log the book's number beside the run's and display the table.

    `measured` is the run's number compared with `book_value` (`gap_to_book` = measured −
    book_value, logged only when both are numbers and `log_gap`); `book_value` None, or no `run`
    (a table shown only), logs nothing.
    The table has a label column, then `columns` (default: `[metric]`); `rows` are the run's rows
    as `(label, value, ...)` (default: one row, "this run" and `measured`), `book_rows` the book's
    (default: "the book: <book_source>" with `book_value`, or "—" when the book has no number).
    Numbers are formatted with `fmt`; every text cell (labels, `book_source`, strings) is escaped.
    """
    heads = list(columns) if columns is not None else [metric]
    width = len(heads) + 1
    if rows is None:
        rows = [("this run", measured)]
    if book_rows is None:
        value: Cell = book_value if book_value is not None else "—"
        book_rows = [(f"{book_label}: {book_source}", value)]
    for row in [*rows, *book_rows]:
        if not 1 <= len(row) <= width:
            raise BookTableError(
                f"beside_the_book: the row {tuple(row)!r} has {len(row)} cells but the table has "
                f"{width} columns (the label, then {heads}); give one label and one value per column"
            )
    lines = [
        _line(["", *(escape_markdown(h) for h in heads)]),
        "|---" * width + "|",
        *(_row(r, fmt, width) for r in rows),
        *(_row(r, fmt, width) for r in book_rows),
    ]
    logged: dict[str, float] = {}
    if run is not None and book_value is not None:
        logged["book_value"] = book_value
        if log_gap and measured is not None:
            logged["gap_to_book"] = measured - book_value
        run.log_metrics(**logged)
    comparison = BookComparison("\n".join(lines), logged)
    if show:
        from IPython.display import Markdown, display  # lazy: IPython, only in a kernel

        display(Markdown(comparison.markdown))
    return comparison
