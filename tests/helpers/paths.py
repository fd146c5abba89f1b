"""Where the tests find the repository: its root, the zoo specs and the checked-in fixtures."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
ZOO = REPO / "zoo"
FIXTURES = REPO / "tests" / "fixtures"
