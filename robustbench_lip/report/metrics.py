"""Leaderboard metrics from outside the built-in columns: one registered entry per column.

A `LeaderboardMetric` names a column, says what it means (its doc goes into the column docs and
the legend), which record kind it reads, and how to get the value from one record's typed payload
(robustbench_lip.records.payloads); the HTML header group is optional. For each run the newest
record of that kind with a finite number wins (as for the built-in columns); a column empty for
every run is dropped. Register with `register_metric(LeaderboardMetric(...))`; a name registered
twice is an error unless replace=True; a name may not shadow a built-in column.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from robustbench_lip.errors import RlipError
from robustbench_lip.records import KINDS
from robustbench_lip.records.payloads import Payload
from robustbench_lip.report._registry import Registry


@dataclass(frozen=True)
class LeaderboardMetric:
    """One leaderboard column: `value(payload)` → a number or None (not in this record)."""

    name: str
    doc: str
    kind: str
    value: Callable[[Payload], Any]
    group: str = "other"


LEADERBOARD_METRICS: Registry[LeaderboardMetric] = Registry("leaderboard metric")


def register_metric(metric: LeaderboardMetric, *, replace: bool = False) -> LeaderboardMetric:
    """Register `metric` (see the module docstring); returns it."""
    from robustbench_lip.report.columns import FIXED_COLUMNS, ColumnKey  # lazy: columns reads this registry

    if metric.kind not in KINDS:
        raise RlipError(f"leaderboard metric {metric.name!r}: unknown record kind {metric.kind!r}")
    if metric.name in FIXED_COLUMNS or ColumnKey.parse(metric.name) is not None:
        raise RlipError(f"leaderboard metric {metric.name!r} would shadow a built-in column")
    return LEADERBOARD_METRICS.register(metric.name, metric, replace=replace)
