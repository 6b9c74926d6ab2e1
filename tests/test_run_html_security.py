"""A parameter value never runs script in `run.html` (issue 18, point 7): a grid whose string
parameter is an `<img onerror>` or a `</script>` payload, run through the grid runner, and each
run's page opened in headless Chromium: no handler runs, no dialog opens, the text shows as text.

The notebook renders the value three ways: through `cvlab.runs.beside_the_book` (escaped), and
raw into `Markdown(...)` and `HTML(...)` (left to nbconvert's sanitizer, on for `run.html`)."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from cvlab.grid.cli import main as grid_main
from cvlab.grid.html_export import clean_html
from cvlab.runs import RunRecord
from cvlab.workspace import Workspace

from conftest import light_spec
from notebook_builder import write_notebook

IMG = "<img src=x onerror=\"document.title='PWNED'\">"
SCRIPT = "</script><script>document.title='PWNED';alert(1)</script>"
PAYLOADS = [IMG, SCRIPT]
REPO = Path(__file__).resolve().parents[1]

CELLS = [
    ("md", "# Book beside a run"),
    ("code", 'run_dir = None\nseed = 0\nbook_source = "ch. 1"\nbook_value = 0.5\n'),
    (
        "code",
        """
import io
import matplotlib.pyplot as plt
from IPython.display import HTML, Image, Markdown, display

import cvlab

run = cvlab.runs.start(run_dir)
run.log_metrics(score=0.4)
cvlab.runs.beside_the_book(run, 0.4, book_value=book_value, book_source=book_source)
display(Markdown(f"raw markdown: {book_source}"))
display(HTML(f"<p>raw html: {book_source}</p>"))
fig, ax = plt.subplots(figsize=(2, 2))
ax.plot([0, 1], [1, 0])
buffer = io.BytesIO()
fig.savefig(buffer, format="png")
display(Image(data=buffer.getvalue()))  # a figure, as the chapters show theirs
run.finish()
""",
    ),
]


def test_clean_html_keeps_tables_and_figures_and_drops_script():
    figure = '<img src="data:image/png;base64,iVBORw0KGgo=" alt="fig">'
    page = f"<h2>t</h2><table><thead><tr><th>a</th></tr></thead></table>{figure}"
    assert clean_html(page) == page
    dirty = clean_html(
        IMG + SCRIPT + '<a href="javascript:alert(1)">x</a><a href="data:text/html,x">y</a>'
    )
    assert "onerror" not in dirty and "<script" not in dirty and "javascript:" not in dirty
    assert "data:text" not in dirty and '<img src="x">' in dirty


def _check_run_pages(browser, out, grid, *, figure: bool):
    """Each run of `grid` finished ok, and its run.html runs no script of its `book_source`."""
    run_dirs = sorted((Workspace.at(out).experiments / grid).iterdir())
    assert len(run_dirs) == len(PAYLOADS)
    for run_dir in run_dirs:
        record = RunRecord.load(run_dir)
        assert record.status == "ok", record.error
        payload = record.params["book_source"]
        assert payload in PAYLOADS
        page = browser.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d, seen=dialogs: (seen.append(d.message), d.dismiss()))
        page.goto((run_dir / "run.html").as_uri())
        page.wait_for_load_state("load")
        page.wait_for_timeout(300)  # an image's error handler would have run by now
        assert "PWNED" not in page.title() and dialogs == []
        assert page.evaluate("document.querySelectorAll('[onerror]').length") == 0
        scripts = page.eval_on_selector_all("script", "els => els.map(e => e.textContent)")
        assert not [s for s in scripts if "PWNED" in s]  # no element carries the payload's code
        text = page.inner_text("body")
        # the book table (a Markdown output, not the parameters cell) shows the value as text
        tables = page.locator(".jp-RenderedMarkdown table").all_inner_texts()
        assert any(payload in table for table in tables), tables
        if figure:  # figures still show: the sanitizer leaves images alone
            assert page.evaluate(
                "[...document.querySelectorAll('img[src^=\"data:image/png\"]')]"
                ".some(i => i.complete && i.naturalWidth > 0)"
            )
        page.close()
        yield record, text


@pytest.mark.slow
def test_payloads_in_a_grid_run_no_script_in_run_html(tmp_path, capsys, browser):
    write_notebook(CELLS, tmp_path / "book.ipynb")
    grid = tmp_path / "g.yaml"
    spec = light_spec(notebook="book.ipynb", params={}, grid={"book_source": PAYLOADS})
    grid.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    assert grid_main([str(grid), "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
    for record, text in _check_run_pages(browser, out, "g", figure=True):
        assert record.metrics["book_value"] == 0.5
        assert "raw markdown:" in text and "raw html:" in text  # left to the sanitizer
        if record.params["book_source"] == SCRIPT:
            assert "document.title='PWNED';alert(1)" in text  # its tags dropped, the text kept


@pytest.mark.slow
def test_resnet_smoke_row_with_a_payload_runs_no_script(tmp_path, capsys, browser):
    """The issue's reproduction: notebooks/10_resnet.ipynb's smoke row with book_source set to
    each payload (about a minute on a CPU)."""
    spec = yaml.safe_load((REPO / "grids" / "resnet_cifar.yaml").read_text())
    spec["notebook"] = str((REPO / "grids" / spec["notebook"]).resolve())
    smoke = next(row for row in spec["runs"] if row.get("smoke"))
    spec["runs"] = [
        {**smoke, "experiment": i, "book_source": payload} for i, payload in enumerate(PAYLOADS)
    ]
    path = tmp_path / "resnet_cifar.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    code = grid_main([str(path), "--out", str(out), "--only", "smoke=true", "--quiet"])
    assert code == 0, capsys.readouterr().err
    for record, _ in _check_run_pages(browser, out, "resnet_cifar", figure=True):
        assert "book_value" not in record.metrics  # the smoke row has no book number
