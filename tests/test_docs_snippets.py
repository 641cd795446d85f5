"""Every code sample in the docs runs, and every generated diagram is a run of the real code.

Code blocks: each fenced ``python`` block in ``README.md`` and ``docs/**/*.md`` is executed.
An HTML comment on the line right before the fence (invisible on the site) says how:

- no comment: the block is a script, run with this interpreter in a fresh process (working
  directory: a temporary one, ``QT_QPA_PLATFORM=offscreen``); it must exit with status 0 within
  ``SNIPPET_TIMEOUT`` seconds.
- a block that mentions ``1883`` needs a broker: it runs while the ``rxmqtt_mosquitto`` fixture
  is up, with every ``1883`` replaced by that broker's port (so a page can show the usual
  ``mqtt://127.0.0.1:1883``).
- ``<!-- snippet: continue -->``: the block continues the previous one of the same page; they run
  together as one script (a walkthrough interrupted by prose).
- ``<!-- snippet: pytest -->``: the block is a test module; pytest runs it (with rxmqtt's pytest
  plugin, ``asyncio_mode = "auto"``) and every test must pass.
- ``<!-- snippet: skip REASON -->``: illustrative only (needs a real cluster, a display, ...):
  compiled, never run. Keep these rare.
- a block that starts with ``>>>`` is a doctest session.
- ``<!-- snippet: output -->`` before a ``text`` block right after a python block: that block's
  expected standard output (``...`` matches anything, as in doctest; ``1883`` is the broker's
  port here too).

Docstrings: the ``>>>`` examples in the modules the API reference renders (``::: name`` in
``docs/reference/*.md``) run as doctests.

Diagrams: the marble cases of ``docs/marbles.py`` (drawn on the Policies page) must produce their
``expected`` marbles, and the cases taken from ``tests/test_operators.py`` must use exactly the
marble strings that test asserts, so the docs and the operator tests cannot drift apart.
"""

from __future__ import annotations

import ast
import doctest
import importlib
import importlib.util
import inspect
import os
import random
import re
import subprocess
import sys
import warnings
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from rxmqtt.policies import Backoff, Jitter

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
SNIPPET_TIMEOUT = 90.0
BROKER_PORT = re.compile(r"\b1883\b")

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})[ \t]*(?P<lang>[\w+-]*)[^\n]*$")
_MARKER = re.compile(r"^\s*<!--\s*snippet:\s*(?P<mode>[\w-]+)(?P<reason>[^>]*?)\s*-->\s*$")


