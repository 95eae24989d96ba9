"""A report's blocks as Markdown and as one self-contained HTML page.

Blocks are ("h1" | "h2" | "h3" | "p", text), ("img", path, caption) and ("table", frame). The HTML is the
same Markdown rendered by markdown-it-py (a maintained CommonMark renderer, with tables), plus what
a page needs and Markdown has not: a table of contents, figures embedded with their captions, and
verdicts coloured (better / worse / no detectable difference).
"""

from __future__ import annotations

import base64
import html
import math
import re
from pathlib import Path

from markdown_it import MarkdownIt

VERDICTS = {"better": "better", "helps": "better", "worse": "worse", "hurts": "worse", "no detectable difference": "none"}
STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:1150px;margin:2em auto;padding:0 1em;line-height:1.45;color:#222}"
    "table{border-collapse:collapse;font-size:13px;margin:1em 0;display:block;overflow-x:auto}"
    "td,th{border:1px solid #ccc;padding:3px 7px;vertical-align:top}tr:nth-child(even){background:#f7f7f7}"
    "th{background:#eee;position:sticky;top:0}figure{margin:1.2em 0}img{max-width:100%}"
    "figcaption{font-size:13px;color:#555}code{background:#f1f1f1;padding:0 3px;border-radius:3px}"
    "nav{background:#f7f7f7;padding:.5em 1em;font-size:14px}"
    ".better{color:#137333;font-weight:600}.worse{color:#b3261e;font-weight:600}.none{color:#666}"
)


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value).replace("|", "\\|").replace("\n", " ")


def to_markdown(blocks, out: Path) -> str:
    lines = []
    for kind, *content in blocks:
        if kind in ("h1", "h2", "h3"):
            lines += ["#" * int(kind[1]) + " " + content[0], ""]
        elif kind == "p":
            lines += [content[0], ""]
        elif kind == "img":
            lines += [f"![{content[0].stem}]({content[0].relative_to(out)})", ""]
            lines += [f"*{content[1]}*", ""] if len(content) > 1 else []
        elif kind == "table":
            lines += [_markdown_table(content[0]), ""]
    return "\n".join(lines)


def _markdown_table(table) -> str:
    lines = ["| " + " | ".join(map(str, table.columns)) + " |", "|" + " --- |" * len(table.columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines)


def to_html(blocks, title: str) -> str:
    md = MarkdownIt("commonmark").enable("table")
    body, contents = [], []
    for kind, *content in blocks:
        if kind == "h2":
            anchor = re.sub(r"[^a-z0-9]+", "-", content[0].lower()).strip("-")
            contents.append(f'<li><a href="#{anchor}">{html.escape(content[0])}</a></li>')
            body.append(f'<h2 id="{anchor}">{md.renderInline(content[0])}</h2>')
        elif kind in ("h1", "h3"):
            body.append(f"<{kind}>{md.renderInline(content[0])}</{kind}>")
        elif kind == "p":
            body.append(md.render(content[0]))
        elif kind == "img":
            data = base64.b64encode(content[0].read_bytes()).decode()
            caption = f"<figcaption>{md.renderInline(content[1])}</figcaption>" if len(content) > 1 else ""
            body.append(
                f'<figure><img alt="{html.escape(content[0].stem)}" src="data:image/png;base64,{data}">{caption}</figure>'
            )
        elif kind == "table":
            body.append(_coloured(md.render(_markdown_table(content[0]))))
    nav = f"<nav><b>Contents</b><ul>{''.join(contents)}</ul></nav>"
    head = f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title><style>{STYLE}</style></head><body>\n'
    return head + body[0] + "\n" + nav + "\n" + "\n".join(body[1:]) + "\n</body></html>\n"


def _coloured(table_html: str) -> str:
    """A table cell that is a verdict (or ends with one in brackets) in its verdict's colour."""
    pattern = "|".join(re.escape(v) for v in sorted(VERDICTS, key=len, reverse=True))
    return re.sub(
        rf"<td>([^<]*?)\b({pattern})\b", lambda m: f'<td>{m[1]}<span class="{VERDICTS[m[2]]}">{m[2]}</span>', table_html
    )
