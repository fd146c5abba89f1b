"""Leaderboard columns: names, one-line docs, the legend, the order of dynamic columns, cell formatting.

Fixed columns are always present (`names.FIXED_COLUMNS`, in order). Every dynamic column name is a
`key.ColumnKey` — built with its `cert` / `smoothed` / `attacked` constructors, read back with
`ColumnKey.parse`, documented, sorted and grouped by it (the patterns of `names.PATTERN_DOCS`).
`docs` explains any column (registered metrics included), `select` orders and picks columns,
`cells` formats values.

May import: robustbench_lip.attacks.eps (ε text), robustbench_lip.errors, report.metrics (the
registered columns' docs); never collect/, render/ or build.
"""

from __future__ import annotations

from robustbench_lip.report.columns.cells import format_cell, is_missing, raw_rows, table_rows, to_py
from robustbench_lip.report.columns.docs import column_doc, column_docs, legend
from robustbench_lip.report.columns.key import ColumnKey, attack_metric, eps_value, make_tag, parse_tag
from robustbench_lip.report.columns.names import (
    ACC,
    AGGREGATE_DOCS,
    COLUMN_DOCS,
    FAMILY,
    FIXED_COLUMNS,
    FIXED_GROUPS,
    FNE,
    INT_FIXED,
    KEY_COLUMNS,
    LA_GAP,
    LA_LO,
    LA_UP,
    LAM,
    LR_LO,
    LR_UP,
    MAIN_RADIUS,
    MIOU,
    N_SUFFIX,
    NUMERIC_FIXED,
    PATTERN_DOCS,
    PREC,
    SEEDS_N,
    SORT_ALIASES,
    STD_SUFFIX,
    TRAIN_S,
)
from robustbench_lip.report.columns.select import (
    dynamic_sort_key,
    key_columns,
    main_cert_column,
    worst_column,
)


def column_parts(name: str) -> dict | None:
    """The parts of an attack column (ColumnKey.parts), None for any other column."""
    key = ColumnKey.parse(name)
    return key.parts() if key is not None and key.is_attack else None


__all__ = [
    "ACC",
    "AGGREGATE_DOCS",
    "COLUMN_DOCS",
    "FAMILY",
    "FIXED_COLUMNS",
    "FIXED_GROUPS",
    "FNE",
    "INT_FIXED",
    "KEY_COLUMNS",
    "LAM",
    "LA_GAP",
    "LA_LO",
    "LA_UP",
    "LR_LO",
    "LR_UP",
    "MAIN_RADIUS",
    "MIOU",
    "NUMERIC_FIXED",
    "N_SUFFIX",
    "PATTERN_DOCS",
    "PREC",
    "SEEDS_N",
    "SORT_ALIASES",
    "STD_SUFFIX",
    "TRAIN_S",
    "ColumnKey",
    "attack_metric",
    "column_doc",
    "column_docs",
    "column_parts",
    "dynamic_sort_key",
    "eps_value",
    "format_cell",
    "is_missing",
    "key_columns",
    "legend",
    "main_cert_column",
    "make_tag",
    "parse_tag",
    "raw_rows",
    "table_rows",
    "to_py",
    "worst_column",
]