@dataclass(frozen=True)
class Snippet:
    path: Path
    line: int
    code: str
    mode: str
    """``script``, ``doctest``, ``pytest`` or ``skip``."""
    expected_output: str | None = None

    @property
    def id(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"

    @property
    def needs_broker(self) -> bool:
        return bool(BROKER_PORT.search(self.code))


def _doc_files() -> list[Path]:
    files = [ROOT / "README.md"]
    files += sorted(p for p in DOCS.rglob("*.md") if "__pycache__" not in p.parts)
    return [f for f in files if f.is_file()]


def _blocks(text: str) -> list[tuple[int, str, str, str | None]]:
    """``(line, language, code, marker)`` for each fenced block, in order."""
    lines = text.split("\n")
    found = []
    index = 0
    while index < len(lines):
        match = _FENCE.match(lines[index])
        if not match:
            index += 1
            continue
        indent, fence, lang = match.group("indent"), match.group("fence"), match.group("lang")
        marker = None
        previous = index - 1
        while previous >= 0 and not lines[previous].strip():
            previous -= 1
        if previous >= 0:
            marked = _MARKER.match(lines[previous])
            if marked:
                marker = (marked.group("mode") + marked.group("reason")).strip()
        body: list[str] = []
        index += 1
        while index < len(lines):
            stripped = lines[index].strip()
            if stripped.startswith(fence[0] * len(fence)) and set(stripped) <= {fence[0]}:
                break
            body.append(lines[index][len(indent) :] if lines[index].startswith(indent) else "")
            index += 1
        found.append((index - len(body), lang.lower(), "\n".join(body) + "\n", marker))
        index += 1
    return found


def collect_snippets() -> list[Snippet]:
    snippets: list[Snippet] = []
    for path in _doc_files():
        chain: Snippet | None = None
        last: Snippet | None = None
        for line, lang, code, marker in _blocks(path.read_text(encoding="utf-8")):
            mode_word = (marker or "").split(" ", 1)[0]
            if lang == "text" and mode_word == "output":
                if last is None:
                    raise ValueError(f"{path}:{line}: an output block needs a python block first")
                snippets[snippets.index(last)] = last = Snippet(
                    last.path, last.line, last.code, last.mode, code
                )
                continue
            if lang not in ("python", "py", "pycon"):
                continue
            if mode_word == "continue":
                if chain is None:
                    raise ValueError(f"{path}:{line}: 'continue' needs a python block before it")
                code = chain.code + "\n" + code
                mode = chain.mode
            elif mode_word == "skip":
                mode = "skip"
            elif mode_word == "pytest":
                mode = "pytest"
            elif mode_word:
                raise ValueError(f"{path}:{line}: unknown snippet marker {marker!r}")
            elif code.lstrip().startswith(">>>") or lang == "pycon":
                mode = "doctest"
            else:
                mode = "script"
            last = chain = Snippet(path, line, code, mode)
            snippets.append(last)
    return snippets


SNIPPETS = collect_snippets()


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["QT_QPA_PLATFORM"] = "offscreen"
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    env.pop("PYTEST_ADDOPTS", None)
    return env


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        args,
        cwd=cwd,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=SNIPPET_TIMEOUT,
        check=False,
    )


def _numbered(code: str) -> str:
    return "\n".join(f"{n:4} | {line}" for n, line in enumerate(code.split("\n"), start=1))


_DOCTEST_RUNNER = """\
import doctest, sys
text = open(sys.argv[1], encoding="utf-8").read()
test = doctest.DocTestParser().get_doctest(text, {}, sys.argv[2], sys.argv[2], 0)
runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
runner.run(test)
sys.exit(1 if runner.failures else 0)
"""


@pytest.mark.parametrize("snippet", SNIPPETS, ids=[s.id for s in SNIPPETS])
def test_doc_snippet_runs(snippet: Snippet, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    code = snippet.code
    expected = snippet.expected_output
    if snippet.mode == "skip":
        compile(code, snippet.id, "exec")
        pytest.skip("illustrative only (marked <!-- snippet: skip -->); compiled")
    if snippet.needs_broker and snippet.mode != "pytest":
        broker = request.getfixturevalue("rxmqtt_mosquitto")
        code = BROKER_PORT.sub(str(broker.port), code)
        if expected is not None:
            expected = BROKER_PORT.sub(str(broker.port), expected)
    if "PySide6" in code or "rxmqtt.qt" in code:
        pytest.importorskip("PySide6", reason="needs the qt extra")
        pytest.importorskip("qasync", reason="needs the qt extra")

    if snippet.mode == "pytest":
        (tmp_path / "test_snippet.py").write_text(code, encoding="utf-8")
        args = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "rxmqtt.testing",
        ]
        args += ["-o", "asyncio_mode=auto", "-o", "asyncio_default_fixture_loop_scope=function"]
        args += ["-o", f"timeout={int(SNIPPET_TIMEOUT) - 10}", "test_snippet.py"]
        result = _run(args, tmp_path)
    elif snippet.mode == "doctest":
        (tmp_path / "session.txt").write_text(code, encoding="utf-8")
        (tmp_path / "run_doctest.py").write_text(_DOCTEST_RUNNER, encoding="utf-8")
        result = _run([sys.executable, "run_doctest.py", "session.txt", snippet.id], tmp_path)
    else:
        (tmp_path / "snippet.py").write_text(code, encoding="utf-8")
        result = _run([sys.executable, "snippet.py"], tmp_path)

    report = (
        f"{snippet.id} ({snippet.mode}) exited with {result.returncode}\n"
        f"--- code\n{_numbered(code)}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}"
    )
    assert result.returncode == 0, report
    if snippet.mode == "pytest":
        summary = result.stdout.strip().split("\n")[-1]
        assert " passed" in summary, report
        assert "skipped" not in summary, report
        assert "xfail" not in summary, report
    if expected is not None:
        checker = doctest.OutputChecker()
        got = "\n".join(line.rstrip() for line in result.stdout.strip().split("\n")) + "\n"
        want = "\n".join(line.rstrip() for line in expected.strip().split("\n")) + "\n"
        assert checker.check_output(want, got, doctest.ELLIPSIS), (
            f"{snippet.id}: the output differs from the page's output block\n"
            + checker.output_difference(doctest.Example("", want), got, doctest.ELLIPSIS)
        )


