"""The test suite's own layout: no test module imports another (shared truths and builders live in
tests/helpers/), and every test directory is a package, so two test files may share a basename."""

from __future__ import annotations

import ast
from pathlib import Path

from tests.helpers.paths import REPO

TESTS = REPO / "tests"
NOT_TESTS = {"engines", "fixtures", "__pycache__"}


def _test_modules_imported(path: Path) -> list[str]:
    """Names of test modules (test_*) that the file at path imports, absolutely or relatively."""
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            names += [node.module or ".", *(f"{node.module or '.'}.{a.name}" for a in node.names)]
    return sorted({n for n in names if any(part.startswith("test_") for part in n.split("."))})


def test_no_test_module_imports_another() -> None:
    files = [p for p in TESTS.rglob("*.py") if not NOT_TESTS & set(p.relative_to(TESTS).parts)]
    assert len(files) > 60
    offenders = {str(p.relative_to(REPO)): _test_modules_imported(p) for p in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_every_test_directory_is_a_package() -> None:
    dirs = {p.parent for p in TESTS.rglob("test_*.py") if not NOT_TESTS & set(p.relative_to(TESTS).parts)}
    assert len(dirs) > 1
    assert sorted(str(d.relative_to(REPO)) for d in dirs if not (d / "__init__.py").exists()) == []
