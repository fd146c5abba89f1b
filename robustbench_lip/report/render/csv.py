"""The leaderboard table as CSV."""

from __future__ import annotations

from robustbench_lip.report.build import Leaderboard


def render_csv(lb: Leaderboard) -> str:
    """The table as CSV (missing → empty field, full precision)."""
    return lb.table.to_csv(index=False, na_rep="", lineterminator="\n")
