"""The leaderboard as a JSON-ready object."""

from __future__ import annotations

from typing import Any

from robustbench_lip.report.build import Leaderboard
from robustbench_lip.report.columns import column_docs, to_py


def to_json_obj(lb: Leaderboard, runs: bool = False) -> dict[str, Any]:
    """`{"generated", "runs_dir", "columns": [names], "column_docs": {name: doc}, "rows": [{col: value}],
    "slopes": [SlopeFit.to_dict()], "skipped": [{"path", "reason"}]}` — missing values are null.

    Rows of the seed-aggregated table (mean, `<column> std`, `<column> n`); runs=True: one per run."""
    table = lb.table if runs else lb.aggregated
    cols = list(table.columns)
    rows = [{c: to_py(table.at[i, c]) for c in cols} for i in table.index]
    return {
        "generated": lb.generated,
        "runs_dir": str(lb.runs_dir),
        "columns": cols,
        "column_docs": column_docs(cols),
        "rows": rows,
        "slopes": [s.to_dict() for s in lb.slopes],
        "skipped": [{"path": str(s.path), "reason": s.reason} for s in lb.skipped],
    }
