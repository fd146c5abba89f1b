"""Randomized-smoothing certify records → their own leaderboard columns.

A smoothed certificate (`certificate` "smoothed") is probabilistic and certifies the smoothed model
g, not the model f: its numbers go only into `smoothed …` columns, named with σ
(`smoothed cert acc@0.25 (σ=0.25)`, `smoothed cert mIoU@…`, `smoothed abstain (σ=…)`,
`smoothed pixel abstain (σ=…)`; report.metrics.SMOOTHING_COLUMNS), never into the Lipschitz
`cert …` columns nor the clean metrics. Several records: per column, the newest record that has the
value wins (as for the other columns).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any, cast

from robustbench_lip.records.payloads import CertifyPayload
from robustbench_lip.report.collect.fields import eps_text, num
from robustbench_lip.report.collect.load import LoadedRecord
from robustbench_lip.report.columns import ColumnKey
from robustbench_lip.report.metrics import SMOOTHING_COLUMNS

logger = logging.getLogger(__name__)


def _payload(lr: LoadedRecord) -> CertifyPayload:
    return cast(CertifyPayload, lr.payload)


def split_smoothed(certs: Sequence[LoadedRecord]) -> tuple[list[LoadedRecord], list[LoadedRecord]]:
    """(Lipschitz certify records, smoothed certify records), each in the given order."""
    return [lr for lr in certs if not _payload(lr).is_smoothed], [
        lr for lr in certs if _payload(lr).is_smoothed
    ]


def _record_columns(lr: LoadedRecord) -> dict[str, float]:
    row: dict[str, float] = {}
    smoothing = _payload(lr).smoothing
    assert smoothing is not None  # CertifyPayload.from_dict checked it
    sigma = num(smoothing.sigma, f"{lr.path.name} smoothing.sigma")
    if sigma is None or sigma <= 0:
        logger.warning("skipping smoothed record %s: no valid sigma", lr.path)
        return row
    for task, per_radius, abstain in SMOOTHING_COLUMNS:
        part = smoothing.task(task)
        if part is None:
            continue
        radii = getattr(part, per_radius.field)
        for r, v in (radii if isinstance(radii, dict) else {}).items():
            eps = eps_text(r, "l2")
            val = num(v, f"{lr.path.name} smoothing.{task}.{per_radius.field}[{r}]")
            if eps is not None and val is not None:
                row[ColumnKey.smoothed(per_radius.metric, eps, sigma).name()] = val
        abst = num(getattr(part, abstain.field), f"{lr.path.name} smoothing.{task}.{abstain.field}")
        if abst is not None:
            row[ColumnKey.smoothed(abstain.metric, None, sigma).name()] = abst
    return row


def smoothed_columns(smoothed: Sequence[LoadedRecord]) -> dict[str, Any]:
    """The `smoothed …` columns of one run from its smoothed certify records (newest first)."""
    row: dict[str, Any] = {}
    for lr in reversed(smoothed):  # oldest first, newer overwrite
        row.update(_record_columns(lr))
    return row
