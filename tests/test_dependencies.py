"""Dependencies point one way (README, Architecture): no package imports one above it in the order
cli → (sweep, evaluations, report) → (training, lipschitz, attacks, scoring) → (models, data, modelio,
records, config) → (registry, tasks, errors, …), counting lazy imports inside functions too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.helpers.paths import REPO

PKG = REPO / "robustbench_lip"
#: package → packages it must never import (anything above it in the order)
_ABOVE_BASE = {"cli", "sweep", "evaluations", "report", "training", "lipschitz", "attacks", "models", "data"}
FORBIDDEN = {
    "registry": _ABOVE_BASE,
    "tasks": _ABOVE_BASE,
    "records": {"cli", "sweep", "evaluations", "report", "training", "lipschitz", "attacks"},
    "config": {"cli", "sweep", "evaluations", "report", "training", "lipschitz", "attacks"},
    "data": {"cli", "sweep", "evaluations", "report", "training", "lipschitz", "attacks"},
    "models": {"cli", "sweep", "evaluations", "report", "training", "attacks"},
    "modelio": {"cli", "sweep", "evaluations", "report", "training", "lipschitz", "attacks"},
    "lipschitz": {"cli", "sweep", "evaluations", "report", "training", "attacks"},
    "attacks": {"cli", "sweep", "evaluations", "report", "training"},
    "training": {"cli", "sweep", "evaluations", "report"},
    "evaluations": {"cli", "sweep", "report", "training"},
    "report": {"cli", "sweep", "evaluations", "training"},
}


def _imports(path: Path) -> set[str]:
    """The robustbench_lip sub-packages/modules imported anywhere in `path` (first component)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        names = []
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module]
        elif isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        for name in names:
            parts = name.split(".")
            if parts[0] == "robustbench_lip" and len(parts) > 1:
                found.add(parts[1])
    return found


def _files(package: str) -> list[Path]:
    p = PKG / package
    return sorted(p.rglob("*.py")) if p.is_dir() else [PKG / f"{package}.py"]


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_no_import_against_the_order(package: str) -> None:
    bad = {
        f"{f.relative_to(PKG)} imports {m}"
        for f in _files(package)
        for m in _imports(f) & FORBIDDEN[package]
    }
    assert not bad, sorted(bad)


def test_the_checker_sees_lazy_imports(tmp_path: Path) -> None:
    f = tmp_path / "m.py"
    f.write_text("def g():\n    from robustbench_lip.report import columns\n    import robustbench_lip.cli\n")
    assert _imports(f) == {"report", "cli"}
