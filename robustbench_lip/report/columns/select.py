"""Which columns to show where: the order of the dynamic columns, the narrow (summary) selection."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pandas as pd

from robustbench_lip.report.columns.key import WORST, ColumnKey, eps_value
from robustbench_lip.report.columns.names import KEY_COLUMNS, MAIN_RADIUS, MIOU


def dynamic_sort_key(col: str) -> tuple[Any, ...]:
    """Order of the dynamic columns (ColumnKey.sort_key), then anything else (registered metrics) by name."""
    key = ColumnKey.parse(col)
    return key.sort_key() if key else (4, col, "", 0.0, 0)


def worst_column(columns: Iterable[str], metric: str, attack: str = WORST) -> str | None:
    """The `worst_<norm>@<ε> <metric>` column with the largest ε, ℓ∞ preferred over ℓ2; None if none
    (attack "robust": the same for the protocols' robust columns)."""
    keys = [(k, c) for c in columns if (k := ColumnKey.parse(c)) and k.kind == attack and k.metric == metric]
    for norm in ("linf", "l2"):
        cands = [(eps_value(k.eps), c) for k, c in keys if k.norm == norm]
        if cands:
            return max(cands)[1]
    return None


def main_cert_column(columns: Iterable[str], metric: str) -> str | None:
    """`cert <metric>@MAIN_RADIUS`, else the `cert <metric>@<ε>` of smallest ε present, else None."""
    keys = [(k, c) for c in columns if (k := ColumnKey.parse(c)) and k.kind == "cert" and k.metric == metric]
    cands = sorted((eps_value(k.eps), c) for k, c in keys)
    main = ColumnKey.cert(metric, MAIN_RADIUS).name()
    return main if any(c == main for _, c in cands) else (cands[0][1] if cands else None)


def key_columns(table: pd.DataFrame) -> list[str]:
    """A narrow selection, when present: identity and clean KEY_COLUMNS, attacked accuracy and mIoU
    (worst case, then the protocol's robust, at the largest ℓ∞ (else ℓ2) budget), certified accuracy
    and mIoU (`main_cert_column`), then L(A) upper / lower, L(R) lower, FNE."""
    end = KEY_COLUMNS.index(MIOU) + 1
    cols = [c for c in KEY_COLUMNS[:end] if c in table.columns]
    attacked = [worst_column(table.columns, m, a) for a in ("worst", "robust") for m in ("acc", "mIoU")]
    cols += [c for c in attacked + [main_cert_column(table.columns, m) for m in ("acc", "mIoU")] if c]
    return cols + [c for c in KEY_COLUMNS[end:] if c in table.columns]
