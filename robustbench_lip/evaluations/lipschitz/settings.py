"""`CertifySettings`: the Lipschitz certificate's settings and their defaults, defined once (torch-free:
the CLI makes its options from them before torch is imported)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from robustbench_lip.attacks.eps import format_eps, parse_eps_list
from robustbench_lip.choices import BoundMode, CertifyTarget
from robustbench_lip.evaluations.base import Inputs, setting

DEFAULT_EPS: tuple[float, ...] = (36 / 255, 72 / 255, 108 / 255)
"""ℓ2 radii of the certified metrics (pixel units)."""

DEFAULT_LOWER_BUDGET_S = 10.0
"""Wall-time budget (s) of the witnessed lower-bound search of one certify (A, R and the FNE test
together; `rlip certify --lower-budget`). Once spent, the searches stop proposing and keep the best
witness found so far (still a witnessed, sound lower bound). The certified upper bound and the radii
do not depend on it."""


def _eps(text: str) -> tuple[float, ...]:
    return tuple(parse_eps_list(text, norm="l2"))


@dataclass(frozen=True)
class CertifySettings:
    """What one Lipschitz certificate computes (the data it runs on: `base.Inputs`).

    target: A, reflection (R = 2A − I) or both (R when defined); eps: ℓ2 radii; steps: adversarial
    search steps of the lower bounds; mode: the upper bound's mode; lower_budget_s: seconds for the
    witnessed lower-bound search (None: no limit)."""

    KIND = "certify"
    FLAT_RENAMES: ClassVar[dict[str, str]] = {"lower_budget_s": "lower_budget"}  # the CLI flag --lower-budget

    target: str = setting(
        CertifyTarget.both.value,
        "A, reflection (R = 2A − I) or both.",
        cli=CertifyTarget,
        show=CertifyTarget.both,
    )
    eps: tuple[float, ...] = setting(
        DEFAULT_EPS,
        "ℓ2 radii, e.g. 36/255,72/255,108/255.",
        cli=str,
        parse=_eps,
        show="36/255,72/255,108/255",
    )
    steps: int = setting(10, "Adversarial search steps.", min=0)
    mode: str = setting(
        BoundMode.fast.value, "Bound mode: fast, or tight (small grids).", cli=BoundMode, show=BoundMode.fast
    )
    lower_budget_s: float | None = setting(
        DEFAULT_LOWER_BUDGET_S,
        "Seconds for the witnessed lower-bound search (A, R and the FNE test together); once spent it "
        "keeps the best witness so far. Recorded in the settings and timings.",
        cli=float,
        min=0.0,
    )

    def __post_init__(self) -> None:
        for name in ("target", "mode"):  # plain values in records, whatever the caller passed
            v = getattr(self, name)
            object.__setattr__(self, name, getattr(v, "value", v))

    def record(self, inputs: Inputs, data: str | None, shape: tuple[int, ...]) -> dict[str, Any]:
        """The record settings (their key names the file); `other_data` only when true."""
        s = {
            "lower_budget_s": None if self.lower_budget_s is None else float(self.lower_budget_s),
            "data": data,
            "n": int(inputs.n),
            "target": self.target,
            "eps": [format_eps(e) for e in self.eps],
            "seed": int(inputs.seed),
            "steps": int(self.steps),
            "mode": self.mode,
            "input_shape": [int(s) for s in shape],
        }
        return {**s, "other_data": True} if inputs.other_data else s


CERTIFY = CertifySettings()
"""The defaults, for library functions that take one setting as a keyword."""

__all__ = ["CERTIFY", "DEFAULT_EPS", "DEFAULT_LOWER_BUDGET_S", "CertifySettings"]
