"""A report's blocks (("h1", text), ("p", text), ("img", path), ("table", frame)) as Markdown and as one
self-contained HTML page."""

from __future__ import annotations

import base64
import html
import math
from pathlib import Path


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def to_markdown(blocks, out: Path) -> str:
    lines = []
    for kind, *content in blocks:
        if kind in ("h1", "h2"):
            lines += ["#" * int(kind[1]) + " " + content[0], ""]
        elif kind == "p":
            lines += [content[0], ""]
        elif kind == "img":
            lines += [f"![{content[0].stem}]({content[0].relative_to(out)})", ""]
        elif kind == "table":
            table = content[0]
            lines += ["| " + " | ".join(map(str, table.columns)) + " |", "|" + " --- |" * len(table.columns)]
            lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in table.itertuples(index=False)]
            lines.append("")
    return "\n".join(lines)


def to_html(blocks, title: str) -> str:
    body = []
    for kind, *content in blocks:
        if kind in ("h1", "h2"):
            body.append(f"<{kind}>{html.escape(content[0])}</{kind}>")
        elif kind == "p":
            text = html.escape(content[0])
            text = text.replace("**", "<b>", 1).replace("**", "</b>", 1) if text.count("**") >= 2 else text
            body.append(f"<p>{text}</p>")
        elif kind == "img":
            data = base64.b64encode(content[0].read_bytes()).decode()
            body.append(f'<img alt="{html.escape(content[0].stem)}" src="data:image/png;base64,{data}">')
        elif kind == "table":
            table = content[0]
            head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
            rows = "".join(
                "<tr>" + "".join(f"<td>{html.escape(_cell(v))}</td>" for v in row) + "</tr>"
                for row in table.itertuples(index=False)
            )
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>")
    style = (
        "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
        "table{border-collapse:collapse;font-size:13px;margin:1em 0}td,th{border:1px solid #ccc;padding:3px 6px}"
        "img{max-width:100%}"
    )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{style}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
