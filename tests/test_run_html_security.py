"""A parameter value never runs script in `run.html` (issue 18, point 7): a grid whose string
parameter is an `<img onerror>` or a `</script>` payload, run through the grid runner, and each
run's page opened in headless Chromium: no handler runs, no dialog opens, the text shows as text.

The notebook renders the value three ways: through `cvlab.runs.beside_the_book` (escaped), and
raw into `Markdown(...)` and `HTML(...)` (left to nbconvert's sanitizer, on for `run.html`)."""

from __future__ import annotations

import pytest

from cvlab.grid.cli import main as grid_main
from cvlab.grid.html_export import clean_html
from cvlab.runs import RunRecord
from cvlab.workspace import Workspace

from conftest import light_spec
from notebook_builder import write_notebook

IMG = "<img src=x onerror=\"document.title='PWNED'\">"
SCRIPT = "</script><script>document.title='PWNED';alert(1)</script>"
PAYLOADS = [IMG, SCRIPT]

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


@pytest.mark.slow
def test_payloads_in_a_grid_run_no_script_in_run_html(tmp_path, capsys, browser):
    write_notebook(CELLS, tmp_path / "book.ipynb")
    grid = tmp_path / "g.yaml"
    spec = light_spec(notebook="book.ipynb", params={}, grid={"book_source": PAYLOADS})
    import yaml

    grid.write_text(yaml.safe_dump(spec))
    out = tmp_path / "out"
    assert grid_main([str(grid), "--out", str(out), "--quiet"]) == 0, capsys.readouterr().err
    ws = Workspace.at(out)
    run_dirs = sorted((ws.experiments / "g").iterdir())
    assert len(run_dirs) == 2
    for run_dir in run_dirs:
        record = RunRecord.load(run_dir)
        assert record.status == "ok" and record.metrics["book_value"] == 0.5
        payload = record.params["book_source"]
        html_file = run_dir / "run.html"
        page = browser.new_page()
        dialogs: list[str] = []
        page.on("dialog", lambda d, seen=dialogs: (seen.append(d.message), d.dismiss()))
        page.goto(html_file.as_uri())
        page.wait_for_load_state("load")
        page.wait_for_timeout(300)  # an image's error handler would have run by now
        assert "PWNED" not in page.title() and dialogs == []
        assert page.evaluate("document.querySelectorAll('[onerror]').length") == 0
        scripts = page.eval_on_selector_all("script", "els => els.map(e => e.textContent)")
        assert not [s for s in scripts if "PWNED" in s]  # no element carries the payload's code
        text = page.inner_text("body")
        assert f"the book: {payload}" in text  # beside_the_book: the value as text
        assert "raw markdown:" in text and "raw html:" in text
        if payload == SCRIPT:
            assert "document.title='PWNED';alert(1)" in text  # the sanitizer escapes the tags
        # the figure is still an image that loads
        assert page.evaluate(
            "[...document.querySelectorAll('img[src^=\"data:image/png\"]')]"
            ".some(i => i.complete && i.naturalWidth > 0)"
        )
        page.close()
