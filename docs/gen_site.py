"""MkDocs hooks (``hooks:`` in ``mkdocs.yml``): the parts of the docs that are generated from code.

In a page, an HTML comment asks for generated content (unknown names fail the build):

``<!-- generated: marble KEY -->``
    A marble diagram of ``docs/marbles.py``'s case ``KEY``, played in virtual time by the real
    operator (``tests/test_docs_snippets.py`` checks the same cases against the operator tests).
``<!-- generated: jitter MODE -->`` / ``<!-- generated: jitter-table -->``
    The retries of ``retry_with_backoff`` under one ``Jitter`` mode, seeded, in virtual time;
    the table of all modes' delays.
``<!-- generated: reason-codes -->`` / ``<!-- generated: retriable-publish-codes -->``
    The reason-code table, from ``rxmqtt.policies.REASON_CODES``.
``<!-- generated: public-names -->``
    Every name in ``rxmqtt.__all__``, linked to its API reference entry (a name without one
    fails the strict build).

Conditional blocks keep the site buildable while pages are still being written:
``<!-- if-exists: PATH -->...<!-- else -->...<!-- end-if -->`` keeps the first part when
``PATH`` (relative to ``docs/``) is part of the site, else the optional second part. Nav entries
for the pages in ``OPTIONAL_PAGES`` are dropped while those files do not exist, and reference
pages whose module does not exist yet (``REFERENCE_NEEDS``) are left out.
"""

from __future__ import annotations

import html
import importlib.util
import logging
import re
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

log = logging.getLogger("mkdocs.hooks.gen_site")

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent

OPTIONAL_PAGES = frozenset(
    {
        "application-types.md",
        "envoys.md",
        "kubernetes.md",
        "benchmarks.md",
        "scaling-out.md",
    }
)
"""Pages other people are writing: in the nav when they exist, silently absent until then."""

REFERENCE_NEEDS = {"reference/binders.md": "rxmqtt/binders/__init__.py"}
"""Reference pages that only make sense once their module exists."""


def load_docs_module(name: str) -> ModuleType:
    """Import ``docs/NAME.py`` (``docs/`` is not a package)."""
    qualified = f"rxmqtt_docs_{name}"
    if qualified in sys.modules:
        return sys.modules[qualified]
    spec = importlib.util.spec_from_file_location(qualified, DOCS / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[qualified] = module  # dataclasses look their module up while being built
    spec.loader.exec_module(module)
    return module


def _absent(path: str) -> bool:
    if path in OPTIONAL_PAGES and not (DOCS / path).is_file():
        return True
    needs = REFERENCE_NEEDS.get(path)
    return needs is not None and not (ROOT / needs).is_file()


def _prune(nav: Any) -> Any:
    """``nav`` without the entries whose page is absent (sections left empty go too)."""
    if isinstance(nav, list):
        kept = [item for item in (_prune(item) for item in nav) if item is not None]
        return kept or None
    if isinstance(nav, dict):
        kept_dict = {}
        for title, value in nav.items():
            pruned = _prune(value)
            if pruned is not None:
                kept_dict[title] = pruned
        return kept_dict or None
    if isinstance(nav, str) and _absent(nav):
        log.info("gen_site: %s is not written yet; left out of the nav", nav)
        return None
    return nav


# ------------------------------------------------------------------------------ mkdocs hooks


def on_config(config: Any) -> Any:
    if config.nav is not None:
        config.nav = _prune(config.nav) or []
    return config


def on_files(files: Any, config: Any) -> Any:
    for path in REFERENCE_NEEDS:
        file = files.get_file_from_path(path)
        if file is not None and _absent(path):
            files.remove(file)
    return files


_CONDITIONAL = re.compile(
    r"<!-- if-exists: (?P<path>[^ ]+) -->(?P<then>.*?)"
    r"(?:<!-- else -->(?P<otherwise>.*?))?<!-- end-if -->",
    re.DOTALL,
)
_OUTPUT = re.compile(
    r"(?P<head><!-- snippet: output -->\s*\n[ \t]*)(?P<fence>`{3,})text[ \t]*$", re.MULTILINE
)
"""An output block (see ``tests/test_docs_snippets.py``) gets the title "Output" on the site."""
_GENERATED = re.compile(r"<!-- generated: (?P<what>[^>]+?) -->")


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    def conditional(match: re.Match[str]) -> str:
        present = files.get_file_from_path(match.group("path")) is not None
        return match.group("then") if present else (match.group("otherwise") or "")

    markdown = _CONDITIONAL.sub(conditional, markdown)
    markdown = _OUTPUT.sub(
        lambda m: m.group("head") + m.group("fence") + 'text title="Output"', markdown
    )
    return _GENERATED.sub(lambda m: generate(m.group("what").strip(), page.file.src_uri), markdown)


def generate(what: str, where: str = "?") -> str:
    """The Markdown/HTML for one ``<!-- generated: ... -->`` comment."""
    kind, _, argument = what.partition(" ")
    if kind == "marble":
        return marble_diagram(argument)
    if kind == "jitter":
        return jitter_diagram(argument)
    if kind == "jitter-table":
        return jitter_table()
    if kind == "reason-codes":
        return reason_code_table()
    if kind == "retriable-publish-codes":
        return retriable_publish_codes()
    if kind == "public-names":
        return public_names()
    raise ValueError(f"{where}: unknown generated content {what!r}")


# ----------------------------------------------------------------------------- marble diagrams

_TICK = 26.0
_LABEL = 118.0
_RIGHT = 24.0
_ROW = 46.0
_RADIUS = 11.0
_CHAR = 7.8  # width of one character of the 12.5px monospace code font


def _text(x: float, y: float, text: str, cls: str, anchor: str = "middle") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" class="{cls}" text-anchor="{anchor}" '
        f'dominant-baseline="central">{html.escape(text)}</text>'
    )


