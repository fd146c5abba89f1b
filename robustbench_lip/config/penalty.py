"""`PenaltyConfig`: the settings of the Lipschitz training penalty (lipschitz/penalty.py)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from robustbench_lip.choices import PENALTY_METHODS, Reduce, RegBn, RegPoints, RegTarget
from robustbench_lip.config import check
from robustbench_lip.config.fields import described
from robustbench_lip.config.flat import flat_name
from robustbench_lip.errors import RlipError


@dataclass(frozen=True)
class PenaltyConfig:
    """Settings of the penalty λ · reduce_i max(σ_i², 1 − eps) (see lipschitz/penalty.py).

    lam ≥ 0: the weight λ; target "A" | "reflection" | None (None → the reflection where the model
    defines it, else A); eps ∈ [0, 1]: the hinge (0 → no penalty below σ = 1); iters ≥ 1: power
    iterations per step; points "data" | "interp"; reduce "max" | "mean"; subbatch: number of batch
    points used (None or 0 = all); every ≥ 1: apply every k-th step (with weight k·λ); warm_start:
    start from the previous step's vectors; method "double_backward" | "forward": how the JVPs are
    taken; bn "batch" | "running": the BatchNorm statistics used; hard ≥ 0: slots of the sub-batch
    kept for the hardest points seen so far, at most all slots but one.
    Flat names (records, TOML, CLI): `lam`, `reg_warm` for warm_start, `reg_<field>` for the others.
    """

    FLAT_PREFIX: ClassVar[str] = "reg_"
    FLAT_RENAMES: ClassVar[dict[str, str]] = {"lam": "lam", "warm_start": "reg_warm"}

    lam: float = described(0.0, "Penalty weight λ ≥ 0.")
    target: str | None = described(
        None, "A or reflection (default: reflection if defined).", cli=RegTarget | None
    )
    eps: float = described(0.0, "Hinge: λ·max(σ², 1 − eps).")
    iters: int = described(1, "Power iterations per step before the final product.")
    points: str = described("data", "data or interp.", cli=RegPoints)
    reduce: str = described("max", "max or mean over points.", cli=Reduce)
    subbatch: int | None = described(8, "Penalty points per step (0 = all).", cli=int)
    every: int = described(1, "Apply the penalty every k-th step.")
    warm_start: bool = described(False, "Start the power iteration from the previous step's vectors.")
    method: str = "double_backward"
    bn: str = described(
        "batch", "BatchNorm statistics in the penalty: the penalty points' or running.", cli=RegBn
    )
    hard: int = described(4, "Sub-batch slots kept for the hardest points so far.")

    def __post_init__(self) -> None:
        check.plain_enums(self)
        msg = _problem(self)
        if msg:
            raise RlipError(f"penalty: {msg}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def resolved(self, reflection_defined: bool) -> PenaltyConfig:
        """This config with the target fixed (None → the default for the model), lam and eps as floats
        and subbatch 0 → None: the settings a run's penalty actually used."""
        target = self.target or default_target(reflection_defined)
        return dataclasses.replace(
            self, lam=float(self.lam), eps=float(self.eps), target=target, subbatch=self.subbatch or None
        )


def _problem(c: PenaltyConfig) -> str | None:
    def name(field: str) -> str:
        return flat_name(PenaltyConfig, field)

    lam = check.number(c.lam, "the penalty weight λ (lam)")
    if lam:
        return lam
    if c.target is not None and (m := check.choice(c.target, RegTarget, name("target"))):
        return m
    checks = (
        check.number(c.eps, name("eps"), 0.0, 1.0),
        check.integer(c.iters, name("iters"), 1),
        check.choice(c.points, RegPoints, name("points")),
        check.choice(c.reduce, Reduce, name("reduce")),
        None if c.subbatch is None else check.integer(c.subbatch, name("subbatch"), 0),
        check.integer(c.every, name("every"), 1),
        check.choice(c.method, PENALTY_METHODS, name("method")),
        check.choice(c.bn, RegBn, name("bn")),
        check.integer(c.hard, name("hard"), 0),
    )
    return next((m for m in checks if m), None)


def default_target(reflection_defined: bool) -> str:
    """The default penalty target: the reflection where it is defined, else A."""
    return RegTarget.reflection.value if reflection_defined else RegTarget.A.value
