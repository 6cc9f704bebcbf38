"""A small Markdown subset to one self-contained HTML page (images inlined, no scripts)."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path


def inline(s: str) -> str:
    s = html.escape(s)
    s = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)
    return re.sub(r"`(.+?)`", r"<code>\1</code>", s)


def table(rows: list[list[str]]) -> str:
    head, body = rows[0], rows[2:]  # rows[1] is the Markdown rule
    return (
        "<table><tr>"
        + "".join(f"<th>{inline(c)}</th>" for c in head)
        + "</tr>"
        + "".join("<tr>" + "".join(f"<td>{inline(c)}</td>" for c in r) + "</tr>" for r in body)
        + "</table>"
    )


def take(lines: list[str], i: int, prefix: str) -> tuple[list[str], int]:
    """The run of lines starting at ``i`` that begin with ``prefix``, and the index after."""
    out = []
    while i < len(lines) and lines[i].startswith(prefix):
        out.append(lines[i])
        i += 1
    return out, i


STYLE = (
    "body{font-family:sans-serif;max-width:60em;margin:2em auto;color:#222}"
    "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;"
    "padding:.2em .6em;text-align:right}td:first-child,th:first-child{text-align:left}"
    "th{background:#f3f3f3}img{max-width:100%}"
    "code{background:#f3f3f3;padding:0 .2em}"
)


def to_html(markdown: str, folder: Path, title: str) -> str:
    """Headings, paragraphs, lists, tables and images (read from ``folder``, inlined)."""
    body: list[str] = []
    lines = markdown.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("|"):
            rows, i = take(lines, i, "|")
            body.append(table([[c.strip() for c in r.strip("|").split("|")] for r in rows]))
            continue
        if line.startswith("- "):
            items, i = take(lines, i, "- ")
            body.append("<ul>" + "".join(f"<li>{inline(x[2:])}</li>" for x in items) + "</ul>")
            continue
        m = re.match(r"!\[(.*)\]\((.+)\)", line)
        if m:
            data = base64.b64encode((folder / m.group(2)).read_bytes()).decode()
            body.append(f'<img alt="{html.escape(m.group(1))}" src="data:image/png;base64,{data}">')
        elif line.startswith("#"):
            level = len(line) - len(line.lstrip("#"))
            body.append(f"<h{level}>{inline(line[level:].strip())}</h{level}>")
        elif line.strip():
            body.append(f"<p>{inline(line)}</p>")
        i += 1
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )
