"""The self-contained ``index.html``: inline CSS, images as base64 data URIs, no script.

Every piece of user text (run and space names, prompts, paths, notes, variants) goes through
:func:`e` (``html.escape``); a prompt holding ``<script>`` is shown as text. A number links to
the copy of the file it was read from (``sources/``, inside the report folder), with its
interval and metric variant in the link's ``title`` and the variant as a numbered footnote.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from latentbench.report.load import PromptResult, Run
from latentbench.report.provenance import device_text, seeds_text
from latentbench.report.significance import BEST_MARK, Mark, interval_text
from latentbench.report.sources import Sources
from latentbench.report.tables import Cell, Column, Table

if TYPE_CHECKING:
    from latentbench.report import Report, Section

MAX_PROMPTS = 40

CSS = """
body { font: 15px/1.45 system-ui, -apple-system, "Segoe UI", sans-serif; margin: 0;
  color: #1d1d24; background: #fafafc; }
main { max-width: 1200px; margin: 0 auto; padding: 1.5rem 2rem 4rem; }
h1 { font-size: 1.7rem; margin-bottom: .2rem; }
h2 { font-size: 1.3rem; margin-top: 2.4rem; border-bottom: 1px solid #d8d8e0; }
h3 { font-size: 1.05rem; }
.meta, .note, .caption { color: #5b5b6b; font-size: .9rem; }
.warning { background: #fff4e5; border-left: 4px solid #e8590c; padding: .4rem .8rem;
  margin: .5rem 0; font-size: .9rem; }
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .88rem; background: #fff; }
th, td { border: 1px solid #d8d8e0; padding: .3rem .55rem; text-align: right;
  white-space: nowrap; }
th { background: #eeeef5; }
td.text, th.text { text-align: left; white-space: normal; max-width: 28rem; }
td a { color: inherit; text-decoration: none; border-bottom: 1px dotted #99a; }
td.best { background: #e3f4e3; font-weight: 600; }
td.tie { background: #f4f4e3; }
tr.verdict td { font-size: .78rem; color: #5b5b6b; white-space: normal; text-align: left; }
table.headline { font-size: .95rem; }
sup { color: #66a; }
ol.notes { font-size: .8rem; color: #5b5b6b; }
.figs { display: flex; flex-wrap: wrap; gap: 0 1.5rem; align-items: flex-start; }
figure { margin: 1rem 0 1.2rem; flex: 0 1 560px; }
figure.wide { flex: 1 1 100%; }
figure.grid { flex: 0 1 auto; }
figure img { max-width: 100%; border: 1px solid #d8d8e0; background: #fff; }
figure.grid img { image-rendering: pixelated; min-width: 320px; }
.ok { color: #1a7f37; } .fail { color: #b42318; }
"""


def e(text: object) -> str:
    """HTML-escape user text (quotes too: it may land in an attribute)."""
    return html.escape(str(text), quote=True)


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def warnings_html(lines: Sequence[str]) -> str:
    return "".join(f'<p class="warning">\u26a0 {e(w)}</p>' for w in lines)


def _head(table: Table) -> str:
    head = ['<th class="text">run</th>'] if table.show_run else []
    head.append('<th class="text">space</th>')
    for c in table.columns:
        tip = f"{c.direction.value} is better" if c.direction.arrow else "no direction"
        sup = f"<sup>[{c.note}]</sup>" if c.note else ""
        head.append(
            f'<th data-column="{e(c.key)}" title="{e(tip)}">{e(c.label)}{e(c.direction.arrow)}'
            f"{sup}</th>"
        )
    return "".join(head)


def cell_html(table: Table, column: Column, cell: Cell | None, sources: Sources) -> str:
    if cell is None:
        return f'<td data-column="{e(column.key)}"></td>'
    s = cell.scalar
    best = cell.mark is Mark.BEST
    text = cell.text + (f" {BEST_MARK}" if best else "")
    note = table.cell_note(column, cell)
    sup = f"<sup>[{note}]</sup>" if note else ""
    title = f"{s.metric} from {s.run}; {interval_text(s.interval)}"
    if s.seeds:
        title += f"; {len(s.seeds)} seeds: " + ", ".join(f"{v:.4g}" for v in s.seeds)
    title += f"; variant: {s.variant}" if s.variant else ""
    link = sources.href(s.source)
    body = f'<a href="{e(link)}" title="{e(title)}">{e(text)}</a>' if link else e(text)
    cls = f' class="{cell.mark.value}"' if cell.mark is not Mark.NONE else ""
    span = "" if link else f' title="{e(title)}"'
    return f'<td data-column="{e(column.key)}"{cls}{span}>{body}{sup}</td>'


def table_html(table: Table, sources: Sources, level: int = 2) -> str:
    body = []
    for row in table.rows:
        tds = [f'<td class="text">{e(row.run)}</td>'] if table.show_run else []
        tds.append(f'<td class="text">{e(row.space)}</td>')
        tds += [cell_html(table, c, row.cells.get(c.key), sources) for c in table.columns]
        body.append("<tr>" + "".join(tds) + "</tr>")
    lead = 2 if table.show_run else 1
    verdicts = "".join(f"<td>{e(c.verdict)}</td>" for c in table.columns)
    foot = (
        f'<tfoot><tr class="verdict"><td colspan="{lead}" class="text">difference</td>'
        f"{verdicts}</tr></tfoot>"
        if any(c.verdict for c in table.columns)
        else ""
    )
    notes = "".join(f'<li value="{n}">{e(v)}</li>' for v, n in table.notes.items())
    legend = (
        f'<p class="note">{BEST_MARK} best beyond the 95% intervals (none when the best is not '
        "separated from the runner-up); \u2191 higher is better, \u2193 lower is better. "
        "Each number links to a copy of the file it was read from.</p>"
    )
    return (
        f'<h{level} id="{e(table.key)}">{e(table.title)}</h{level}>'
        + (f'<p class="note">{e(table.intro)}</p>' if table.intro else "")
        + warnings_html(table.warnings)
        + f'<div class="scroll"><table class="metrics {e(table.key)}" data-table="{e(table.key)}">'
        f"<thead><tr>{_head(table)}</tr></thead><tbody>{''.join(body)}</tbody>{foot}</table></div>"
        + legend
        + (f'<ol class="notes">{notes}</ol>' if notes else "")
    )


def section_html(section: Section, root: Path) -> str:
    parts = [f"<h2>{e(section.title)}</h2>"]
    if section.intro:
        parts.append(f'<p class="note">{e(section.intro)}</p>')
    parts += [f'<p class="note">{e(line)}</p>' for line in section.lines]
    if section.header:
        head = "".join(f"<th>{e(h)}</th>" for h in section.header)
        body = "".join(
            "<tr>" + "".join(f"<td>{e(c)}</td>" for c in row) + "</tr>" for row in section.rows
        )
        parts.append(f'<table class="text"><tr>{head}</tr>{body}</table>')
    cls = ' class="grid"' if section.pixel_art else (' class="wide"' if section.wide else "")
    parts.append('<div class="figs">')
    for ref in section.figures:
        parts.append(
            f'<figure{cls}><img src="{data_uri(ref.path)}" alt="{e(ref.title)}">'
            f'<figcaption class="caption"><b>{e(ref.title)}</b>. {e(ref.caption)} '
            f'(<a href="{e(ref.path.relative_to(root).as_posix())}">PNG</a>)</figcaption></figure>'
        )
    parts.append("</div>")
    return "\n".join(parts)


def prompts_html(prompts: Sequence[PromptResult]) -> str:
    """Scored GenEval samples, failures first (at most MAX_PROMPTS rows)."""
    rows = sorted(prompts, key=lambda p: p.correct)[:MAX_PROMPTS]
    body = "".join(
        "<tr>"
        f'<td class="text">{e(p.run)}</td><td class="text">{e(p.tag)}</td>'
        f'<td class="text">{e(p.prompt)}</td>'
        + ('<td class="ok">correct</td>' if p.correct else '<td class="fail">wrong</td>')
        + f'<td class="text">{e(p.reason)}</td></tr>'
        for p in rows
    )
    more = len(prompts) - len(rows)
    return (
        "<h2>GenEval samples</h2>"
        f'<p class="note">{len(prompts)} scored samples, wrong ones first'
        + (f"; {more} more in the results files" if more else "")
        + ".</p>"
        '<div class="scroll"><table><thead><tr><th class="text">run</th><th class="text">task'
        '</th><th class="text">prompt</th><th>verdict</th><th class="text">reason</th></tr>'
        f"</thead><tbody>{body}</tbody></table></div>"
    )


def runs_html(runs: Sequence[Run], sources: Sources) -> str:
    rows = []
    for r in runs:
        m = r.manifest
        link = sources.run_href(r)
        name = f'<a href="{e(link)}">{e(r.name)}</a>' if link else e(r.name)
        seeds, device = seeds_text(r), device_text(m)
        rows.append(
            f'<tr><td class="text">{name}</td><td class="text">{e(r.command)}</td>'
            f'<td class="text">{e(r.git or "unknown")}</td><td>{e(seeds)}</td>'
            f'<td class="text">{e(m.get("time") or "")}</td><td class="text">{e(device)}</td>'
            f'<td class="text">{e("; ".join(r.notes))}</td></tr>'
        )
    return (
        "<h2>Runs</h2>"
        '<div class="scroll"><table><thead><tr><th class="text">run</th><th class="text">'
        'command</th><th class="text">git commit</th><th>seed(s)</th><th class="text">time</th>'
        '<th class="text">device</th><th class="text">notes</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def render_html(report: Report, root: Path) -> str:
    """The page; images are read from ``root`` (the folder being written)."""
    parts = [
        f"<h1>{e(report.title)}</h1>",
        f'<p class="meta">{len(report.runs)} run(s); generated {e(report.created)} by '
        f"latentbench {e(report.version)}. {e(report.commit)} Numbers are read from the run "
        "folders, never recomputed; metrics.csv and curves.csv hold all of them.</p>",
    ]
    if report.headline is not None:
        parts.append(table_html(report.headline, report.sources))
    for section in report.sections:
        parts.append(section_html(section, root))
    if report.tables:
        parts.append("<h2>Details</h2>")
    for table in report.tables:
        parts.append(table_html(table, report.sources, level=3))
    prompts = [p for r in report.runs for p in r.prompts]
    if prompts:
        parts.append(prompts_html(prompts))
    parts.append(runs_html(report.runs, report.sources))
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(report.title)}</title><style>{CSS}</style></head>"
        f"<body><main>\n{body}\n</main></body></html>\n"
    )