def test_snippets_were_found() -> None:
    """A guard against the collector silently finding nothing (e.g. after a docs move)."""
    pages = {s.path.name for s in SNIPPETS}
    assert {"README.md", "getting-started.md", "concepts.md", "offline-queue.md"} <= pages
    skipped = [s.id for s in SNIPPETS if s.mode == "skip"]
    assert len(skipped) <= max(3, len(SNIPPETS) // 10), f"too many illustrative-only: {skipped}"


# ------------------------------------------------------------------------ docstring examples


def _rxmqtt_module(obj: object) -> ModuleType | None:
    module = inspect.getmodule(obj)
    if module is None or not module.__name__.startswith("rxmqtt"):
        return None  # a typing alias, an enum base, ...: not ours to test
    return module


def _reference_modules() -> list[ModuleType]:
    """The rxmqtt modules whose objects the API reference renders (``::: identifier`` lines,
    and for a module, the modules its public names come from)."""
    names = {"rxmqtt"}
    for page in sorted((DOCS / "reference").glob("*.md")):
        for match in re.finditer(r"^:::\s*([\w.]+)", page.read_text(encoding="utf-8"), re.M):
            names.add(match.group(1))
    modules: dict[str, ModuleType] = {}
    for name in sorted(names):
        parts = name.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                obj: Any = importlib.import_module(".".join(parts[:cut]))
            except ImportError:
                continue
            for attr in parts[cut:]:
                obj = getattr(obj, attr, None)
            members = [obj]
            if isinstance(obj, ModuleType):
                members += [getattr(obj, n, None) for n in getattr(obj, "__all__", ())]
            for member in members:
                module = _rxmqtt_module(member) if member is not None else None
                if module is not None:
                    modules[module.__name__] = module
            break
    return [modules[name] for name in sorted(modules)]


def _docstring_tests() -> list[doctest.DocTest]:
    finder = doctest.DocTestFinder(exclude_empty=True)
    tests: list[doctest.DocTest] = []
    with warnings.catch_warnings():  # the finder touches deprecated aliases such as typing.io
        warnings.simplefilter("ignore", DeprecationWarning)
        for module in _reference_modules():
            tests.extend(t for t in finder.find(module) if t.examples)
    return tests


try:
    DOCSTRING_TESTS = _docstring_tests()
except ImportError:  # an optional extra (qt) is missing: those modules cannot be imported
    DOCSTRING_TESTS = []


@pytest.mark.parametrize("test", DOCSTRING_TESTS, ids=[t.name for t in DOCSTRING_TESTS])
def test_docstring_examples_run(test: doctest.DocTest) -> None:
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    output: list[str] = []
    runner.run(test, out=output.append, clear_globs=True)
    assert not runner.failures, "".join(output)


# ------------------------------------------------------------------------------ the diagrams


gen_site = importlib.import_module("docs.gen_site")  # docs/ is on the path; not a package
marbles = gen_site.load_docs_module("marbles")
CASES = list(marbles.CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.key for c in CASES])
def test_marble_case_produces_its_expected_marble(case: Any) -> None:
    trace = marbles.play(case)
    assert list(trace.result) == marbles.expected_events(case), (
        f"{case.key}: {case.operator} on {case.sources} no longer gives {case.expected!r}"
    )
    assert trace.runs, "the source was never subscribed"


