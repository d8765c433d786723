"""reports/compare/index.html: the comparison with the baselines on one static page: Table 1 and the
activation precision table (as table1.md has them) and the Figure-4 style panels. Inline CSS, relative
links only, no script: it opens from the file system and fetches nothing."""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

_STYLE = """body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif;
       margin: 1.5em auto; max-width: 1600px; padding: 0 1em; color: #111; line-height: 1.45; }
h2 { border-bottom: 1px solid #ccc; padding-bottom: 0.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0; }
th, td { border: 1px solid #ccc; padding: 0.15em 0.6em; text-align: right; }
th { background: #f4f6f8; }
td:first-child { text-align: left; }
img { max-width: 100%; height: auto; display: block; border: 1px solid #eee; }
figure { margin: 1em 0; }
.meta { color: #444; }"""


def _cell(text: str) -> str:
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", html.escape(text))


def html_table(rows: Sequence[Sequence[str]]) -> str:
    """A table from rows of cells (the first row is the header; **x** in a cell is bold)."""
    head = "".join(f"<th>{_cell(c)}</th>" for c in rows[0])
    body = "".join("<tr>" + "".join(f"<td>{_cell(c)}</td>" for c in r) + "</tr>" for r in rows[1:])
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_compare_page(intro: Sequence[str], tables: Sequence[tuple[str, str, Sequence[Sequence[str]]]],
                        figures: Sequence[tuple[str, str]], figure_note: str) -> str:
    """The page: `intro` paragraphs (plain text), then each (title, explanation, rows) table, then the
    figures (relative PNG path, caption) under `figure_note`."""
    parts = [f'<p class="meta">{html.escape(p)}</p>' for p in intro]
    for title, explanation, rows in tables:
        parts.append(f"<h2>{html.escape(title)}</h2><p>{html.escape(explanation)}</p>{html_table(rows)}")
    parts.append(f'<h2 id="figure4">Activation maps side by side (Figure 4)</h2><p>{html.escape(figure_note)}</p>')
    if not figures:
        parts.append("<p>No case was drawn (compare.figure_cases is 0, or no annotated test lesion).</p>")
    for path, text in figures:
        src = html.escape(path, quote=True)
        parts.append(f'<figure><a href="{src}"><img src="{src}" alt="{html.escape(text, quote=True)}"></a>'
                     f"<figcaption>{html.escape(text)}</figcaption></figure>")
    body = "\n".join(parts)
    return (f'<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">\n'
            f"<title>FPN-IAIA-BL and the baselines</title>\n<style>\n{_STYLE}\n</style>\n</head>\n<body>\n"
            f"<h1>FPN-IAIA-BL and the baselines (Table 1, Figure 4)</h1>\n{body}\n</body>\n</html>\n")
