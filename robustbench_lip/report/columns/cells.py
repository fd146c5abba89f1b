"""Table cells: missing values, JSON-friendly values, the text of a cell in Markdown / HTML / terminal."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

from robustbench_lip.report.columns.names import LAM, TRAIN_S


def is_missing(v: Any) -> bool:
    """True for None, pd.NA and NaN (an empty cell)."""
    if v is None or v is pd.NA:
        return True
    try:
        return bool(isinstance(v, (float, np.floating)) and math.isnan(v))
    except TypeError:
        return False


def to_py(v: Any) -> Any:
    """A JSON-friendly Python value: missing → None, numpy scalars → int/float/bool."""
    if is_missing(v):
        return None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def format_cell(column: str, v: Any) -> str:
    """Text of one cell for Markdown / HTML / terminal: empty when missing, λ as `1e-06`, seconds with
    one decimal, other numbers to 4 significant digits."""
    v = to_py(v)
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if column == LAM:
            return "0" if v == 0 else f"{v:.3g}"
        if column == TRAIN_S:
            return f"{v:.1f}"
        return f"{v:.4g}"
    return str(v)


def table_rows(table: pd.DataFrame, columns: Sequence[str] | None = None) -> list[list[str]]:
    """Formatted cell texts, row by row (see `format_cell`)."""
    cols = list(columns) if columns is not None else list(table.columns)
    return [[format_cell(c, table.at[i, c]) for c in cols] for i in table.index]


def raw_rows(table: pd.DataFrame) -> list[list[str]]:
    """Unformatted cell texts (full precision, empty when missing), row by row: the HTML sort keys."""
    cols = list(table.columns)
    return [["" if is_missing(v := table.at[i, c]) else str(to_py(v)) for c in cols] for i in table.index]