def _event_glyph(kind: str, value: Any, x: float, y: float) -> str:
    if kind == "N":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="{_RADIUS}" class="m-item"/>' + _text(
            x, y, str(value), "m-item-label"
        )
    if kind == "E":
        d = 7.0
        return (
            f'<path d="M{x - d:.1f} {y - d:.1f} L{x + d:.1f} {y + d:.1f} '
            f'M{x - d:.1f} {y + d:.1f} L{x + d:.1f} {y - d:.1f}" class="m-error"/>'
        )
    return f'<path d="M{x:.1f} {y - 12:.1f} V{y + 12:.1f}" class="m-end"/>'


def marble_diagram(key: str) -> str:
    marbles = load_docs_module("marbles")
    cases = {case.key: case for case in marbles.CASES}
    if key not in cases:
        raise ValueError(f"no marble case {key!r} in docs/marbles.py (have: {sorted(cases)})")
    case = cases[key]
    trace = marbles.play(case)
    last = max(
        [e.time for e in trace.result]
        + [r.start for r in trace.runs]
        + [e.time for r in trace.runs for e in r.events]
    )
    ticks = int(last) + 2
    operator_width = len(case.operator) * _CHAR + 24  # the operator box must hold its code
    tick = max(_TICK, operator_width / ticks)
    width = _LABEL + ticks * tick + _RIGHT

    def x_at(t: float) -> float:
        return _LABEL + (t + 0.5) * tick

    parts: list[str] = []
    y = _ROW / 2 + 4
    for number, run in enumerate(trace.runs, start=1):
        end = run.end if run.end is not None else ticks - 0.5
        parts.append(_text(8, y, f"subscription {number}", "m-label", "start"))
        parts.append(
            f'<path d="M{x_at(run.start) - 8:.1f} {y:.1f} H{x_at(end) + 8:.1f}" class="m-line"/>'
        )
        parts.append(
            f'<path d="M{x_at(run.start):.1f} {y - 6:.1f} V{y + 6:.1f}" class="m-subscribe"/>'
        )
        parts.extend(_event_glyph(e.kind, e.value, x_at(e.time), y) for e in run.events)
        if run.end == run.start and not run.events:
            parts.append(
                _text(x_at(run.start) - 12, y, "resubscribed, disposed at once", "m-tick", "end")
            )
        y += _ROW
    box_top = y - _ROW / 2 + 6
    parts.append(
        f'<rect x="{_LABEL - 6:.1f}" y="{box_top:.1f}" width="{width - _LABEL - _RIGHT + 12:.1f}" '
        f'height="34" rx="4" class="m-operator"/>'
    )
    parts.append(_text(_LABEL + 6, box_top + 17, case.operator, "m-code", "start"))
    y += _ROW
    parts.append(_text(8, y, "result", "m-label m-result", "start"))
    parts.append(
        f'<path d="M{_LABEL - 4:.1f} {y:.1f} H{width - 10:.1f}" class="m-line m-arrow" '
        f'marker-end="url(#m-head-{key})"/>'
    )
    parts.extend(_event_glyph(e.kind, e.value, x_at(e.time), y) for e in trace.result)
    y += _ROW * 0.7
    for t in range(0, ticks, 5 if ticks > 12 else 1):
        parts.append(f'<path d="M{x_at(t):.1f} {y - 6:.1f} V{y - 2:.1f}" class="m-axis"/>')
        parts.append(_text(x_at(t), y + 6, str(t), "m-tick"))
    height = y + 18
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" role="img" aria-label="{html.escape(case.title)}">'
        f'<defs><marker id="m-head-{key}" viewBox="0 0 10 10" refX="9" refY="5" '
        'markerWidth="7" markerHeight="7" orient="auto-start-reverse">'
        '<path d="M0 0 L10 5 L0 10 z" class="m-head"/></marker></defs>' + "".join(parts) + "</svg>"
    )
    lines = [
        f'<figure class="marble" markdown="0" id="marble-{key}">',
        f"<figcaption>{html.escape(case.title)}</figcaption>",
        svg,
        "</figure>",
        "",
    ]
    if case.caption:
        lines += [case.caption, ""]
    lines += ['```text title="The same run as marble strings"', _marble_text(case, trace)]
    lines += ["```", ""]
    return "\n".join(lines)


