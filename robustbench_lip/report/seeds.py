"""Runs that differ only in their training seed → one leaderboard row: mean, sample std and n.

`aggregate(table, keys)` groups the per-run table by the seed-group keys (`collect.seed_group_keys`)
and works over whatever columns the table has: every float column except λ becomes its mean over
the group's runs that have it, with `<column> std` (sample std, ddof = 1; empty with fewer than two
values) and `<column> n` (how many runs have it); other columns keep their value when the group
agrees and list the distinct values otherwise. `seed` lists the seeds ("0,1,2"), `n seeds` counts
the runs, `run` names the group (`…-s*` for runs named `…-s<seed>`). Std columns that are empty
everywhere are dropped, and so are n columns that never say more than `n seeds` (every run has the
value, or none has): with one seed per group the table is the per-run table plus `n seeds`.

`display_columns` / `display_rows` give the text view (Markdown, HTML, terminal): one cell per
column, `mean ± std`, with `(n=k)` when only k of the row's seeds have the value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

import pandas as pd

from robustbench_lip.report.columns import (
    LAM,
    N_SUFFIX,
    SEEDS_N,
    STD_SUFFIX,
    format_cell,
    is_missing,
    key_columns,
    to_py,
)

#: Columns never averaged: the group's identity.
NOT_AVERAGED: tuple[str, ...] = (LAM, "seed", "run")


def std_column(col: str) -> str:
    """`<col> std`."""
    return f"{col}{STD_SUFFIX}"


def n_column(col: str) -> str:
    """`<col> n`."""
    return f"{col}{N_SUFFIX}"


def metric_columns(table: pd.DataFrame) -> list[str]:
    """The columns averaged over seeds: float columns except λ."""
    return [c for c in table.columns if c not in NOT_AVERAGED and pd.api.types.is_float_dtype(table[c])]


def group_name(runs: Sequence[str], seeds: Sequence[Any]) -> str:
    """The group's `run` cell: the run itself when alone; `<prefix>s*` when every run is named
    `<prefix>s<its seed>`; else the first run and how many more."""
    if len(runs) == 1:
        return runs[0]
    stems = set()
    for run, seed in zip(runs, seeds, strict=True):
        m = re.fullmatch(rf"(.*s){re.escape(str(to_py(seed)))}", run) if not is_missing(seed) else None
        stems.add(m.group(1) if m else None)
    if len(stems) == 1 and None not in stems:
        return f"{stems.pop()}*"
    return f"{runs[0]} (+{len(runs) - 1})"


def _carried(values: pd.Series) -> Any:
    """One value when the group agrees (missing ones ignored), else the distinct values as text."""
    distinct = list(dict.fromkeys(to_py(v) for v in values if not is_missing(v)))
    if len(distinct) <= 1:
        return distinct[0] if distinct else None
    return ", ".join(str(v) for v in distinct)


def _group_row(g: pd.DataFrame, metrics: Sequence[str]) -> dict[str, Any]:
    seeds = [to_py(s) for s in g["seed"]] if "seed" in g else [None] * len(g)
    row: dict[str, Any] = {}
    for c in g.columns:
        if c in metrics:
            vals = g[c].dropna().astype(float)
            row[c] = float(vals.mean()) if len(vals) else None
            row[std_column(c)] = float(vals.std(ddof=1)) if len(vals) >= 2 else None
            row[n_column(c)] = len(vals)
        elif c == "run":
            row[c] = group_name([str(r) for r in g["run"]], seeds)
        elif c == "seed":
            known = [str(s) for s in seeds if s is not None]
            row[c] = ",".join(known) if known else None
            row[SEEDS_N] = len(g)
        else:
            row[c] = _carried(g[c])
    return row


def _column_order(table: pd.DataFrame, metrics: Sequence[str]) -> list[str]:
    cols: list[str] = []
    for c in table.columns:
        cols.append(c)
        if c == "seed":
            cols.append(SEEDS_N)
        elif c in metrics:
            cols += [std_column(c), n_column(c)]
    if SEEDS_N not in cols:
        cols.insert(1, SEEDS_N)
    return cols


def aggregate(table: pd.DataFrame, keys: Mapping[str, str] | None = None) -> pd.DataFrame:
    """The per-run table → one row per seed group (see the module doc), groups in first-seen order.

    keys: {run: group key}; a run without a key is a group of its own."""
    metrics = metric_columns(table)
    cols = _column_order(table, metrics)
    runs = table["run"].tolist() if "run" in table else [str(i) for i in table.index]
    groups: dict[str, list[int]] = {}
    for i, run in zip(table.index, runs, strict=True):
        groups.setdefault((keys or {}).get(run, f"\0{run}"), []).append(i)
    rows = [_group_row(table.loc[idx], metrics) for idx in groups.values()]
    out = pd.DataFrame(rows, columns=cols)
    for c in cols:
        if c in metrics or c.endswith(STD_SUFFIX):
            out[c] = pd.to_numeric(out[c], errors="coerce").astype("float64")
        elif c == SEEDS_N or (c.endswith(N_SUFFIX) and c[: -len(N_SUFFIX)] in metrics):
            out[c] = out[c].astype("Int64")
        elif c in table.columns and c != "seed" and all(not isinstance(v, str) for v in out[c]):
            out[c] = out[c].astype(table[c].dtype)
        else:
            out[c] = out[c].astype(object).where(out[c].notna(), None)
    drop = [std_column(c) for c in metrics if out[std_column(c)].isna().all()]
    drop += [n_column(c) for c in metrics if not _partial(out, n_column(c))]
    return out.drop(columns=drop)


def _partial(out: pd.DataFrame, ncol: str) -> bool:
    """True when some row has the value for some but not all of its seeds."""
    n, total = out[ncol], out[SEEDS_N]
    return bool(((n > 0) & (n < total)).fillna(False).any())


def has_seed_groups(table: pd.DataFrame) -> bool:
    """True when some row of an aggregated table holds more than one run."""
    return SEEDS_N in table and bool((table[SEEDS_N] > 1).fillna(False).any())


def display_columns(table: pd.DataFrame, columns: Sequence[str] | None = None) -> list[str]:
    """The columns shown as text: all (or `columns`) but the `<column> std` / `<column> n` ones,
    which are folded into their column's cell."""
    cols = list(columns) if columns is not None else list(table.columns)
    folded = {std_column(c) for c in table.columns} | {n_column(c) for c in table.columns}
    return [c for c in cols if c not in folded]


