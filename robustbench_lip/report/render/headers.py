"""Grouped, compact column headers for the HTML tables: each column → (group, short label).

Consecutive columns of one group share a header cell in the group row (`Run | Clean | Lipschitz |
certified ℓ2 | pgd ℓ∞ | … | worst ℓ∞`), and the column's own header drops what the group already
says (`pgd_linf@8/255 [custom, n=64] acc` → `acc@8/255` under `pgd ℓ∞ [custom, n=64]`; see
ColumnKey.group). Registered metrics go to their own group; unknown columns to `other`, unshortened.
"""

from __future__ import annotations

from collections.abc import Sequence

from robustbench_lip.report.columns import FIXED_COLUMNS, FIXED_GROUPS, SEEDS_N, ColumnKey
from robustbench_lip.report.metrics import LEADERBOARD_METRICS


def column_group(col: str) -> tuple[str, str]:
    """(group, short label) of a column (see the module doc)."""
    if col in FIXED_GROUPS:
        return FIXED_GROUPS[col], col
    if col in FIXED_COLUMNS or col == SEEDS_N:
        return "Run", col
    if col in LEADERBOARD_METRICS:
        return LEADERBOARD_METRICS.get(col).group, col
    key = ColumnKey.parse(col)
    return key.group() if key is not None else ("other", col)


def group_spans(columns: Sequence[str]) -> list[tuple[str, int]]:
    """[(group label, number of consecutive columns)] for the group header row."""
    spans: list[tuple[str, int]] = []
    for c in columns:
        g = column_group(c)[0]
        if spans and spans[-1][0] == g:
            spans[-1] = (g, spans[-1][1] + 1)
        else:
            spans.append((g, 1))
    return spans
