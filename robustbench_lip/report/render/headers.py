"""Grouped, compact column headers for the HTML tables: each column → (group, short label).

Consecutive columns of one group share a header cell in the group row (`Run | Clean | Lipschitz |
certified ℓ2 | pgd ℓ∞ | … | worst ℓ∞`), and the column's own header drops what the group already
says (`pgd_linf@8/255 [custom, n=64] acc` → `acc@8/255` under `pgd ℓ∞ [custom, n=64]`). Unknown
columns go to `other`, unshortened.
"""

from __future__ import annotations

from collections.abc import Sequence

from robustbench_lip.report.columns import (
    ACC,
    ATTACK_COL,
    CERT_COL,
    FIXED_COLUMNS,
    FNE,
    LA_GAP,
    LA_LO,
    LA_UP,
    LR_LO,
    LR_UP,
    MIOU,
    PREC,
    SEEDS_N,
    SMOOTH_COL,
    TRAIN_S,
)

_NORMS = {"linf": "ℓ∞", "l2": "ℓ2"}
_FIXED_GROUPS: dict[str, str] = {
    **{c: "Lipschitz" for c in (LA_UP, LA_LO, LA_GAP, LR_LO, LR_UP, FNE)},
    **{c: "Clean" for c in (ACC, PREC, MIOU)},
    TRAIN_S: "Cost",
}


def column_group(col: str) -> tuple[str, str]:
    """(group, short label) of a column (see the module doc)."""
    if col in _FIXED_GROUPS:
        return _FIXED_GROUPS[col], col
    if col in FIXED_COLUMNS or col == SEEDS_N:
        return "Run", col
    m = CERT_COL.match(col)
    if m:
        return "certified ℓ2", f"{m['metric']}@{m['eps']}"
    m = SMOOTH_COL.match(col)
    if m:  # probabilistic: its own group, never beside the deterministic certificates' columns
        label = f"{m['metric']}@{m['eps']}" if m["metric"] else m["abstain"]
        return f"smoothed σ={m['sigma']}", label
    m = ATTACK_COL.match(col)
    if m:
        tag = f" [{m['tag']}]" if m["tag"] is not None else ""
        return f"{m['attack']} {_NORMS.get(m['norm'], m['norm'])}{tag}", f"{m['metric']}@{m['eps']}"
    return "other", col


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
