"""Clean metrics: the `{accuracy, precision, miou, pixel_accuracy}` object of train, certify, attack and
smoothing payloads (each kind writes the keys it has; null when not measured)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from robustbench_lip.records.payloads.base import Payload

#: A value per ε or radius, keyed by its text (`36/255`, `0.25`, `1`; attacks.eps.format_eps).
EpsMap = dict[str, Any]


@dataclass(kw_only=True)
class CleanMetrics(Payload):
    """Unattacked metrics on the evaluated images (fractions in [0, 1]): image-label accuracy and
    macro precision (pixel-level for a segmenter's attack record, see `Levels`), mask mIoU, pixel
    accuracy."""

    accuracy: float | None = None
    precision: float | None = None
    miou: float | None = None
    pixel_accuracy: float | None = None
