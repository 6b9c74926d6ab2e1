"""The result beside the book (`cvlab.runs.beside_the_book`): what it logs, what it shows, and that
no value from a grid file is shown as markup."""

from __future__ import annotations

from html import unescape

import mistune
import nbformat
import pytest

import cvlab
from cvlab.errors import BookTableError
from cvlab.runs import RunRecord, beside_the_book, escape_markdown

PAYLOAD = "<img src=x onerror=\"document.title='PWNED'\">"
SCRIPT = "</script><script>document.title='PWNED'</script>"


def test_logs_the_book_value_and_the_gap(tmp_path):
    run = cvlab.runs.start(tmp_path / "r", seed=1)
    shown = beside_the_book(
        run, 0.91, book_value=0.9358, book_source="ch. 12.4", metric="test accuracy", show=False
    )
    assert shown.logged == {"book_value": 0.9358, "gap_to_book": pytest.approx(0.91 - 0.9358)}
    metrics = RunRecord.load(tmp_path / "r").metrics  # written to record.json at once
    assert metrics["book_value"] == 0.9358
    assert metrics["gap_to_book"] == pytest.approx(-0.0258)
    lines = shown.markdown.splitlines()
    assert lines == [
        "| | test accuracy |",
        "|---|---|",
        "| this run | 91.00% |",
        "| the book: ch. 12.4 | 93.58% |",
    ]


def test_no_book_value_logs_nothing_and_shows_the_source(tmp_path):
    run = cvlab.runs.start(tmp_path / "r", seed=1)
    shown = beside_the_book(
        run, 0.5, book_value=None, book_source="Figure 16.1, no number", show=False
    )
    assert shown.logged == {}
    metrics = RunRecord.load(tmp_path / "r").metrics
    assert "book_value" not in metrics and "gap_to_book" not in metrics
    assert shown.markdown.splitlines()[-1] == "| the book: Figure 16.1, no number | — |"


def test_log_gap_false_logs_the_book_value_only(tmp_path):
    run = cvlab.runs.start(tmp_path / "r", seed=1)
    shown = beside_the_book(
        run, 2.5, book_value=1.933, book_source="s", fmt="{:.3f}", log_gap=False, show=False
    )
    assert shown.logged == {"book_value": 1.933}
    assert "| this run | 2.500 |" in shown.markdown and "| the book: s | 1.933 |" in shown.markdown


def test_rows_columns_and_padding():
    shown = beside_the_book(
        None,
        0.8,
        book_value=0.84,
        book_source="ch. 6.1.3",
        columns=["members", "ensemble", "gain"],
        rows=[("this run: 5 members", 0.78, 0.8, "+2.00%")],
        show=False,
    )
    assert shown.markdown.splitlines() == [
        "| | members | ensemble | gain |",
        "|---|---|---|---|",
        "| this run: 5 members | 78.00% | 80.00% | +2.00% |",
        "| the book: ch. 6.1.3 | 84.00% | | |",  # padded to the table's width
    ]
    assert shown.logged == {}  # no run: a table shown only
    with pytest.raises(BookTableError, match="has 3 cells but the table has 2 columns"):
        beside_the_book(None, 0.8, book_value=None, book_source="s", rows=[("a", 1, 2)], show=False)


@pytest.mark.parametrize("payload", [PAYLOAD, SCRIPT, "a | b\n| c", "**bold** `code` [x](y) $x$"])
def test_text_from_parameters_is_shown_as_text(tmp_path, payload):
    shown = beside_the_book(
        None,
        0.9,
        book_value=0.9,
        book_source=payload,
        rows=[(f"this run ({payload})", 0.9)],
        show=False,
    )
    assert "<" not in shown.markdown and ">" not in shown.markdown  # no tag can open
    html = mistune.html(shown.markdown)  # the Markdown renderer nbconvert uses
    assert "<img" not in html and "<script" not in html and "<strong>" not in html
    assert "<code>" not in html and "<a " not in html
    assert html.count("<th>") == 2 and html.count("<td>") == 4  # no "|" added a cell
    if "\n" not in payload:  # rendered, the escapes read as the original characters again
        assert f"this run ({payload})" in unescape(html)


def test_escape_markdown_round_trips_through_a_renderer():
    text = "ch. 2.3 <b>x</b> & *y* _z_ `q` | [l](u) $m$ ~s~ \\"
    rendered = mistune.html(escape_markdown(text))
    assert rendered.strip() == "<p>" + mistune.util.escape(text.replace("\n", " ")) + "</p>"


def test_show_displays_markdown(monkeypatch):
    shown_objects = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown_objects.append(obj))
    result = beside_the_book(None, 0.5, book_value=None, book_source=PAYLOAD)
    (obj,) = shown_objects
    assert obj.data == result.markdown and "&lt;img" in obj.data
    assert result._repr_markdown_() == result.markdown


NINE = [
    "02_augmentation",
    "03_feature_extraction",
    "04_fine_tuning",
    "05_ensembles",
    "06_progressive_resizing",
    "07_alexnet_dogs_vs_cats",
    "08_small_data",
    "09_googlenet",
    "10_resnet",
]


@pytest.mark.parametrize("name", NINE)
def test_the_notebooks_use_the_call(name):
    """No notebook builds its book table by hand, nor logs `book_value` itself."""
    from pathlib import Path

    nb = nbformat.read(Path(__file__).parents[1] / "notebooks" / f"{name}.ipynb", as_version=4)
    code = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert code.count("cvlab.runs.beside_the_book(") >= 1
    assert "book_value=book_value" in code
    assert "run.log_metrics(book_value" not in code and "gap_to_book" not in code


@pytest.mark.parametrize("name", ["resnet50", "a`b", "``x``", PAYLOAD])
def test_markdown_code_cannot_be_closed_by_its_text(name):
    rendered = mistune.html(f"on {cvlab.runs.markdown_code(name)}: done")
    assert rendered.count("<code>") == 1 and "<img" not in rendered
    inside = rendered.split("<code>")[1].split("</code>")[0]
    assert unescape(inside) == name


def test_notebooks_escape_parameters_they_render_as_markdown():
    """No parameter (book_source, a backbone name...) goes raw into Markdown(f"...")."""
    from pathlib import Path

    for path in sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        for cell in nb.cells:
            if cell.cell_type == "code" and "Markdown(" in cell.source:
                for name in ("book_source", "compare_backbone", "net.note", "transfer_backbone"):
                    assert f"{{{name}}}" not in cell.source, (path.name, cell.id, name)


def test_ensemble_table_escapes_member_names():
    from cvlab.train.ensembles import EnsembleResult

    result = EnsembleResult(members={PAYLOAD: {"rank1": 0.5}}, ensemble={"rank1": 0.6})
    assert "<img" not in result.markdown() and "&lt;img" in result.markdown()
