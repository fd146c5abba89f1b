"""The attack registry: one `AttackSpec` per attack name, read by everything that enumerates attacks
(the CLI's choices and help, `all`, protocols, the runners, the recorded steps/alpha/restarts, the
leaderboard's protocol steps).

Adding an attack is one `register_attack(AttackSpec(...))` (from any module, also outside the
package); its build function gets an `AttackCall` and returns the one call interface of every
attack, `runner(x, y, m) -> adversarial x`: images x (N, C, H, W) in [0, 1], image labels y (N,)
int64, masks m (N, H, W) int64 or None; the result has x's shape, inside [0, 1] and the ε-ball.

    register_attack(AttackSpec("toy", build=lambda call: lambda x, y, m: x.clone(),
                               targets=(LABELS, MASKS), summary="does nothing"))

This module imports no torch (the CLI and the report read it); the built-in specs (attacks.builtin)
import their engines when they are built.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from robustbench_lip.attacks.eps import NORMS
from robustbench_lip.registry import Registry

#: Iterations of an attack when neither --steps nor a protocol says otherwise.
DEFAULT_STEPS = 10
#: What an attack may attack: the image labels (logits (N, K)) and/or the masks (pixel logits).
LABELS, MASKS = "labels", "masks"
#: How a result records its step size: the evaluation's (--alpha, default 2.5·ε/steps), ε (one
#: step of size ε), or none (the attack schedules its own steps).
ALPHA_STEP, ALPHA_EPS, ALPHA_OWN = "step", "eps", "own"

Runner = Callable[[Any, Any, Any], Any]


@dataclass(frozen=True)
class AttackCall:
    """What a build function gets for one (attack, ε) cell of an evaluation.

    steps: the evaluation's iterations; alpha: its step size (2.5·ε/steps unless --alpha);
    alpha_given: --alpha was passed; seed: this attack's own random stream at ε; eval_seed: the
    evaluation's seed; on_masks: attack the pixel logits `pixel_fn(x)` (N, M, H, W) against the
    masks, else the image logits `model(x)` (N, K) against the labels; others: every attack of the
    evaluation (composite attacks: SEA); make(name): the runner of another attack of the same cell."""

    model: Any
    eps: float
    norm: str
    steps: int
    alpha: float
    alpha_given: bool
    seed: int
    eval_seed: int
    restarts: int
    on_masks: bool
    image_objective: bool
    pixel_fn: Any
    ignore_index: int | None
    num_classes: int | None
    others: tuple[str, ...]
    make: Callable[[str], Runner]


@dataclass(frozen=True)
class AttackSpec:
    """One attack. targets: LABELS and/or MASKS; norms it supports; steps: fixed iterations it
    records (None: the evaluation's); alpha: ALPHA_STEP | ALPHA_EPS | ALPHA_OWN; restarts: fixed
    (None: the evaluation's --restarts); in_all: part of `--attack all` (where it fits the model);
    protocols: {protocol: its steps there}; last: runs after the others of its cell (it takes over
    their points: SEA); summary: one line for the CLI help."""

    name: str
    build: Callable[[AttackCall], Runner]
    targets: tuple[str, ...] = (LABELS, MASKS)
    norms: tuple[str, ...] = NORMS
    steps: int | None = None
    alpha: str = ALPHA_STEP
    restarts: int | None = 1
    in_all: bool = False
    protocols: Mapping[str, int] = field(default_factory=dict)
    last: bool = False
    summary: str = ""

    @property
    def masks_only(self) -> bool:
        return LABELS not in self.targets

    @property
    def labels_only(self) -> bool:
        return MASKS not in self.targets

    def on_masks(self, image_objective: bool) -> bool:
        """Whether this attack attacks the masks in an evaluation with (or without) the image objective."""
        return not (image_objective and LABELS in self.targets)

    def recorded(self, steps: int, restarts: int, eps: float, alpha: float) -> dict[str, Any]:
        """steps, alpha, restarts of one result row of this attack."""
        return {
            "steps": self.steps if self.steps is not None else steps,
            "alpha": {ALPHA_STEP: alpha, ALPHA_EPS: eps, ALPHA_OWN: None}[self.alpha],
            "restarts": restarts if self.restarts is None else self.restarts,
        }


ATTACKS: Registry[AttackSpec] = Registry("attack")


def register_attack(spec: AttackSpec, *, replace: bool = False) -> AttackSpec:
    """Register `spec` under its name (a name twice is an error unless `replace`)."""
    return ATTACKS.register(spec.name, spec, replace=replace)


def attack_names() -> tuple[str, ...]:
    """Every registered attack name, in registration order."""
    return tuple(ATTACKS.names())


def mask_only_names() -> tuple[str, ...]:
    """The attacks that only attack masks (pixel logits)."""
    return tuple(n for n, s in ATTACKS.items() if s.masks_only)


def protocols() -> tuple[str, ...]:
    """Every protocol (`--preset`) some registered attack belongs to."""
    return tuple(dict.fromkeys(p for _, s in ATTACKS.items() for p in s.protocols))


def protocol_default_steps(protocol: str) -> int:
    """The evaluation's steps under `protocol`: those of its attacks that take the evaluation's steps
    (SEA: 300), else DEFAULT_STEPS."""
    own = [s.protocols[protocol] for _, s in ATTACKS.items() if protocol in s.protocols and s.steps is None]
    return own[0] if own else DEFAULT_STEPS


class _ProtocolSteps(Mapping[str, dict[str, int]]):
    """{protocol: {attack: steps}}, read from the registry at each access."""

    def _table(self) -> dict[str, dict[str, int]]:
        out: dict[str, dict[str, int]] = {}
        for name, spec in ATTACKS.items():
            for proto, steps in spec.protocols.items():
                out.setdefault(proto, {})[name] = steps
        return out

    def __getitem__(self, key: str) -> dict[str, int]:
        return self._table()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._table())

    def __len__(self) -> int:
        return len(self._table())


#: Steps of each attack of a protocol as the protocol defines it (the leaderboard names other steps).
PROTOCOL_STEPS: Mapping[str, dict[str, int]] = _ProtocolSteps()


def attack_help() -> str:
    """The --attack help: every registered name, `all`, a list."""
    return f"One of {', '.join(ATTACKS.names())}, all; or a comma-separated list (default pgd)."


from robustbench_lip.attacks import builtin  # noqa: E402,F401  (registers the built-in attacks)
