"""The self-contained ``index.html``: inline CSS, images as base64 data URIs, no script.

Every piece of user text (run and space names, prompts, paths, notes, variants) goes through
:func:`e` (``html.escape``); a prompt holding ``<script>`` is shown as text. Every number is a
link to the file it was read from, relative to the report folder, with its metric variant in
the link's ``title`` and as a numbered footnote under the table.
"""

from __future__ import annotations

import base64
import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from latentbench.report.load import PromptResult, Run, items, obj
from latentbench.report.tables import BEST_MARK, Direction, Table, fmt, href

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
.scroll { overflow-x: auto; }
table { border-collapse: collapse; margin: .6rem 0; font-size: .88rem; background: #fff; }
th, td { border: 1px solid #d8d8e0; padding: .3rem .55rem; text-align: right;
  white-space: nowrap; }
th { background: #eeeef5; }
td.text, th.text { text-align: left; white-space: normal; max-width: 28rem; }
td a { color: inherit; text-decoration: none; border-bottom: 1px dotted #99a; }
td.best { background: #e3f4e3; font-weight: 600; }
sup { color: #66a; }
ol.notes { font-size: .8rem; color: #5b5b6b; }
.figs { display: flex; flex-wrap: wrap; gap: 0 1.5rem; align-items: flex-start; }
figure { margin: 1rem 0 1.2rem; flex: 0 1 560px; }
figure.grid { flex: 0 1 auto; }
figure img { max-width: 100%; border: 1px solid #d8d8e0; background: #fff;
  image-rendering: auto; }
figure.grid img { image-rendering: pixelated; min-width: 320px; }
.ok { color: #1a7f37; } .fail { color: #b42318; }
"""


def e(text: object) -> str:
    """HTML-escape user text (quotes too: it may land in an attribute)."""
    return html.escape(str(text), quote=True)


def data_uri(path: Path) -> str:
    return "data:image/png;base64," + base64.b64encode(path.read_bytes()).decode("ascii")


def table_html(table: Table, out: Path) -> str:
    head = ['<th class="text">run</th>', '<th class="text">space</th>']
    for c in table.columns:
        d = table.direction(c)
        tip = f"{d.value} is better" if d is not Direction.NONE else "no direction"
        note = table.column_note(c)
        sup = f"<sup>[{note}]</sup>" if note else ""
        head.append(f'<th title="{e(tip)}">{e(c)}{e(d.arrow)}{sup}</th>')
    body = []
    for run, space, cells in table.rows:
        tds = [f'<td class="text">{e(run)}</td>', f'<td class="text">{e(space)}</td>']
        for c in table.columns:
            s = cells.get(c)
            if s is None:
                tds.append("<td></td>")
                continue
            best = table.is_best(s)
            text = fmt(s.value) + (f" {BEST_MARK}" if best else "")
            note = table.cell_note(s)
            sup = f"<sup>[{note}]</sup>" if note else ""
            title = f"{s.metric} from {s.run}" + (f"; variant: {s.variant}" if s.variant else "")
            cls = ' class="best"' if best else ""
            link = f'<a href="{e(href(s.source, out))}" title="{e(title)}">{e(text)}</a>'
            tds.append(f"<td{cls}>{link}{sup}</td>")
        body.append("<tr>" + "".join(tds) + "</tr>")
    notes = "".join(f'<li value="{n}">{e(v)}</li>' for v, n in table.notes.items())
    legend = (
        f'<p class="note">{BEST_MARK} best in its column; \u2191 higher is better, '
        "\u2193 lower is better. Each number links to the file it was read from.</p>"
    )
    return (
        f'<div class="scroll"><table><thead><tr>{"".join(head)}</tr></thead>'
        f"<tbody>{''.join(body)}</tbody></table></div>{legend}"
        + (f'<ol class="notes">{notes}</ol>' if notes else "")
    )


def section_html(section: Section, root: Path) -> str:
    parts = [f"<h2>{e(section.title)}</h2>"]
    if section.intro:
        parts.append(f'<p class="note">{e(section.intro)}</p>')
    cls = ' class="grid"' if section.pixel_art else ""
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


def runs_html(runs: Sequence[Run], out: Path) -> str:
    rows = []
    for r in runs:
        m = r.manifest
        device = obj(m.get("device"))
        where = ", ".join(
            str(x)
            for x in (
                device.get("platform"),
                ", ".join(map(str, items(device.get("gpus")))) or ("cpu" if device else None),
            )
            if x
        )
        notes = "; ".join(r.notes)
        rows.append(
            "<tr>"
            f'<td class="text"><a href="{e(href(r.path, out))}">{e(r.name)}</a></td>'
            f'<td class="text">{e(r.command)}</td><td class="text">{e(m.get("git") or "")}</td>'
            f'<td>{e(m.get("seed", ""))}</td><td class="text">{e(m.get("time") or "")}</td>'
            f'<td class="text">{e(where)}</td><td class="text">{e(notes)}</td></tr>'
        )
    return (
        "<h2>Runs</h2>"
        '<div class="scroll"><table><thead><tr><th class="text">run</th><th class="text">'
        'command</th><th class="text">git</th><th>seed</th><th class="text">time</th>'
        '<th class="text">device</th><th class="text">notes</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table></div>"
    )


def render_html(report: Report, root: Path) -> str:
    """The page; images are read from ``root`` (the folder being written)."""
    parts = [
        f"<h1>{e(report.title)}</h1>",
        f'<p class="meta">{len(report.runs)} run(s); generated {e(report.created)} by '
        f"latentbench {e(report.version)}. Numbers are read from the run folders, never "
        "recomputed; metrics.csv and curves.csv hold all of them.</p>",
    ]
    for table in report.tables:
        parts.append(f"<h2>{e(table.title)}</h2>")
        parts.append(table_html(table, report.out))
    for section in report.sections:
        parts.append(section_html(section, root))
    prompts = [p for r in report.runs for p in r.prompts]
    if prompts:
        parts.append(prompts_html(prompts))
    parts.append(runs_html(report.runs, report.out))
    body = "\n".join(parts)
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{e(report.title)}</title><style>{CSS}</style></head>"
        f"<body><main>\n{body}\n</main></body></html>\n"
    )
