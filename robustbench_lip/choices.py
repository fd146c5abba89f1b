"""The allowed values of every setting with a fixed set of choices, defined once.

`str` Enums, so that a member compares equal to its value ("A" == RegTarget.A) and Typer shows
the values as an option's choices; configuration validation and the CLI both use them.
"""

from __future__ import annotations

from enum import Enum


class RegTarget(str, Enum):
    """The map whose Jacobian the penalty (or a measurement) is about: A, or R = 2A − I."""

    A = "A"
    reflection = "reflection"


class RegPoints(str, Enum):
    """Penalty points: batch points, or random convex combinations of pairs of them."""

    data = "data"
    interp = "interp"


class Reduce(str, Enum):
    """How the penalty reduces the per-point hinges."""

    max = "max"
    mean = "mean"


class RegBn(str, Enum):
    """BatchNorm statistics inside the penalty: the penalty points' batch statistics, or running."""

    batch = "batch"
    running = "running"


class JvpMethod(str, Enum):
    """How Jacobian-vector products are taken (lipschitz.jvp)."""

    double_backward = "double_backward"
    forward = "forward"
    finite_difference = "finite_difference"


#: the JVP methods the training penalty may use (both differentiable w.r.t. the parameters)
PENALTY_METHODS: tuple[JvpMethod, ...] = (JvpMethod.double_backward, JvpMethod.forward)


class Optimizer(str, Enum):
    sgd = "sgd"
    adamw = "adamw"


class Schedule(str, Enum):
    """Learning-rate schedule: cosine (after an optional linear warm-up) or constant."""

    cosine = "cosine"
    constant = "constant"


class Loss(str, Enum):
    """Training loss of the supervised task (robustbench_lip.losses_lip): cross-entropy (the default),
    margin cross-entropy (offset, temperature), multiclass hinge (margin), HKR (alpha, margin)."""

    ce = "ce"
    margin_ce = "margin_ce"
    hinge = "hinge"
    hkr = "hkr"


class Executor(str, Enum):
    """How a sweep's runs are executed (sweep.run_sweep)."""

    local = "local"
    submitit_local = "submitit-local"
    slurm = "slurm"


class Norm(str, Enum):
    """Threat model of an attack or a certified radius: ℓ∞ or ℓ2."""

    linf = "linf"
    l2 = "l2"


class Objective(str, Enum):
    """What an attack targets: the image label (cls) or the mask's pixels (pixel)."""

    cls = "cls"
    pixel = "pixel"


class CertifyTarget(str, Enum):
    """Which map `rlip certify` bounds: the network A, its reflection R = 2A − I, or both."""

    A = "A"
    reflection = "reflection"
    both = "both"


class BoundMode(str, Enum):
    """Upper-bound mode: fast, or tight (exact per-frequency conv norms; small grids)."""

    fast = "fast"
    tight = "tight"


class Split(str, Enum):
    """A dataset split."""

    train = "train"
    test = "test"


class ExportFormat(str, Enum):
    """On-disk layouts `rlip data export` writes."""

    cifar = "cifar"
    coco = "coco"


def values(choices: type[Enum] | tuple[Enum, ...]) -> tuple[str, ...]:
    """The string values of an Enum class or of a tuple of members, in definition order."""
    return tuple(m.value for m in choices)


def check_choice(value: object, choices: type[Enum] | tuple[Enum, ...], name: str) -> str | None:
    """None when `value` is one of the choices' values, else a message naming `name` and them."""
    allowed = values(choices)
    if isinstance(value, str) and value in allowed:
        return None
    return f"{name} must be one of {', '.join(allowed)}, got {value!r}"
