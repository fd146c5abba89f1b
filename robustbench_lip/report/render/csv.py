"""The leaderboard table as CSV."""

from __future__ import annotations

from robustbench_lip.report.build import Leaderboard


def render_csv(lb: Leaderboard, runs: bool = False) -> str:
    """The seed-aggregated table as CSV (mean, `<column> std`, `<column> n` columns; missing → empty
    field, full precision); runs=True: the per-run table (one row per seed)."""
    table = lb.table if runs else lb.aggregated
    return table.to_csv(index=False, na_rep="", lineterminator="\n")
