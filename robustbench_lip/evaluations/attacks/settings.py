"""`AttackSettings`: the attack evaluation's settings and their defaults, defined once (torch-free:
the CLI makes its options from them before torch is imported), and the record settings they give."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from robustbench_lip.attacks.eps import format_eps, parse_eps_list, parse_eps_token
from robustbench_lip.attacks.registry import (
    ATTACKS,
    DEFAULT_STEPS,
    attack_help,
    protocol_default_steps,
    protocols,
)
from robustbench_lip.choices import Norm, Objective
from robustbench_lip.errors import RlipError
from robustbench_lip.evaluations.base import Inputs, setting

DEFAULT_ATTACK = "pgd"
"""The attack when neither --attack nor --preset names one."""


def attack_list(text: str | Sequence[str]) -> list[str]:
    """Attack names from "pgd,fgsm" or a list (lower-cased; "all" kept); RlipError for unknown names."""
    names = [t.strip().lower() for t in (text.split(",") if isinstance(text, str) else text)]
    for t in names:
        if t != "all" and t not in ATTACKS:
            raise RlipError(f"unknown attack {t!r}; expected one of {', '.join((*ATTACKS.names(), 'all'))}")
    return names


def _alpha(text: str) -> float:
    v = parse_eps_token(text, "l2")
    if v <= 0:
        raise RlipError(f"bad --alpha {text!r}: must be > 0")
    return v


def _inputs_help(name: str) -> str:
    """The help of a field shared with `base.Inputs` (said once, there)."""
    return next(f.metadata["help"] for f in dataclasses.fields(Inputs) if f.name == name)


@dataclass(frozen=True)
class AttackSettings:
    """What one attack evaluation computes and on what.

    eps: budgets (pixel units; text is parsed with `norm`); attack: names (or "all"; None: pgd, or
    none with a preset); preset: a protocol (attacks.registry.protocols) instead of `attack`; steps:
    None → the preset's own, else DEFAULT_STEPS; restarts: of sea; alpha: step size (None: 2.5·ε/steps);
    objective: cls | pixel (None: by model); data / root: dataset (None: the model's own); n: the
    first n test samples (None: all); other_data: allow data other than the run's own."""

    KIND = "attack"

    eps: tuple[float, ...] = setting(
        (), "Budgets, e.g. 0,2/255,8/255 (ℓ∞ in [0,1]; ℓ2 ≥ 0).", cli=str, show=...
    )
    attack: tuple[str, ...] | None = setting(None, attack_help(), cli=str | None)  # help: cli.attack
    preset: str | None = setting(
        None, "Protocol instead of --attack: standard = AutoAttack (labels), SEA (masks)."
    )
    norm: str = setting(Norm.linf.value, "Threat model.", cli=Norm, show=Norm.linf)
    steps: int | None = setting(
        None,
        f"Iterations per attack (SEA: per member) [{DEFAULT_STEPS}; --preset: "
        f"{protocol_default_steps('standard')}].",
        min=1,
    )
    restarts: int = setting(1, "Restarts of sea (others: 1).", min=1)
    alpha: float | None = setting(None, "Step size (default 2.5·ε/steps).", cli=str | None, parse=_alpha)
    objective: str | None = setting(
        None,
        "cls: image-label loss; pixel: pixel loss on the mask (default by model).",
        cli=Objective | None,
    )
    data: str | None = setting(None, "Dataset name (default: the model's).")
    root: Path | None = setting(None, "Dataset folder (cifar10, coco, folder).")  # noqa: RUF009
    n: int | None = setting(None, "Attack the first N test samples.", min=1)
    batch_size: int = setting(64, "", min=1)
    seed: int = setting(0, "Seed of the random starts.")
    device: str = setting("auto", "auto, cpu, cuda or cuda:N.")
    other_data: bool = setting(False, _inputs_help("other_data"))

    def __post_init__(self) -> None:
        """Plain values whatever the caller passed: enums → values, text → eps / attack names,
        the preset lower-cased and checked, steps resolved (module docstring)."""
        put = lambda name, v: object.__setattr__(self, name, v)  # noqa: E731
        put("norm", getattr(self.norm, "value", self.norm))
        put("objective", getattr(self.objective, "value", self.objective))
        eps = self.eps
        put("eps", tuple(parse_eps_list(eps, self.norm) if isinstance(eps, str) else (float(e) for e in eps)))
        if self.preset is not None:
            if self.attack:
                raise RlipError("--preset and --attack exclude each other: a preset names its own attacks")
            if self.preset.lower() not in protocols():
                raise RlipError(f"unknown --preset {self.preset!r}; expected one of {', '.join(protocols())}")
            put("preset", self.preset.lower())
        attack = self.attack or (DEFAULT_ATTACK if self.preset is None else ())
        put("attack", tuple(attack_list(attack)) if attack else ())
        if self.steps is None and self.preset is None:
            put("steps", DEFAULT_STEPS)
        if self.alpha is not None and not (math.isfinite(self.alpha) and self.alpha > 0):
            raise RlipError(f"alpha must be a positive number, got {self.alpha}")

    def record(self, data: str, model_file: str | None = None) -> dict[str, Any]:
        """The record settings (their key names the record file): `model_file` for a model file
        (not a run folder), `preset`, `restarts` and `other_data` only when set, so that the keys of
        earlier records stay valid; with a preset, `attack` is []."""
        s: dict[str, Any] = {
            "eps": [format_eps(e) for e in self.eps],
            "attack": [] if self.preset is not None else list(self.attack or ()),
            "norm": self.norm,
            "steps": self.steps,
            "alpha": self.alpha,
            "objective": self.objective or "auto",
            "data": data,
            "n": self.n,
            "seed": self.seed,
            "batch_size": self.batch_size,
        }
        if model_file is not None:
            s["model_file"] = model_file
        if self.preset is not None:
            s["preset"] = self.preset
        if self.restarts != 1:
            s["restarts"] = self.restarts
        if self.other_data:
            s["other_data"] = True
        return s


ATTACK = AttackSettings()
"""The defaults, for library functions that take one setting as an argument."""

__all__ = ["ATTACK", "DEFAULT_ATTACK", "AttackSettings", "attack_list"]
