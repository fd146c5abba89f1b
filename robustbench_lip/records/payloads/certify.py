"""The certify record's payload: Lipschitz bounds of A and R, the FNE test, certified radii metrics.

A smoothed certificate (`certificate` "smoothed") leaves the Lipschitz keys null and holds its
numbers in `smoothing` (`payloads.smoothing`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from robustbench_lip.errors import RlipError
from robustbench_lip.records.payloads.base import Payload
from robustbench_lip.records.payloads.metrics import CleanMetrics, EpsMap
from robustbench_lip.records.payloads.smoothing import SmoothingPayload

SMOOTHED = "smoothed"  # records.schema.CertificateKind.SMOOTHED's value


@dataclass(kw_only=True)
class Bound(Payload):
    """The bounds of one map (A, or R = 2A − I): `upper` certified (ℓ2 → ℓ2, ≥ the truth), `lower`
    witnessed (a local Jacobian norm or quotient found), their kinds, `gap` = upper / lower, the
    lower bound's per-source values and witness, and the search's diagnostics."""

    upper: float | None = None
    upper_kind: str | None = None
    lower: float | None = None
    lower_kind: str | None = None
    lower_mean: float | None = None
    converged: bool | None = None
    lower_sources: dict[str, Any] | None = None
    witness: dict[str, Any] | None = None
    autograd_sigma_max: float | None = None
    power_mean: float | None = None
    autograd_kind: str | None = None
    n_points: int | None = None
    eval_dtype: str | None = None
    notes: list[str] | None = None
    gap: float | None = None


@dataclass(kw_only=True)
class Lipschitz(Payload):
    """`lipschitz`: the bounds of A and of R (None when R is undefined or not asked), the bound mode
    and the graph the certificate was computed on."""

    NESTED: ClassVar[dict[str, type[Payload]]] = {"A": Bound, "R": Bound}
    A: Bound | None = None
    R: Bound | None = None
    bound_mode: str | None = None
    graph: str | None = None


@dataclass(kw_only=True)
class Fne(Payload):
    """`fne`: the firm non-expansiveness test of A on pairs (v = ⟨Ax − Ay, x − y⟩ − ‖Ax − Ay‖²):
    `verdict` (records.schema.FneVerdict's text), `violated`, the smallest v found and its witness."""

    violated: bool | None = None
    verdict: str | None = None
    min_value: float | None = None
    min_normalised: float | None = None
    pairs_tested: int | None = None
    witness: dict[str, Any] | None = None
    eval_dtype: str | None = None
    notes: list[str] | None = None


@dataclass(kw_only=True)
class CertifyPayload(Payload):
    """kind "certify" (see records.schema.CertifyRecord): per-ε maps (`EpsMap`, ℓ2 radius in pixel
    units → fraction) of certified accuracy / pixel accuracy / mIoU (provable) and their estimates."""

    NESTED: ClassVar[dict[str, type[Payload]]] = {
        "lipschitz": Lipschitz,
        "fne": Fne,
        "clean": CleanMetrics,
        "smoothing": SmoothingPayload,
    }
    OPTIONAL: ClassVar[tuple[str, ...]] = ("layers", "smoothing", "radius_rules")
    certificate: str | None = None
    lipschitz: Lipschitz | None = None
    fne: Fne | None = None
    certified_accuracy: EpsMap | None = None
    certified_accuracy_estimate: EpsMap | None = None
    certified_miou: EpsMap | None = None
    certified_miou_estimate: EpsMap | None = None
    certified_pixel_accuracy: EpsMap | None = None
    clean: CleanMetrics | None = None
    unsupported_ops: list[str] | None = None
    bound_problems: list[dict[str, Any]] | None = None
    timings: dict[str, float] | None = None
    notes: list[str] | None = None
    layers: list[dict[str, Any]] | None = None
    smoothing: SmoothingPayload | None = None
    radius_rules: dict[str, Any] | None = None

    @property
    def is_smoothed(self) -> bool:
        """A randomized-smoothing certificate (probabilistic; its own columns)."""
        return self.certificate == SMOOTHED

    def check(self, where: str) -> None:
        """A Lipschitz certificate has a `lipschitz` object, a smoothed one a `smoothing` object."""
        if self.is_smoothed and self.smoothing is None:
            raise RlipError(f"smoothed {where} without a 'smoothing' object")
        if not self.is_smoothed and self.lipschitz is None:
            raise RlipError(f"{where} without a 'lipschitz' object")
        for name in (
            "certified_accuracy",
            "certified_accuracy_estimate",
            "certified_miou",
            "certified_miou_estimate",
            "certified_pixel_accuracy",
        ):
            if not isinstance(getattr(self, name), (dict, type(None))):
                raise RlipError(f"{where}.{name} is not an object")