def cell_text(table: pd.DataFrame, i: Any, col: str) -> str:
    """`mean ± std` (std to 2 significant digits, `±` bound to it by a no-break space), plus
    ` (n=k)` when only k of the row's seeds have the value; `format_cell` otherwise."""
    text = format_cell(col, table.at[i, col])
    if not text:
        return text
    std, n = std_column(col), n_column(col)
    if std in table.columns and not is_missing(table.at[i, std]):
        text += f" ±\u00a0{table.at[i, std]:.2g}"
    if n in table.columns and SEEDS_N in table.columns and not is_missing(table.at[i, n]):
        if int(table.at[i, n]) < int(table.at[i, SEEDS_N]):
            text += f" (n={int(table.at[i, n])})"
    return text


def display_rows(table: pd.DataFrame, columns: Sequence[str] | None = None) -> list[list[str]]:
    """Cell texts of the display columns, row by row (see `cell_text`)."""
    cols = display_columns(table, columns)
    return [[cell_text(table, i, c) for c in cols] for i in table.index]


def summary_columns(table: pd.DataFrame) -> list[str]:
    """`key_columns` of an aggregated table, with `n seeds` after `target` when some row holds several."""
    cols = key_columns(table)
    if has_seed_groups(table):
        at = cols.index("target") + 1 if "target" in cols else len(cols)
        cols.insert(at, SEEDS_N)
    return cols
