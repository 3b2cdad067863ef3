"""The self-contained study report (reports/index.html): figures embedded as
base64 PNG, inline CSS, no external assets, so the file can be mailed or archived."""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1.2em;color:#222;line-height:1.5}
h1{font-size:1.8em;margin-bottom:.2em}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.3em .6em;
text-align:right}th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}
figure{margin:1.5em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.9em;color:#444}
.note{background:#fff6dd;border-left:4px solid #e0b000;padding:.6em 1em}
.caveat{background:#f3f6fb;border-left:4px solid #4a78c2;padding:.6em 1em}
pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:.85em}
"""


@dataclass(frozen=True)
class Figure:
    path: Path
    caption: str


def figure_html(fig: Figure) -> str:
    """One figure, embedded, with its caption."""
    return _img(fig)


def _img(fig: Figure) -> str:
    data = base64.b64encode(fig.path.read_bytes()).decode("ascii")
    return (f'<figure><img alt="{html.escape(fig.caption)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{html.escape(fig.caption)}</figcaption></figure>")


def table(frame: pl.DataFrame, digits: int = 3) -> str:
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = []
    for row in frame.iter_rows():
        cells = []
        for v in row:
            text = f"{v:.{digits}f}" if isinstance(v, float) else ("" if v is None else str(v))
            cells.append(f"<td>{html.escape(text)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def page(
    *, title: str, findings: Sequence[str], provenance: str, params_yaml: str,
    tables: Sequence[tuple[str, str]], figures: Sequence[Figure], caveats: Sequence[str],
    notes: Sequence[str] = (),
    sections: Sequence[tuple[str, str]] = (),
) -> str:
    """The page. ``sections``: (heading, HTML body) pairs placed after the figures and
    before the caveats (the report's "New questions"); none adds nothing to the page."""
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        "<h2>What this run shows</h2><ul>",
        *(f"<li>{html.escape(f)}</li>" for f in findings),
        "</ul>",
        *(f"<p class='note'>{html.escape(n)}</p>" for n in notes),
        f"<h2>Data provenance</h2><p>{provenance}</p>",
        "<h2>Results</h2>",
    ]
    for heading, body in tables:
        parts.append(f"<h3>{html.escape(heading)}</h3>{body}")
    parts.append("<h2>Figures</h2>")
    parts += [_img(f) for f in figures]
    for heading, body in sections:
        parts.append(f"<h2>{html.escape(heading)}</h2>{body}")
    parts.append("<h2>Caveats</h2><div class='caveat'><ul>")
    parts += [f"<li>{html.escape(c)}</li>" for c in caveats]
    parts.append("</ul></div>")
    parts.append(f"<h2>Configuration (params.yaml)</h2><pre>{html.escape(params_yaml)}</pre>")
    parts.append("</body></html>")
    return "\n".join(parts)