def _marble_text(case: Any, trace: Any) -> str:
    """The diagram as aligned marble strings (spaces do not advance time in marble syntax)."""
    rows = [("operator", case.operator)]
    for number, run in enumerate(trace.runs, start=1):
        if run.end == run.start and not run.events:
            continue  # resubscribed and disposed at once: nothing to write as a marble
        shown = run.marble
        if run.end is not None:
            shown = shown[: max(0, int(run.end - run.start) + 1)]
        rows.append((f"subscription {number}", " " * int(run.start) + shown))
    rows.append(("result", case.expected))
    width = max(len(label) for label, _ in rows) + 2
    return "\n".join(f"{label + ':':<{width}}{text}" for label, text in rows)


# ------------------------------------------------------------------------------ jitter charts


def _jitter_mode(name: str) -> Any:
    from rxmqtt.policies import Jitter

    try:
        return Jitter[name.upper()]
    except KeyError:
        raise ValueError(f"unknown jitter mode {name!r}") from None


def jitter_diagram(mode: str) -> str:
    marbles = load_docs_module("marbles")
    jitter = _jitter_mode(mode)
    trace = marbles.play_jitter(jitter)
    # Same scales for every mode, so the four charts compare at a glance.
    horizon = max(
        marbles.play_jitter(j).subscribed_at[-1] for j in type(jitter)
    )  # seconds until the last retry of the slowest mode
    maximum = marbles.JITTER_BACKOFF["maximum"]
    width, left, right = 720.0, 64.0, 20.0
    span = width - left - right
    parts: list[str] = []

    # 1. Timeline: a failing subscription at each start, the waits between them.
    parts.append(_text(8, 12, "subscriptions (each fails at once) over time", "m-label", "start"))
    y = 40.0
    parts.append(f'<path d="M{left:.1f} {y:.1f} H{width - right:.1f}" class="m-line"/>')

    def x_time(t: float) -> float:
        return left + t / horizon * span

    for t in trace.subscribed_at:
        parts.append(_event_glyph("E", None, x_time(t), y))
    for t in range(0, int(horizon) + 1, 10):
        parts.append(f'<path d="M{x_time(t):.1f} {y + 14:.1f} V{y + 18:.1f}" class="m-axis"/>')
        parts.append(_text(x_time(t), y + 27, f"{t}s", "m-tick"))

    # 2. The delay of each retry, inside the range the mode draws it from.
    top, bottom = 118.0, 288.0
    slot = span / len(trace.steps)

    def y_delay(d: float) -> float:
        return bottom - d / maximum * (bottom - top)

    for d in (0, 4, 8, 12, 16):
        parts.append(
            f'<path d="M{left:.1f} {y_delay(d):.1f} H{width - right:.1f}" class="m-grid"/>'
        )
        parts.append(_text(left - 8, y_delay(d), f"{d}s", "m-tick", "end"))
    parts.append(_text(8, top - 22, "the delay before each retry", "m-label", "start"))
    for index, step in enumerate(trace.steps):
        cx = left + (index + 0.5) * slot
        low, high = y_delay(step.low), y_delay(step.high)
        parts.append(
            f'<rect x="{cx - slot * 0.3:.1f}" y="{high:.1f}" width="{slot * 0.6:.1f}" '
            f'height="{max(low - high, 2.0):.1f}" class="m-range"/>'
        )
        parts.append(
            f'<path d="M{cx - slot * 0.3:.1f} {y_delay(step.base):.1f} H{cx + slot * 0.3:.1f}" '
            'class="m-base"/>'
        )
        parts.append(f'<circle cx="{cx:.1f}" cy="{y_delay(step.delay):.1f}" r="6" class="m-item"/>')
        parts.append(_text(cx, bottom + 16, str(step.attempt), "m-tick"))
    parts.append(_text(left + span / 2, bottom + 34, "retry n", "m-tick"))
    height = bottom + 46
    title = f"Jitter.{jitter.name}: {len(trace.steps)} retries, seed {marbles.JITTER_SEED}"
    total = trace.subscribed_at[-1]
    svg = (
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width:.0f} {height:.0f}" '
        f'width="{width:.0f}" role="img" aria-label="{html.escape(title)}">'
        + "".join(parts)
        + "</svg>"
    )
    return "\n".join(
        [
            f'<figure class="marble" markdown="0" id="jitter-{jitter.name.lower()}">',
            f"<figcaption>{html.escape(title)}: {total:.1f} s of waiting in all</figcaption>",
            svg,
            "</figure>",
            "",
        ]
    )


