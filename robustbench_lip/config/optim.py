"""`OptimConfig`: the optimiser and its learning-rate schedule (training/optim.py)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

from robustbench_lip.choices import Optimizer, Schedule
from robustbench_lip.config import check
from robustbench_lip.config.fields import described
from robustbench_lip.config.flat import flat_name
from robustbench_lip.errors import RlipError


@dataclass(frozen=True)
class OptimConfig:
    """name "sgd" | "adamw"; lr, momentum (SGD), weight_decay: finite numbers ≥ 0; schedule "cosine"
    (after a linear warm-up over the fraction `warmup` ∈ [0, 1) of the steps) or "constant".
    Flat names (records, TOML, CLI): `optimizer` for name, the field names for the others."""

    FLAT_PREFIX: ClassVar[str] = ""
    FLAT_RENAMES: ClassVar[dict[str, str]] = {"name": "optimizer"}

    name: str = described("sgd", cli=Optimizer)
    lr: float = described(0.05)
    momentum: float = 0.9
    weight_decay: float = described(5e-4)
    schedule: str = described("cosine", cli=Schedule)
    warmup: float = described(0.0, "Warm-up fraction of the steps.")

    def __post_init__(self) -> None:
        check.plain_enums(self)
        checks = (
            check.choice(self.name, Optimizer, flat_name(OptimConfig, "name")),
            check.number(self.lr, "lr"),
            check.number(self.momentum, "momentum"),
            check.number(self.weight_decay, "weight_decay"),
            check.choice(self.schedule, Schedule, "schedule"),
            check.number(self.warmup, "warmup", 0.0, 1.0, what="a fraction of the steps in [0, 1)"),
        )
        msg = next((m for m in checks if m), None)
        if msg is None and self.warmup >= 1:
            msg = f"warmup must be a fraction of the steps in [0, 1), got {self.warmup!r}"
        if msg:
            raise RlipError(f"optimiser: {msg}")

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
