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
from robustbench_lip.registry import Registry


@dataclass(frozen=True)
class LeaderboardMetric:
    """One leaderboard column: `value(payload)` → a number or None (not in this record)."""

    name: str
    doc: str
    kind: str
    value: Callable[[Payload], Any]
    group: str = "other"


LEADERBOARD_METRICS: Registry[LeaderboardMetric] = Registry("leaderboard metric")


@dataclass(frozen=True)
class PayloadColumn:
    """A built-in family of columns read from one payload field (records.payloads): `field` the
    payload attribute, `metric` the column's metric, `what` its name in a column's doc, `doc` the
    doc of its column pattern (`pixel_doc`: of its pixel-level variant, attacks only). Adding such a
    metric: the payload field, and one entry here."""

    field: str
    metric: str
    what: str = ""
    doc: str = ""
    pixel_doc: str = ""


#: The fixed Lipschitz columns' names.
LA_UP, LA_LO, LA_GAP = "L(A) upper", "L(A) lower", "L(A) gap"
LR_LO, LR_UP = "L(R) lower", "L(R) upper"


@dataclass(frozen=True)
class BoundColumn:
    """A fixed column read from a Lipschitz certificate's bounds (records.payloads.Bound): `name`,
    the map `op` ("A" or "R" = 2A − I), the Bound `field`, the column's doc."""

    name: str
    op: str
    field: str
    doc: str


#: Lipschitz (A, R) bounds of a CertifyPayload → fixed columns, in column order (after the clean
#: metrics): per column, the newest Lipschitz certify record with a value.
LIPSCHITZ_COLUMNS: tuple[BoundColumn, ...] = (
    BoundColumn(
        LA_UP,
        "A",
        "upper",
        "Certified upper bound on the Lipschitz constant of A (ℓ2 → ℓ2); provably ≥ the true L(A).",
    ),
    BoundColumn(
        LA_LO,
        "A",
        "lower",
        "Measured lower bound on L(A): the best local Jacobian norm / Lipschitz quotient found (power "
        "iteration, search, pairs) on sampled inputs; an estimate, ≤ the true L(A) on [0, 1]^d.",
    ),
    BoundColumn(LA_GAP, "A", "gap", "L(A) upper / L(A) lower: how far apart the two bounds are (1 = tight)."),
    BoundColumn(
        LR_LO,
        "R",
        "lower",
        "Measured lower bound on L(R), R = 2A − I (only when A's output has its input's shape).",
    ),
    BoundColumn(
        LR_UP,
        "R",
        "upper",
        "Certified upper bound on L(R), R = 2A − I: |2α − 1| + 2·Lip(g) for A = α·x + g(x), the identity "
        "coefficient α carried through the graph (α = 0 gives the triangle bound 2·L(A) upper + 1).",
    ),
)

#: CertifyPayload's per-ε maps → `cert <metric>@<ε>` columns, in column order.
CERTIFY_COLUMNS: tuple[PayloadColumn, ...] = (
    PayloadColumn(
        "certified_accuracy",
        "acc",
        "accuracy",
        "Certified accuracy at ℓ2 radius ε (pixel units): fraction of test images classified "
        "correctly with certified radius margin / (√2·L(A) upper) > ε (provable), or, where the model "
        "ends in a linear layer, the larger min_j (z_i − z_j) / (‖W_i − W_j‖·U(features)).",
    ),
    PayloadColumn(
        "certified_pixel_accuracy",
        "pixel acc",
        "pixel accuracy",
        "Certified pixel accuracy at ℓ2 radius ε: pixels correct and provably stable "
        "within ε (segmenters, from L(A) upper; the constrained mResNet's thresholded CAM masks, from the "
        "head's rows and U(features)).",
    ),
    PayloadColumn(
        "certified_miou",
        "mIoU",
        "mIoU",
        "Certified mIoU at ℓ2 radius ε: mIoU with every pixel that is not provably stable "
        "counted as wrong (segmenters; from L(A) upper).",
    ),
)
#: AttackResult's values → the metric of `<attack>_<norm>@<ε> [<tag>] <metric>` columns, in column
#: order; an entry with `pixel_doc` also has a `pixel <metric>` column, used for pixel-level records.
ATTACK_COLUMNS: tuple[PayloadColumn, ...] = (
    PayloadColumn(
        "accuracy",
        "acc",
        "Accuracy",
        "Image-label accuracy under that attack at budget ε (pixel units, ℓ∞ or ℓ2) on the first n test "
        "images: an empirical upper estimate of robust accuracy. Protocol `custom`: the attack was chosen "
        "with `rlip attack --attack` (its steps in the long attack table); a preset's name (`--preset`): "
        "run as one of that protocol's attacks.",
        "Pixel accuracy of the predicted mask under that attack (segmenters: their attack records score "
        "pixels, so they get pixel columns).",
    ),
    PayloadColumn(
        "precision",
        "prec",
        "Macro precision",
        "Image-label macro precision under that attack at budget ε.",
        "Pixel macro precision of the predicted mask under that attack.",
    ),
    PayloadColumn("miou", "mIoU", "mIoU", "mIoU of the predicted masks under that attack at budget ε."),
)
#: SmoothedTask's values per task (SmoothingPayload.task): (task, per-radius column, abstention column)
#: → `smoothed cert <metric>@<r> (σ=<σ>)` and `smoothed <metric> (σ=<σ>)`.
SMOOTHING_COLUMNS: tuple[tuple[str, PayloadColumn, PayloadColumn], ...] = (
    (
        "classification",
        PayloadColumn("certified_accuracy", "acc"),
        PayloadColumn("abstention_rate", "abstain"),
    ),
    (
        "segmentation",
        PayloadColumn("certified_miou", "mIoU"),
        PayloadColumn("abstention_rate", "pixel abstain"),
    ),
)


def register_metric(metric: LeaderboardMetric, *, replace: bool = False) -> LeaderboardMetric:
    """Register `metric` (see the module docstring); returns it."""
    from robustbench_lip.report.columns import FIXED_COLUMNS, ColumnKey  # lazy: columns reads this registry

    if metric.kind not in KINDS:
        raise RlipError(f"leaderboard metric {metric.name!r}: unknown record kind {metric.kind!r}")
    if metric.name in FIXED_COLUMNS or ColumnKey.parse(metric.name) is not None:
        raise RlipError(f"leaderboard metric {metric.name!r} would shadow a built-in column")
    return LEADERBOARD_METRICS.register(metric.name, metric, replace=replace)
