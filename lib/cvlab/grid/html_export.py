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
# nbconvert's sanitizer (`sanitize_html=True`) runs the HTML of markdown cells and of outputs
# (text/html, text/markdown) through its `clean_html` filter; PNG/JPEG figures are written by the
# template itself and stay as they are. Its own filter keeps too few tags (no headings,
# paragraphs, <th> or images: a report's tables would show as tag soup), so this one keeps what
# notebooks render, and drops script, event handlers, iframes, forms and javascript: links.
_TAGS = frozenset([
    "a", "abbr", "acronym", "b", "blockquote", "br", "caption", "code", "col", "colgroup", "dd",
    "del", "details", "div", "dl", "dt", "em", "figcaption", "figure", "h1", "h2", "h3", "h4",
    "h5", "h6", "hr", "i", "img", "ins", "kbd", "li", "ol", "p", "pre", "q", "s", "samp", "small",
    "span", "strike", "strong", "style", "sub", "summary", "sup", "table", "tbody", "td", "tfoot",
    "th", "thead", "tr", "tt", "u", "ul", "var",
])  # fmt: skip
_ATTRIBUTES = {
    "*": ["class", "id", "title", "align", "style"],
    "ol": ["start"],
    "table": ["border"],
    "td": ["colspan", "rowspan", "valign"],
    "th": ["colspan", "rowspan", "valign"],
}
# data: URIs are kept for images only (figures embedded in markdown), never for links.
_DATA_IMAGE = ("data:image/png;", "data:image/jpeg;", "data:image/gif;", "data:image/webp;")


def _allowed_attribute(tag: str, name: str, value: str) -> bool:
    if name in _ATTRIBUTES["*"]:
        return True
    if tag == "img":
        if name == "src":
            return not value.strip().lower().startswith("data:") or value.startswith(_DATA_IMAGE)
        return name in ("alt", "width", "height")
    if tag == "a":
        return name in ("href", "title", "rel") and not value.strip().lower().startswith("data:")
    return name in _ATTRIBUTES.get(tag, ())


def clean_html(html: str | bytes) -> str:
    """HTML from a notebook with every script, handler and unsafe URL removed (bleach, as
    nbconvert's own filter), keeping headings, tables, images and styles."""
    import bleach  # lazy: bleach, with nbconvert
    from bleach.css_sanitizer import CSSSanitizer  # lazy: bleach

    text = html.decode() if isinstance(html, bytes) else str(html)
    return bleach.clean(
        text,
        tags=_TAGS,
        attributes=_allowed_attribute,
        protocols={"http", "https", "mailto", "data"},
        css_sanitizer=CSSSanitizer(),
    )


# Statuses of runs that nobody is executing any more: their notebook is final.
_ENDED = {"ok", "failed", "timeout", "diverged", "interrupted", "pruned"}


def export_run_html(notebook: Path, html: Path) -> None:
    """Write `notebook` as one HTML page with its figures embedded as data URIs, sanitized: no
    script from a parameter value (a grid file is shared between people) reaches the page."""
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(
        embed_images=True,
        sanitize_html=True,
        filters={"clean_html": clean_html},
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
