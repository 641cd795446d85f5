"""What a pip user gets: the wheel and sdist built from this tree, installed into a fresh
virtualenv, with nothing else from the development environment."""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tarfile
import tomllib
import venv
import zipfile
from pathlib import Path

import pytest

import rxmqtt

ROOT = Path(__file__).resolve().parent.parent
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def run(*args: str | Path, cwd: Path | None = None, timeout: float = 300) -> str:
    """Run a command that must succeed; its stdout."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [str(a) for a in args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, f"{args}: {done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The sdist and the wheel, built by ``python -m build`` (isolated builds)."""
    pytest.importorskip("build", reason="python -m build needs the 'build' package (test extra)")
    out = tmp_path_factory.mktemp("dist")
    # the sdist from the tree, then the wheel from the sdist (as pip builds from PyPI): no build/
    # left in the tree, and a wheel proves the sdist complete
    run(sys.executable, "-m", "build", "--outdir", out, ROOT, timeout=600)
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return wheel, sdist


@pytest.fixture(scope="module")
def fresh_venv(artifacts: tuple[Path, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv with only the wheel (and its dependencies) and pytest installed."""
    home = tmp_path_factory.mktemp("venv")
    venv.create(home, with_pip=True)
    python = home / "bin" / "python"
    run(python, "-m", "pip", "install", "-q", artifacts[0], "pytest")
    return home


def test_package_list_is_the_tree() -> None:
    """pyproject lists packages by hand (rxmqtt.demo comes from gui_demo/): every package
    under rxmqtt/ must be in it, or the wheel silently lacks it."""
    listed = set(PYPROJECT["tool"]["setuptools"]["packages"])
    tree = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "rxmqtt").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    assert listed == tree | {"rxmqtt.demo"}
    assert PYPROJECT["tool"]["setuptools"]["package-dir"] == {"rxmqtt.demo": "gui_demo"}


def test_one_version_source() -> None:
    """The version is written in pyproject.toml only; the package reads it back."""
    assert rxmqtt.__version__ == importlib.metadata.version("rxmqtt")
    assert rxmqtt.__version__ == PYPROJECT["project"]["version"]
    text = (ROOT / "rxmqtt" / "__init__.py").read_text()
    version = PYPROJECT["project"]["version"]
    assert f'"{version}"' not in text, "no second copy of the version"


@pytest.mark.slow
def test_wheel_contents_and_metadata(artifacts: tuple[Path, Path]) -> None:
    """Only rxmqtt at the top level (the demo inside it), typed, licensed, with honest bounds."""
    wheel, _ = artifacts
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    version = PYPROJECT["project"]["version"]
    assert tops == {"rxmqtt", f"rxmqtt-{version}.dist-info"}, tops
    for needed in ("rxmqtt/py.typed", "rxmqtt/demo/__main__.py", "rxmqtt/demo/window.py"):
        assert needed in names
    assert not any("ejabberd" in n and "/_ejabberd/" not in n for n in names), "private only"
    assert f"rxmqtt-{version}.dist-info/licenses/LICENSE" in names
    metadata = zipfile.ZipFile(wheel).read(f"rxmqtt-{version}.dist-info/METADATA").decode()
    assert "License-Expression: MIT" in metadata
    assert "Requires-Dist: paho-mqtt<3,>=2.2" in metadata
    assert "Requires-Dist: reactivex<7,>=4.1" in metadata
    entry_points = zipfile.ZipFile(wheel).read(f"rxmqtt-{version}.dist-info/entry_points.txt")
    assert b"pytest11" not in entry_points, "the pytest plugin is opt-in"
    assert b"rxmqtt = rxmqtt.cli:main" in entry_points


@pytest.mark.slow
def test_the_installed_wheel_imports_runs_and_stays_out_of_pytest(
    fresh_venv: Path, tmp_path: Path
) -> None:
    """In a fresh venv: import, ``rxmqtt --help``, the demo's one-line hint without the qt
    extra, and no rxmqtt fixtures in another project's pytest run unless it asks."""
    bin_dir = fresh_venv / "bin"
    python = bin_dir / "python"
    code = "import rxmqtt, rxmqtt.testing; from rxmqtt import Connection; print(rxmqtt.__version__)"
    assert run(python, "-c", code, cwd=tmp_path).strip() == PYPROJECT["project"]["version"]
    assert "usage: rxmqtt" in run(bin_dir / "rxmqtt", "--help", cwd=tmp_path)
    for demo in ([bin_dir / "rxmqtt", "demo"], [python, "-m", "rxmqtt.demo"]):
        done = subprocess.run(demo, capture_output=True, text=True, cwd=tmp_path, timeout=60)
        assert done.returncode == 1
        assert done.stderr == "the rxmqtt demo needs PySide6: pip install 'rxmqtt[qt]'\n"

    (tmp_path / "test_other.py").write_text("def test_nothing():\n    pass\n")
    without = run(python, "-m", "pytest", "--fixtures", "-p", "no:cacheprovider", cwd=tmp_path)
    assert "rxmqtt_mosquitto" not in without, "installing rxmqtt loads no plugin"
    with_plugin = run(
        python, "-m", "pytest", "--fixtures", "-p", "rxmqtt.testing", "-p", "no:cacheprovider",
        cwd=tmp_path,
    )  # fmt: skip
    assert "rxmqtt_mosquitto_factory" in with_plugin, "-p rxmqtt.testing loads it"


@pytest.mark.slow
def test_the_sdist_carries_what_its_tests_read(
    artifacts: tuple[Path, Path], tmp_path: Path
) -> None:
    """Unpacked, the sdist's suite collects in full and its pure layers pass."""
    _, sdist = artifacts
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path, filter="data")
    (tree,) = tmp_path.iterdir()
    for needed in ("LICENSE", "CHANGELOG.md", "docs/marbles.py", "mkdocs.yml", "gui_demo"):
        assert (tree / needed).exists(), needed
    assert not list(tree.rglob("__pycache__")), "no caches"
    where = run(sys.executable, "-c", "import rxmqtt; print(rxmqtt.__file__)", cwd=tree)
    assert Path(where.strip()).is_relative_to(tree), "the sdist's own code is what runs"
    pytest_args = (sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q")
    collected = run(*pytest_args, "--co", cwd=tree)
    assert re.search(r"^\d+ tests collected", collected, re.MULTILINE), collected[-2000:]
    assert "error" not in collected.splitlines()[-1].lower()
    passed = run(*pytest_args, "tests/test_topics.py", "tests/test_backoff.py", cwd=tree)
    assert re.search(r"\d+ passed", passed)
