"""The dependency rules: the picture in docs/architecture.md is the code's, and the contracts bite.

The picture is drawn by tools/import-graph from grimp's graph, in this process. The
contracts are checked by running lint-imports on a copy of the packages in which one
forbidden import has been added: it must fail there, and pass on the unmodified copy.
"""
from __future__ import annotations

import importlib.machinery
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("gateway", "modem", "asterisk", "web")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def _import_graph_tool() -> ModuleType:
    # tools/import-graph is a script without a .py suffix: load it by its path.
    loader = importlib.machinery.SourceFileLoader("import_graph", str(ROOT / "tools" / "import-graph"))
    module = importlib.util.module_from_spec(importlib.util.spec_from_loader(loader.name, loader))
    loader.exec_module(module)
    return module


def test_the_architecture_doc_shows_the_imports_as_they_are():
    tool = _import_graph_tool()
    diagram = tool.mermaid()
    doc = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert tool.block(diagram) in doc, (
        "docs/architecture.md's import graph is stale: run .venv/bin/python tools/import-graph "
        "--write docs/architecture.md")


def test_the_core_has_arrows_only_coming_in():
    tool = _import_graph_tool()
    arrows = [line.split() for line in tool.mermaid().splitlines() if "-->" in line]
    assert [arrow for arrow in arrows if arrow[0] == "core"] == []
    # Every other part uses the core: the picture is not empty by accident.
    assert {arrow[0] for arrow in arrows if arrow[2] == "core"} == {"shell", "web", "modem", "asterisk"}


def _copy_of_the_packages(tmp_path: Path) -> Path:
    copy = tmp_path / "checkout"
    for package in PACKAGES:
        # symlinks=True: gateway/systemd links to ../systemd, which is not copied (not Python).
        shutil.copytree(ROOT / package, copy / package, symlinks=True,
                        ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", copy / "pyproject.toml")
    return copy


def _lint_imports(checkout: Path) -> subprocess.CompletedProcess[str]:
    # lint-imports puts its working directory first on sys.path, so it reads the copy,
    # not the checkout the virtual environment was installed from.
    return subprocess.run([str(LINT_IMPORTS), "--no-cache", "--no-logo"], cwd=checkout,
                          capture_output=True, text=True, timeout=120)


def _append_line(path: Path, line: str) -> None:
    with path.open("a", encoding="utf-8") as file:
        file.write(f"\n{line}\n")


@pytest.mark.integration
def test_lint_imports_passes_on_an_unmodified_copy(tmp_path):
    result = _lint_imports(_copy_of_the_packages(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.integration
def test_lint_imports_fails_when_the_core_imports_the_modems(tmp_path):
    checkout = _copy_of_the_packages(tmp_path)
    _append_line(checkout / "gateway" / "core" / "phone.py", "import modem.pool")
    result = _lint_imports(checkout)
    assert result.returncode != 0
    assert "gateway.core is not allowed to import modem" in result.stdout
    assert "gateway.core.phone -> modem.pool" in result.stdout


@pytest.mark.integration
def test_lint_imports_fails_when_the_panel_imports_asterisk(tmp_path):
    checkout = _copy_of_the_packages(tmp_path)
    _append_line(checkout / "web" / "labels.py", "import asterisk.trunks")
    result = _lint_imports(checkout)
    assert result.returncode != 0
    assert "web is not allowed to import asterisk" in result.stdout
    assert "web.labels -> asterisk.trunks" in result.stdout
