"""Result records of the witnessed lower bounds (`LowerBound`, `Witness`) and the FNE test
(`FNEResult`, `FNEWitness`); `to_dict()` gives their record keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch


@dataclass
class Witness:
    """A pair x, y (each (1, C, H, W), the exact tensors evaluated) and its witnessed quotient.

    quotient: ‖g(x) − g(y)‖ / ‖x − y‖ minus the rounding allowance; raw_quotient: without it;
    distance: ‖x − y‖ (ℓ2, pixel units); origin: the proposer; sample / sample_y: indices of the data
    points the pair sits at (None when the search moved away from the data)."""

    x: torch.Tensor
    y: torch.Tensor
    quotient: float
    raw_quotient: float
    origin: str
    distance: float
    eval_dtype: str
    sample: int | None = None
    sample_y: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "distance": self.distance,
            "quotient": self.quotient,
            "raw_quotient": self.raw_quotient,
            "sample": self.sample,
            "sample_y": self.sample_y,
            "eval_dtype": self.eval_dtype,
        }


@dataclass
class LowerBound:
    """Witnessed lower bound of the Lipschitz constant of g (target "A" or "reflection").

    lower: best witnessed quotient (None: no proposer produced a pair; see notes); witness: its pair;
    sources: best witnessed quotient per proposer (None: failed or not run); lower_mean: mean over
    the points of the witnessed quotient of their h = 1e-2 power-iteration pair;
    autograd_sigma_max / power_mean: the power-iteration σ_max estimates (max / mean over points) —
    unverified proposals, never a bound; converged: power iteration converged at every point."""

    target: str
    lower: float | None
    witness: Witness | None
    sources: dict[str, float | None]
    lower_mean: float | None
    autograd_sigma_max: float | None
    power_mean: float | None
    converged: bool | None
    n_points: int
    eval_dtype: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "lower": self.lower,
            "lower_kind": "witnessed" if self.lower is not None else None,
            "lower_mean": self.lower_mean,
            "converged": self.converged,
            "lower_sources": dict(self.sources),
            "witness": self.witness.to_dict() if self.witness is not None else None,
            "autograd_sigma_max": self.autograd_sigma_max,
            "power_mean": self.power_mean,
            "autograd_kind": "proposal (unverified)",
            "n_points": self.n_points,
            "eval_dtype": self.eval_dtype,
            "notes": list(self.notes),
        }


@dataclass
class FNEWitness:
    """A pair violating (or nearest to violating) firm non-expansiveness, re-evaluated.

    value: v = ⟨Ax − Ay, x − y⟩ − ‖Ax − Ay‖² in the evaluation dtype plus the rounding allowance
    (v < 0 ⇒ violated); normalised: value / ‖x − y‖²; raw_value: v without the allowance."""

    x: torch.Tensor
    y: torch.Tensor
    value: float
    raw_value: float
    normalised: float
    distance: float
    origin: str
    indices: list[int] | None
    eval_dtype: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "origin": self.origin,
            "indices": self.indices,
            "value": self.value,
            "raw_value": self.raw_value,
            "normalised": self.normalised,
            "distance": self.distance,
            "eval_dtype": self.eval_dtype,
        }


@dataclass
class FNEResult:
    """`fne_search` result; `to_dict()` has the record keys of kind "certify" / "fne"."""

    violated: bool | None
    verdict: str
    min_value: float | None
    min_normalised: float | None
    pairs_tested: int
    witness: FNEWitness | None
    eval_dtype: str
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "violated": self.violated,
            "verdict": self.verdict,
            "min_value": self.min_value,
            "min_normalised": self.min_normalised,
            "pairs_tested": self.pairs_tested,
            "witness": self.witness.to_dict() if self.witness is not None and self.violated else None,
            "eval_dtype": self.eval_dtype,
            "notes": list(self.notes),
        }
