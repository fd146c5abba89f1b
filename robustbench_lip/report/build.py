"""Rows → the leaderboard: typed pandas tables, filtering, sorting, slopes.

Dynamic columns (attack / certified per ε) that are empty for every run are dropped; the fixed
columns are always present. A missing value is NaN / None (an empty cell), never 0.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from robustbench_lip.errors import RlipError
from robustbench_lip.records import now_iso
from robustbench_lip.report.collect import (
    LoadedRecord,
    SkippedFile,
    attack_clean_metrics,
    load_records,
    run_row,
    seed_group_keys,
)
from robustbench_lip.report.columns import (
    FIXED_COLUMNS,
    INT_FIXED,
    LAM,
    NUMERIC_FIXED,
    SORT_ALIASES,
    dynamic_sort_key,
)
from robustbench_lip.report.seeds import aggregate
from robustbench_lip.report.slopes import SlopeFit, fit_slopes

#: Columns of the long attack table (one row per run × attack × norm × ε × level).
LONG_COLUMNS: tuple[str, ...] = (
    "run",
    "attack",
    "norm",
    "eps",
    "eps_text",
    "level",
    "steps",
    "n",
    "protocol",
    "restarts",
    "accuracy",
    "precision",
    "miou",
    "created",
    "file",
)


@dataclass
class Leaderboard:
    """A built leaderboard.

    table: one row per run (see `column_docs(table.columns)`); attacks: long-format attack results
    (one row per run × attack × norm × ε); slopes: the L(A)–λ fits; skipped: files not used;
    runs_dir: where the records were read; attack_clean: {run: clean metrics of the newest attack
    record}; generated: ISO time of the build; aggregated: the main table, one row per group of runs
    that differ only in their seed (mean, `<column> std`, `<column> n`; see `report.seeds`) — each
    run its own group when not given.
    """

    table: pd.DataFrame
    attacks: pd.DataFrame
    slopes: list[SlopeFit]
    skipped: list[SkippedFile]
    runs_dir: Path
    attack_clean: dict[str, dict[str, Any]] = field(default_factory=dict)
    generated: str = field(default_factory=now_iso)
    aggregated: pd.DataFrame | None = None

    def __post_init__(self) -> None:
        if self.aggregated is None:
            self.aggregated = aggregate(self.table)

    @property
    def columns(self) -> list[str]:
        return list(self.table.columns)

    def __len__(self) -> int:
        return len(self.table)


def _typed_table(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """The rows as a table: fixed columns then the sorted dynamic ones; integers as Int64, numbers
    as float64 (NaN when missing), text as object (None when missing)."""
    dynamic = sorted({c for r in rows for c in r if c not in FIXED_COLUMNS}, key=dynamic_sort_key)
    columns = list(FIXED_COLUMNS) + dynamic
    table = pd.DataFrame(rows, columns=columns)
    for c in columns:
        if c in INT_FIXED:
            table[c] = table[c].astype("Int64")
        elif c in NUMERIC_FIXED or c in dynamic:
            table[c] = pd.to_numeric(table[c], errors="coerce").astype("float64")
        else:
            table[c] = table[c].astype(object).where(table[c].notna(), None)
    return table


def records_to_frames(records: Sequence[LoadedRecord]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(leaderboard table, long attack table) from loaded records.

    The table has one row per run: the FIXED_COLUMNS, then `cert …@ε` columns, then per-attack and
    `worst_…` columns, with the runs in (dataset, arch, λ, seed, run) order. The long attack table has
    the LONG_COLUMNS (eps a float). Missing numbers are NaN; missing text is None.
    """
    by_run: dict[str, list[LoadedRecord]] = {}
    for lr in records:
        by_run.setdefault(lr.run, []).append(lr)
    rows: list[dict[str, Any]] = []
    longs: list[dict[str, Any]] = []
    for run in sorted(by_run):
        row, long_rows = run_row(run, by_run[run])
        rows.append(row)
        longs.extend(long_rows)
    table = _typed_table(rows)
    if not table.empty:
        table = table.sort_values(
            ["dataset", "arch", LAM, "seed", "run"], na_position="last", kind="stable"
        ).reset_index(drop=True)
    attacks = pd.DataFrame(longs, columns=list(LONG_COLUMNS))
    for c in ("eps", "accuracy", "precision", "miou"):
        attacks[c] = pd.to_numeric(attacks[c], errors="coerce").astype("float64")
    attacks["steps"] = attacks["steps"].astype("Int64")
    return table, attacks


def resolve_column(table: pd.DataFrame, name: str) -> str:
    """The table column called `name` (exact, then case-insensitive, then aliases lam/lambda → λ);
    an unknown name is an RlipError listing the valid ones."""
    cols = list(table.columns)
    if name in cols:
        return name
    low = {c.lower(): c for c in cols}
    if name.lower() in low:
        return low[name.lower()]
    alias = SORT_ALIASES.get(name.lower())
    if alias in cols:
        return alias
    raise RlipError(f"unknown column {name!r}; valid columns: {', '.join(cols)}")


def sort_table(table: pd.DataFrame, column: str, descending: bool = False) -> pd.DataFrame:
    """The table sorted by `column` (see `resolve_column`), empty cells last, ties in current order."""
    col = resolve_column(table, column)
    return table.sort_values(col, ascending=not descending, na_position="last", kind="stable").reset_index(
        drop=True
    )


def _filter_dataset(
    table: pd.DataFrame, attacks: pd.DataFrame, dataset: str
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Only the runs on `dataset` (case-insensitive), dropping dynamic columns the filter left empty;
    an unknown dataset is an RlipError listing the datasets found."""
    found = sorted({d for d in table["dataset"] if isinstance(d, str)})
    keep = table["dataset"].map(lambda d: isinstance(d, str) and d.lower() == dataset.lower())
    if not keep.any():
        raise RlipError(f"no runs on dataset {dataset!r}; datasets found: {', '.join(found) or 'none'}")
    table = table[keep.astype(bool)].reset_index(drop=True)
    attacks = attacks[attacks["run"].isin(set(table["run"]))].reset_index(drop=True)
    empty = [c for c in table.columns if c not in FIXED_COLUMNS and table[c].isna().all()]
    return table.drop(columns=empty), attacks


def build_leaderboard(
    runs_dir: str | os.PathLike[str],
    *,
    dataset: str | None = None,
    sort: str | None = None,
    descending: bool = False,
) -> Leaderboard:
    """Read the records under `runs_dir` and build the leaderboard.

    dataset: keep only the runs on that dataset (case-insensitive; an unknown name with runs present
    is an RlipError listing the datasets found). sort: a column name (see `resolve_column`);
    default order is (dataset, arch, λ, seed, run). Slopes are fitted on the kept runs (every seed a
    point). `aggregated` groups the runs that differ only in their seed. An empty
    leaderboard (no records) is returned as such — the caller decides what that means.
    """
    records, skipped = load_records(runs_dir)
    table, attacks = records_to_frames(records)
    if dataset is not None and not table.empty:
        table, attacks = _filter_dataset(table, attacks, dataset)
    if sort is not None:
        table = sort_table(table, sort, descending)
    clean = {run: v for run, v in attack_clean_metrics(records).items() if run in set(table["run"])}
    aggregated = aggregate(table, seed_group_keys(records))
    if sort is not None:
        aggregated = sort_table(aggregated, sort, descending)
    return Leaderboard(
        table=table,
        attacks=attacks,
        slopes=fit_slopes(table),
        skipped=skipped,
        runs_dir=Path(runs_dir),
        attack_clean=clean,
        aggregated=aggregated,
    )
