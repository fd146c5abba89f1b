"""Column docs: the one-line explanation of any column, and the compact legend of a report."""

from __future__ import annotations

from collections.abc import Iterable

from robustbench_lip.report.columns.key import ColumnKey
from robustbench_lip.report.columns.names import (
    AGGREGATE_DOCS,
    FIXED_COLUMNS,
    N_SUFFIX,
    PATTERN_DOCS,
    SEEDS_N,
    STD_SUFFIX,
)
from robustbench_lip.report.metrics import LEADERBOARD_METRICS


def column_doc(name: str) -> str:
    """One-line explanation of a column (fixed, dynamic or a registered metric); empty when unknown."""
    if name in FIXED_COLUMNS or name == SEEDS_N:
        return {**FIXED_COLUMNS, SEEDS_N: AGGREGATE_DOCS[SEEDS_N]}[name]
    for suffix, what in ((STD_SUFFIX, "Sample std (ddof = 1) over seeds of"), (N_SUFFIX, "Seeds with")):
        if name.endswith(suffix) and (base := column_doc(name[: -len(suffix)])):
            return f"{what}: {base}"
    if name in LEADERBOARD_METRICS:
        return LEADERBOARD_METRICS.get(name).doc
    key = ColumnKey.parse(name)
    return key.doc() if key else ""


def column_docs(columns: Iterable[str]) -> dict[str, str]:
    """`{column: one-line explanation}` for the given columns."""
    return {c: column_doc(c) for c in columns}


def legend(columns: Iterable[str]) -> dict[str, str]:
    """Compact docs for a report: each fixed column present, then each dynamic column pattern present
    (e.g. `<attack>_<norm>@<ε> acc`) once, in the order of PATTERN_DOCS, then the registered metrics
    present, then the seed-aggregate columns."""
    cols = list(columns)
    out = {c: FIXED_COLUMNS[c] for c in cols if c in FIXED_COLUMNS}
    present = {k.pattern() for c in cols if (k := ColumnKey.parse(c))}
    out.update({p: d for p, d in PATTERN_DOCS.items() if p in present})
    out.update({c: LEADERBOARD_METRICS.get(c).doc for c in cols if c in LEADERBOARD_METRICS})
    agg = {SEEDS_N: SEEDS_N in cols, "<column> std": any(c.endswith(STD_SUFFIX) for c in cols)}
    agg["<column> n"] = any(c.endswith(N_SUFFIX) and c[: -len(N_SUFFIX)] in cols for c in cols)
    out.update({k: AGGREGATE_DOCS[k] for k, shown in agg.items() if shown})
    return out
