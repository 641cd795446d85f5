"""Griffe extension: read rxmqtt's Sphinx-flavoured docstrings as Markdown.

The library's docstrings use Google-style sections (``Args:``, ``Raises:``, ...) that
mkdocstrings understands, plus a few reStructuredText habits that Markdown does not:

- roles such as ``:class:`~rxmqtt.policies.Backoff```: become cross-references (optional ones,
  so a target that is not rendered anywhere stays plain code instead of failing the build);
- literal blocks introduced by ``::``: become fenced code blocks (``pycon`` for ``>>>``
  sessions, ``python`` when the block parses as Python, ``text`` for marble diagrams);
- simple tables (``=====  =====`` rules): become Markdown tables, or a bullet list when the
  table has no header row.

Loaded by mkdocstrings (``extensions:`` in ``mkdocs.yml``); it never changes the source files.
"""

from __future__ import annotations

import ast
import html
import re
import textwrap
from typing import Any

import griffe

_ROLE = re.compile(
    r":(?:py:)?(?P<role>class|func|meth|attr|data|mod|exc|obj|const):"
    r"`(?P<tilde>~?)(?P<body>[^`]+)`"
)
_TITLED = re.compile(r"^(?P<title>.+?)\s*<(?P<target>[^>]+)>$")
_RULE = re.compile(r"^(?P<indent>\s*)=+(?:\s+=+)+\s*$")


class RstToMarkdown(griffe.Extension):
    """Rewrite each docstring once, after the object tree is complete (names resolve then)."""

    def on_object(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        docstring = obj.docstring
        if docstring is None or getattr(docstring, "_rxmqtt_converted", False):
            return
        docstring.value = convert(docstring.value, obj)
        docstring._rxmqtt_converted = True  # type: ignore[attr-defined]  # noqa: SLF001 - our mark


def convert(text: str, obj: griffe.Object | None = None) -> str:
    """The Markdown form of one docstring (``obj`` resolves relative role targets)."""
    text = _convert_literal_blocks(text)
    text = _convert_tables(text)
    return _convert_roles(text, obj)


# ------------------------------------------------------------------------------------- roles


def _resolve(target: str, obj: griffe.Object | None) -> str | None:
    if target.startswith("rxmqtt.") or target == "rxmqtt":
        return target
    if obj is None:
        return None
    head, _, rest = target.partition(".")
    try:
        resolved = obj.resolve(head)
    except Exception:  # griffe raises NameResolutionError (and friends) for unknown names
        return None
    if not resolved.startswith("rxmqtt"):
        return None
    return f"{resolved}.{rest}" if rest else resolved


def _convert_roles(text: str, obj: griffe.Object | None) -> str:
    # Roles inside fenced code blocks are left alone.
    parts = re.split(r"(^\s*```.*?^\s*```[^\n]*$)", text, flags=re.MULTILINE | re.DOTALL)
    for index in range(0, len(parts), 2):
        parts[index] = _ROLE.sub(lambda match: _role(match, obj), parts[index])
    return "".join(parts)


def _role(match: re.Match[str], obj: griffe.Object | None) -> str:
    body = match.group("body").strip()
    titled = _TITLED.match(body)
    if titled:
        title, target = titled.group("title"), titled.group("target")
    else:
        target = body.lstrip("~.")
        title = target.rsplit(".", 1)[-1] if match.group("tilde") else target
    if match.group("role") in ("func", "meth") and not title.endswith(")"):
        title += "()"
    identifier = _resolve(target.lstrip("."), obj)
    code = f"<code>{html.escape(title)}</code>"
    if identifier is None:
        return code
    return f'<autoref identifier="{html.escape(identifier)}" optional>{code}</autoref>'


# ------------------------------------------------------------------------------ literal blocks


def _fence_language(block: str) -> str:
    if block.lstrip().startswith(">>>"):
        return "pycon"
    try:
        ast.parse(block)
    except SyntaxError:
        return "text"
    return "python"


def _convert_literal_blocks(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    index = 0
    while index < len(lines):
        line = lines[index]
        stripped = line.rstrip()
        if not stripped.endswith("::") or stripped.endswith(":::"):
            out.append(line)
            index += 1
            continue
        # Find the indented block that follows (after blank lines).
        base = len(line) - len(line.lstrip())
        start = index + 1
        while start < len(lines) and not lines[start].strip():
            start += 1
        end = start
        while end < len(lines) and (
            not lines[end].strip() or len(lines[end]) - len(lines[end].lstrip()) > base
        ):
            end += 1
        while end > start and not lines[end - 1].strip():
            end -= 1
        if end == start:  # no block after all: keep the text as it is
            out.append(line)
            index += 1
            continue
        intro = stripped[:-2].rstrip()
        if intro.strip():
            out.append(intro + ":")
        block = textwrap.dedent("\n".join(lines[start:end]))
        pad = " " * base
        out.append("")
        out.append(f"{pad}```{_fence_language(block)}")
        out.extend(f"{pad}{row}" if row else "" for row in block.split("\n"))
        out.append(f"{pad}```")
        out.append("")
        index = end
    return "\n".join(out)


# ------------------------------------------------------------------------------------- tables


def _columns(rule: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in re.finditer(r"=+", rule)]


def _split_row(line: str, columns: list[tuple[int, int]]) -> list[str]:
    cells = []
    for number, (start, _end) in enumerate(columns):
        stop = columns[number + 1][0] if number + 1 < len(columns) else len(line)
        cells.append(line[start:stop].strip())
    return cells


def _convert_tables(text: str) -> str:
    lines = text.split("\n")
    out: list[str] = []
    index = 0
    while index < len(lines):
        match = _RULE.match(lines[index])
        if not match:
            out.append(lines[index])
            index += 1
            continue
        columns = _columns(lines[index])
        rules = [index]
        cursor = index + 1
        while cursor < len(lines) and lines[cursor].strip():
            if _RULE.match(lines[cursor]):
                rules.append(cursor)
            cursor += 1
        if len(rules) < 2:
            out.append(lines[index])
            index += 1
            continue
        header: list[str] | None = None
        body_start = rules[0] + 1
        if len(rules) >= 3:
            header = _split_row(lines[rules[0] + 1], columns)
            body_start = rules[1] + 1
        rows: list[list[str]] = []
        for line in lines[body_start : rules[-1]]:
            if _RULE.match(line):
                continue
            cells = _split_row(line, columns)
            if rows and not cells[0]:  # a continuation line: extends the previous row
                for number, cell in enumerate(cells):
                    if cell:
                        rows[-1][number] = f"{rows[-1][number]} {cell}".strip()
            else:
                rows.append(cells)
        pad = match.group("indent")
        if header is None and len(columns) == 2:
            out.extend(f"{pad}- {first}: {second}" for first, second in rows)
        else:
            head = header or [""] * len(columns)
            out.append(pad + "| " + " | ".join(head) + " |")
            out.append(pad + "|" + "---|" * len(columns))
            out.extend(pad + "| " + " | ".join(row) + " |" for row in rows)
        index = rules[-1] + 1
    return "\n".join(out)
