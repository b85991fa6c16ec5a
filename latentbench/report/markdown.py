"""``README.md`` of the report: the same tables as the page, figures as image links.

User text is HTML-escaped and Markdown's table and link characters are escaped (:func:`md_text`),
so a space named ``a|b`` or ``<img ...>`` stays text. Links point inside the report folder.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from latentbench.report.load import Run
from latentbench.report.provenance import device_text, seeds_text
from latentbench.report.significance import BEST_MARK, Mark, interval_text
from latentbench.report.sources import Sources
from latentbench.report.tables import Cell, Column, Table

if TYPE_CHECKING:
    from latentbench.report import Report


def md_text(text: str) -> str:
    """User text for a Markdown table cell: HTML-escaped, pipes and brackets escaped."""
    out = html.escape(str(text), quote=True)
    for ch in "\\|[]`*_":
        out = out.replace(ch, "\\" + ch)
    return out.replace("\n", " ")


def _md_title(text: str) -> str:
    return html.escape(text, quote=True).replace("\n", " ")


def _cell(table: Table, column: Column, cell: Cell | None, sources: Sources) -> str:
    if cell is None:
        return ""
    s = cell.scalar
    text = cell.text
    if cell.mark is Mark.BEST:
        text = f"**{text}** {BEST_MARK}"
    note = table.cell_note(column, cell)
    title = interval_text(s.interval) + (f"; {s.variant}" if s.variant else "")
    link = sources.href(s.source)
    out = f'[{text}]({link} "{_md_title(title)}")' if link else text
    return out + (f" [{note}]" if note else "")


def table_markdown(table: Table, sources: Sources) -> str:
    head = (["run"] if table.show_run else []) + ["space"]
    for c in table.columns:
        head.append(md_text(c.label) + c.direction.arrow + (f" [{c.note}]" if c.note else ""))
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for row in table.rows:
        cells = ([md_text(row.run)] if table.show_run else []) + [md_text(row.space)]
        cells += [_cell(table, c, row.cells.get(c.key), sources) for c in table.columns]
        lines.append("| " + " | ".join(cells) + " |")
    if any(c.verdict for c in table.columns):
        lead = ["*difference*"] + [""] * (1 if table.show_run else 0)
        lines.append("| " + " | ".join(lead + [md_text(c.verdict) for c in table.columns]) + " |")
    if table.notes:
        lines.append("")
        lines += [f"[{n}] {md_text(v)}  " for v, n in table.notes.items()]
    return "\n".join(lines)


def _table_block(table: Table, sources: Sources, level: str) -> list[str]:
    lines = [f"{level} {md_text(table.title)}", ""]
    if table.intro:
        lines += [md_text(table.intro), ""]
    lines += [f"> \u26a0 {md_text(w)}" + "  " for w in table.warnings]
    if table.warnings:
        lines.append("")
    return lines + [table_markdown(table, sources), ""]


def _rel(path: Path, root: Path) -> str:
    return path.relative_to(root).as_posix()


def render_markdown(report: Report, root: Path) -> str:
    """README.md: the headline, the figures, the secondary tables, the runs."""
    lines = [
        f"# {md_text(report.title)}",
        "",
        f"{len(report.runs)} run(s); generated {report.created} by latentbench "
        f"{report.version}. {md_text(report.commit)} Open `index.html` for the self-contained "
        "page; `metrics.csv` and `curves.csv` hold every number. Numbers link to copies of the "
        f"run files under `sources/`; {BEST_MARK} marks a value best beyond the 95% intervals "
        "(\u2191 higher / \u2193 lower is better).",
        "",
    ]
    if report.headline is not None:
        lines += _table_block(report.headline, report.sources, "##")
        if report.headline_figure is not None:
            rel = _rel(report.headline_figure.path, root)
            lines += [f"The headline table as an image: [{Path(rel).name}]({rel})", ""]
    for section in report.sections:
        lines += [f"## {md_text(section.title)}", ""]
        lines += [md_text(x) + "  " for x in [section.intro, *section.lines] if x] + [""]
        if section.header:
            lines += ["| " + " | ".join(md_text(h) for h in section.header) + " |"]
            lines += ["|" + "---|" * len(section.header)]
            lines += ["| " + " | ".join(md_text(c) for c in row) + " |" for row in section.rows]
            lines += [""]
        for ref in section.figures:
            lines += [f"![{md_text(ref.title)}]({_rel(ref.path, root)})", ""]
            lines += [f"*{md_text(ref.title)}*: {md_text(ref.caption)}", ""]
    if report.tables:
        lines += ["## Details", ""]
    for table in report.tables:
        lines += _table_block(table, report.sources, "###")
    return "\n".join(lines + runs_markdown(report.runs, report.sources)) + "\n"


def runs_markdown(runs: Sequence[Run], sources: Sources) -> list[str]:
    """The Runs table, with the columns of the page's."""
    head = ("run", "command", "git commit", "seed(s)", "time", "device", "notes")
    lines = ["## Runs", "", "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for r in runs:
        link = sources.run_href(r)
        name = f"[{md_text(r.name)}]({link})" if link else md_text(r.name)
        cells = (r.command, r.git or "unknown", seeds_text(r), str(r.manifest.get("time") or ""),
                 device_text(r.manifest), "; ".join(r.notes))  # fmt: skip
        lines.append(f"| {name} | " + " | ".join(md_text(c) for c in cells) + " |")
    return lines
