"""A run's executed notebook as one self-contained, offline HTML page (`run.html`)."""

from __future__ import annotations

from pathlib import Path

from cvlab.atomic_io import write_text_atomic
from cvlab.runs.record import HTML_FILE, NOTEBOOK_FILE, RunRecord

# nbconvert's lab template, less the scripts it would fetch from a CDN (require.js, MathJax,
# Mermaid): the page then opens offline, with styles inlined and figures as data URIs. The cost
# is that LaTeX in markdown shows as source.
_RUN_HTML_TEMPLATE = """{%- extends 'lab/index.html.j2' -%}
{%- block html_head_js_requirejs -%}{%- endblock html_head_js_requirejs -%}
{%- block html_head_js_mathjax -%}{%- endblock html_head_js_mathjax -%}
{%- block html_head_js_mermaidjs -%}{%- endblock html_head_js_mermaidjs -%}
"""
# Statuses of runs that nobody is executing any more: their notebook is final.
_ENDED = {"ok", "failed", "timeout", "diverged", "interrupted"}


def export_run_html(notebook: Path, html: Path) -> None:
    """Write `notebook` as one HTML page with its figures embedded as data URIs."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        embed_images=True,
        extra_loaders=[DictLoader({"cvlab_run.html.j2": _RUN_HTML_TEMPLATE})],
        template_file="cvlab_run.html.j2",
    )
    body, _ = exporter.from_filename(str(notebook))
    write_text_atomic(html, body)


def needs_html(record: RunRecord, run_dir: Path) -> bool:
    """True for an ended run whose executed notebook has no HTML page (or no record of it)."""
    return (
        record.status in _ENDED
        and (run_dir / NOTEBOOK_FILE).exists()
        and (not (run_dir / HTML_FILE).exists() or record.artifacts.get("html") != HTML_FILE)
    )


def add_run_html(record: RunRecord, run_dir: Path) -> None:
    """Export the run's notebook to `run.html` and list it in the record's artifacts; a failure
    becomes a note, since the run's own result matters more than its page."""
    try:
        export_run_html(run_dir / NOTEBOOK_FILE, run_dir / HTML_FILE)
        record.artifacts["html"] = HTML_FILE
    except Exception as exc:  # noqa: BLE001 - nbconvert and template errors are many and varied
        record.notes.append(f"HTML export failed: {type(exc).__name__}: {exc}")