def jitter_table() -> str:
    marbles = load_docs_module("marbles")
    from rxmqtt.policies import Jitter

    traces = {j: marbles.play_jitter(j) for j in Jitter}
    header = "| Retry | " + " | ".join(f"`{j.name}`" for j in Jitter) + " |"
    lines = [header, "|---:|" + "---:|" * len(traces)]
    for index in range(marbles.JITTER_RETRIES):
        cells = [f"{traces[j].steps[index].delay:.2f}" for j in Jitter]
        lines.append(f"| {index + 1} | " + " | ".join(cells) + " |")
    totals = [f"**{traces[j].subscribed_at[-1]:.1f}**" for j in Jitter]
    lines.append("| total wait | " + " | ".join(totals) + " |")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------------ reason codes


def reason_code_table() -> str:
    from rxmqtt.policies import REASON_CODES

    lines = [
        "| Code | Name <small>(packets it may come in)</small> | Ends reconnecting? | Why |",
        "|------|------|--------------------|-----|",
    ]
    for info in REASON_CODES.values():
        if info.code < 0x80:
            continue
        if info.fatal and info.fatal_on_disconnect is False:
            fatal = "**yes** in a CONNACK; no in a DISCONNECT"
        elif info.fatal:
            fatal = "**yes** → `FAILED`"
        else:
            fatal = "no: retried with backoff"
        packets = ", ".join(info.packets)
        name = f"{info.name}<br><small>{packets}</small>"
        lines.append(f"| `0x{info.code:02X}` | {name} | {fatal} | {info.why} |")
    successes = ", ".join(
        f"`0x{info.code:02X}` {info.name}" for info in REASON_CODES.values() if info.code < 0x80
    )
    lines += ["", f"Codes below `0x80` are not errors: {successes}."]
    return "\n".join(lines) + "\n"


def retriable_publish_codes() -> str:
    from rxmqtt.policies import REASON_CODES, is_retriable_publish_code

    names = [
        f"`0x{code:02X}` {info.name}"
        for code, info in REASON_CODES.items()
        if is_retriable_publish_code(code)
    ]
    return " and ".join(names)


# ------------------------------------------------------------------------------ public names


def public_names() -> str:
    import rxmqtt

    lines = ["| Name | What it is |", "|------|------------|"]
    for name in rxmqtt.__all__:
        value = getattr(rxmqtt, name)
        if name == "LifecycleEvent":
            summary = "The union of the seven lifecycle event types, `Connecting` to `GaveUp`."
        else:
            doc = (getattr(value, "__doc__", None) or "").strip().split("\n\n")[0]
            summary = load_docs_module("gen_docstrings").convert(" ".join(doc.split()))
        summary = summary.replace("|", "\\|")
        lines.append(f"| [`{name}`][rxmqtt.{name}] | {summary} |")
    return "\n".join(lines) + "\n"