def _test_function_source(name: str) -> tuple[set[str], str]:
    """The string constants in ``tests/test_operators.py``'s function ``name``, and its code."""
    source = (ROOT / "tests" / "test_operators.py").read_text(encoding="utf-8")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and node.name == name:
            strings = {
                n.value
                for n in ast.walk(node)
                if isinstance(n, ast.Constant) and isinstance(n.value, str)
            }
            return strings, ast.get_source_segment(source, node) or ""
    raise AssertionError(f"tests/test_operators.py has no test {name!r}")


TESTED_CASES = [c for c in CASES if c.test]


@pytest.mark.parametrize("case", TESTED_CASES, ids=[c.key for c in TESTED_CASES])
def test_marble_case_matches_the_operator_test(case: Any) -> None:
    strings, code = _test_function_source(case.test)
    for marble in (*case.sources, case.expected):
        assert marble in strings, f"{case.key}: {marble!r} is not asserted by {case.test}"
    squeezed = "".join(code.split())
    assert "".join(case.operator.split()) in squeezed, (
        f"{case.key}: {case.test} does not apply {case.operator}"
    )


def _aws_formula(jitter: Jitter, n: int) -> list[float]:
    """The delays by the formulas of the AWS article (as in tests/test_backoff.py)."""
    rng = random.Random(marbles.JITTER_SEED)
    params = marbles.JITTER_BACKOFF
    initial, maximum, multiplier = params["initial"], params["maximum"], params["multiplier"]
    bases = [min(maximum, initial * multiplier**k) for k in range(n)]
    if jitter is Jitter.NONE:
        return bases
    if jitter is Jitter.FULL:
        return [rng.uniform(0, base) for base in bases]
    if jitter is Jitter.EQUAL:
        return [base / 2 + rng.uniform(0, base / 2) for base in bases]
    delays, sleep = [], initial
    for _ in range(n):
        sleep = min(maximum, rng.uniform(initial, sleep * 3))
        delays.append(sleep)
    return delays


@pytest.mark.parametrize("jitter", list(Jitter), ids=[j.name for j in Jitter])
def test_jitter_diagram_data_follows_the_aws_formulas(jitter: Jitter) -> None:
    trace = marbles.play_jitter(jitter)
    delays = [step.delay for step in trace.steps]
    assert delays == pytest.approx(_aws_formula(jitter, marbles.JITTER_RETRIES))
    backoff = Backoff(jitter=jitter, **marbles.JITTER_BACKOFF)
    seeded = list(islice(backoff.delays(random.Random(marbles.JITTER_SEED)), len(delays)))
    assert delays == pytest.approx(seeded)
    for step in trace.steps:
        assert step.low - 1e-9 <= step.delay <= step.high + 1e-9, step
    # Each retry subscribes again exactly its delay after the previous failure.
    starts = list(trace.subscribed_at)
    assert starts[1:] == pytest.approx([sum(delays[: k + 1]) for k in range(len(delays))], abs=1e-5)


def test_every_generated_diagram_and_table_renders() -> None:
    for case in CASES:
        html = gen_site.generate(f"marble {case.key}")
        assert "<svg" in html
        assert case.expected in html
    for jitter in Jitter:
        assert "<svg" in gen_site.generate(f"jitter {jitter.name.lower()}")
    table = gen_site.generate("jitter-table")
    assert table.count("\n") == marbles.JITTER_RETRIES + 3
    from rxmqtt.policies import REASON_CODES

    codes = gen_site.generate("reason-codes")
    assert all(f"`0x{code:02X}`" in codes for code in REASON_CODES)  # errors and successes
    with pytest.raises(ValueError, match="unknown generated content"):
        gen_site.generate("no-such-thing")


def test_the_site_builds_strict(tmp_path: Path) -> None:
    """``mkdocs build --strict``: broken links, anchors and references fail (docs extra only)."""
    for module in ("mkdocs", "material", "mkdocstrings_handlers.python"):
        pytest.importorskip(module, reason="needs the docs extra: pip install -e '.[docs]'")
    env = _environment()
    env["NO_MKDOCS_2_WARNING"] = "1"
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
