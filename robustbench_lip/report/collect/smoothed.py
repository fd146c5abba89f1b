"""Randomized-smoothing certify records → their own leaderboard columns.

A smoothed certificate (`certificate` "smoothed") is probabilistic and certifies the smoothed model
g, not the model f: its numbers go only into `smoothed …` columns, named with σ
(`smoothed cert acc@0.25 (σ=0.25)`, `smoothed cert mIoU@…`, `smoothed abstain (σ=…)`,
`smoothed pixel abstain (σ=…)`), never into the Lipschitz `cert …` columns nor the clean metrics.
Several records: per column, the newest record that has the value wins (as for the other columns).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from robustbench_lip.report.collect.fields import eps_text, is_smoothed, num, smoothing_part, smoothing_sigma
from robustbench_lip.report.collect.load import LoadedRecord
from robustbench_lip.report.columns import ColumnKey

logger = logging.getLogger(__name__)

#: (part of `smoothing`, its per-radius key, column metric, its abstention key, abstention column metric)
PARTS: tuple[tuple[str, str, str, str, str], ...] = (
    ("classification", "certified_accuracy", "acc", "abstention_rate", "abstain"),
    ("segmentation", "certified_miou", "mIoU", "abstention_rate", "pixel abstain"),
)


def split_smoothed(certs: Sequence[LoadedRecord]) -> tuple[list[LoadedRecord], list[LoadedRecord]]:
    """(Lipschitz certify records, smoothed certify records), each in the given order."""
    return [lr for lr in certs if not is_smoothed(lr.record)], [lr for lr in certs if is_smoothed(lr.record)]


def _record_columns(lr: LoadedRecord) -> dict[str, float]:
    row: dict[str, float] = {}
    sigma = num(smoothing_sigma(lr.record), f"{lr.path.name} smoothing.sigma")
    if sigma is None or sigma <= 0:
        logger.warning("skipping smoothed record %s: no valid sigma", lr.path)
        return row
    for part, key, metric, abst_key, abst_metric in PARTS:
        values = smoothing_part(lr.record, part)
        radii = values.get(key)
        for r, v in (radii if isinstance(radii, dict) else {}).items():
            eps = eps_text(r, "l2")
            val = num(v, f"{lr.path.name} smoothing.{part}.{key}[{r}]")
            if eps is not None and val is not None:
                row[ColumnKey.smoothed(metric, eps, sigma).name()] = val
        abst = num(values.get(abst_key), f"{lr.path.name} smoothing.{part}.{abst_key}")
        if abst is not None:
            row[ColumnKey.smoothed(abst_metric, None, sigma).name()] = abst
    return row


def smoothed_columns(smoothed: Sequence[LoadedRecord]) -> dict[str, Any]:
    """The `smoothed …` columns of one run from its smoothed certify records (newest first)."""
    row: dict[str, Any] = {}
    for lr in reversed(smoothed):  # oldest first, newer overwrite
        row.update(_record_columns(lr))
    return row
