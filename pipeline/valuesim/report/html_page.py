"""The self-contained study report (reports/index.html): figures embedded as
base64 PNG, inline CSS, no external assets, so the file can be mailed or archived."""

from __future__ import annotations

import base64
import html
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

CSS = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:1200px;margin:1.5em auto;
padding:0 1.2em;color:#222;line-height:1.5}
h1{font-size:1.7em;margin:.2em 0}h2{border-bottom:2px solid #ddd;padding-bottom:.2em;margin-top:1.6em}
h2#verdict{margin-top:.8em}
.scroll{overflow-x:auto;max-width:100%}.scroll td{white-space:nowrap}
table{border-collapse:collapse;margin:.6em 0;font-size:.88em}th,td{border:1px solid #ccc;padding:.3em .6em;
text-align:right;vertical-align:top}th{background:#f3f3f3;text-align:center}
td:first-child,th:first-child{text-align:left}
tr.reference td{color:#555;font-style:italic}tr.floor td{color:#555;background:#fafafa}
figure{margin:1.5em 0}figure img{max-width:100%;border:1px solid #eee}figcaption{font-size:.9em;color:#444}
.tag{color:#666;font-weight:normal}
.note{background:#fff6dd;border-left:4px solid #e0b000;padding:.6em 1em}
.banner{background:#fde8e8;border-left:5px solid #c0392b;padding:.6em 1em;font-weight:600}
.verdict ul{margin:.3em 0 .8em}.verdict h3{margin:.6em 0 .2em}
.caveat{background:#f3f6fb;border-left:4px solid #4a78c2;padding:.6em 1em}
nav.toc{background:#f7f7f7;padding:.3em .8em;font-size:.88em}nav.toc ol{display:inline;margin:0;padding:0}
nav.toc li{display:inline;margin-right:1.1em}
details{margin:.6em 0}summary{cursor:pointer;color:#245}
pre{background:#f6f6f6;padding:1em;overflow-x:auto;font-size:.85em}
footer{white-space:pre-line;margin-top:3em;border-top:1px solid #ddd;padding-top:.6em;font-size:.85em;color:#555}
"""

#: paper figures whose number a report figure carries as a tag; the report's own
#: figures (9B, 12-15) have none
PAPER_FIGURES = frozenset({"1", "1B", "2", "3", "4/10", "7", "8", "9", "11"})
_CAPTION = re.compile(r"<figcaption>(?:Figures? ([0-9][0-9A-Za-z/]*)(?: \(([^)]*)\))?[.:] ?)?")


def number_figures(body: str) -> str:
    """Number every figure caption in page order ("Figure 3."), keeping the paper's
    number as a tag where the figure is one of the paper's, and any qualifier."""
    count = 0

    def renumber(m: re.Match[str]) -> str:
        nonlocal count
        count += 1
        paper, qualifier = m.group(1), m.group(2)
        tag = f" <span class='tag'>(paper Figure {paper})</span>" if paper in PAPER_FIGURES else ""
        extra = f" ({html.escape(qualifier)})" if qualifier else ""
        return f"<figcaption><b>Figure {count}{extra}.</b>{tag} "

    return _CAPTION.sub(renumber, body)


def scroll(inner: str) -> str:
    """A wide table scrolls inside its own box instead of widening the page."""
    return f"<div class='scroll'>{inner}</div>"


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


def table(frame: pl.DataFrame, digits: int = 3, row_classes: Sequence[str] | None = None) -> str:
    """A frame as an HTML table inside a scrolling box; ``row_classes`` style rows
    (e.g. "reference", "floor")."""
    head = "".join(f"<th>{html.escape(c)}</th>" for c in frame.columns)
    body = []
    for i, row in enumerate(frame.iter_rows()):
        cells = []
        for v in row:
            text = f"{v:.{digits}f}" if isinstance(v, float) else ("" if v is None else str(v))
            cells.append(f"<td>{html.escape(text)}</td>")
        cls = f" class='{row_classes[i]}'" if row_classes and row_classes[i] else ""
        body.append(f"<tr{cls}>" + "".join(cells) + "</tr>")
    return scroll(f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>")


@dataclass(frozen=True)
class Opening:
    """What the page says before any detail: the verdict (HTML), the scoreboard (HTML,
    with its detail columns folded away), the checks table and the notes stated once."""

    verdict: str
    scoreboard: str
    checks: str
    notes: Sequence[str] = ()


#: the provenance footer is filled in by the browser from reports/runs/provenance/provenance.js,
#: which is outside DVC's hashed outputs: a rerun's page stays byte-identical
FOOTER = ("<footer id='provenance'>Run provenance (date, commit, valuesim version, models, requests, "
          "cost): see <code>reports/runs/provenance/provenance.json</code> beside this page.</footer>"
          "<script src='runs/provenance/provenance.js'></script>")


def page(
    *, title: str, findings: Sequence[str], provenance: str, params_yaml: str,
    tables: Sequence[tuple[str, str]], figures: Sequence[Figure], caveats: Sequence[str],
    notes: Sequence[str] = (),
    sections: Sequence[tuple[str, str]] = (),
    opening: Opening | None = None,
) -> str:
    """The page: verdict and scoreboard first (``opening``), then the checks, the
    detailed tables, the figures (numbered in page order), ``sections`` (heading, HTML
    body: "New questions", "How far to trust a new answer"), caveats, data provenance,
    configuration, and the findings in words folded away."""
    blocks: list[tuple[str, str, str]] = []  # (anchor, heading, body)
    if opening is not None:
        blocks.append(("verdict", "Verdict", opening.verdict))
        blocks.append(("scoreboard", "Scoreboard", opening.scoreboard))
        checks = opening.checks + "".join(f"<p class='note'>{html.escape(n)}</p>" for n in opening.notes)
        blocks.append(("checks", "Checks per method", checks))
    else:
        blocks.append(("findings", "What this run shows",
                       "<ul>" + "".join(f"<li>{html.escape(f)}</li>" for f in findings) + "</ul>"))
    if notes:
        blocks.append(("notes", "Notes on this run", "".join(f"<p class='note'>{html.escape(n)}</p>" for n in notes)))
    details = "".join(f"<h3>{html.escape(h)}</h3>{b}" for h, b in tables)
    blocks.append(("results", "Results in detail", details))
    blocks.append(("figures", "Figures", "".join(_img(f) for f in figures)))
    for i, (heading, body) in enumerate(sections):
        blocks.append((f"section-{i + 1}", heading, body))
    if opening is not None:
        blocks.append(("findings", "Findings in words",
                       "<details><summary>Every finding as a sentence, with all its numbers</summary><ul>"
                       + "".join(f"<li>{html.escape(f)}</li>" for f in findings) + "</ul></details>"))
    blocks.append(("caveats", "Caveats", "<div class='caveat'><ul>"
                   + "".join(f"<li>{html.escape(c)}</li>" for c in caveats) + "</ul></div>"))
    blocks.append(("data", "Data provenance", f"<p>{provenance}</p>"))
    blocks.append(("configuration", "Configuration (params.yaml)", f"<pre>{html.escape(params_yaml)}</pre>"))
    toc = "".join(f"<li><a href='#{a}'>{html.escape(h)}</a></li>" for a, h, _ in blocks)
    parts = [
        "<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        f"<nav class='toc'><b>Contents:</b> <ol>{toc}</ol></nav>",
        *(f"<h2 id='{a}'>{html.escape(h)}</h2>{b}" for a, h, b in blocks),
        FOOTER,
        "</body></html>",
    ]
    return number_figures("\n".join(parts))
