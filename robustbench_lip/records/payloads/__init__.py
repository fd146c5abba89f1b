"""Typed record payloads: one nested dataclass per payload kind, each with `to_dict()` / `from_dict()`.

Holds what a record carries beside its envelope (records.schema): `TrainPayload` (history,
final metrics), `CertifyPayload` (Lipschitz bounds of A and R, FNE, certified radii metrics, and
a smoothed certificate's `SmoothingPayload`), `AttackPayload` (one `AttackResult` per attack × ε),
`EvalPayload`. `from_dict` checks the structure once, for every reader; `to_dict` gives back the
stored JSON exactly (key order, absent keys, unknown keys). Leaf values are kept as stored.

May import: `robustbench_lip.errors` only (records sit below every package that writes or reads
them). The leaderboard's columns of each payload are listed in `robustbench_lip.report.metrics`.
"""

from __future__ import annotations

from robustbench_lip.records.payloads.attack import (
    DEFAULT_OBJECTIVE,
    AttackPayload,
    AttackResult,
    EvalPayload,
    Levels,
)
from robustbench_lip.records.payloads.base import Payload
from robustbench_lip.records.payloads.certify import Bound, CertifyPayload, Fne, Lipschitz
from robustbench_lip.records.payloads.metrics import CleanMetrics, EpsMap
from robustbench_lip.records.payloads.smoothing import SmoothedTask, SmoothingPayload
from robustbench_lip.records.payloads.train import EpochMetrics, TrainPayload

#: The payload type of each record kind.
PAYLOAD_TYPES: dict[str, type[Payload]] = {
    "train": TrainPayload,
    "certify": CertifyPayload,
    "attack": AttackPayload,
    "eval": EvalPayload,
}

__all__ = [
    "DEFAULT_OBJECTIVE",
    "PAYLOAD_TYPES",
    "AttackPayload",
    "AttackResult",
    "Bound",
    "CertifyPayload",
    "CleanMetrics",
    "EpochMetrics",
    "EpsMap",
    "EvalPayload",
    "Fne",
    "Levels",
    "Lipschitz",
    "Payload",
    "SmoothedTask",
    "SmoothingPayload",
    "TrainPayload",
]
