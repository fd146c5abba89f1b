"""Certify a model: certified upper and measured lower Lipschitz bounds of A and R = 2A − I, the
firm non-expansiveness test, and certified ℓ2 robustness (evaluations.lipschitz.metrics).

`certify(model, images, labels, masks, ...)` returns a `Certificate` whose `payload()` holds the
record keys of kind "certify": `lipschitz` {"A", "R"}, `fne`, `certified_accuracy`,
`certified_miou`, `certified_pixel_accuracy`, `clean`, `unsupported_ops`, `timings` (+ `layers`).

Words: "upper" values are certified (provably ≥ the true constant over all of R^d); "lower"
values are estimates — each is a true Lipschitz quotient or local Jacobian norm at a point found
by search, hence ≤ the true constant on [0, 1]^d, but not the constant itself.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from robustbench_lip.device import preserved_modes, preserved_rng, set_eval
from robustbench_lip.errors import RlipError
from robustbench_lip.evaluations.lipschitz.metrics import certified_metrics
from robustbench_lip.evaluations.lipschitz.settings import CERTIFY, DEFAULT_EPS, DEFAULT_LOWER_BUDGET_S
from robustbench_lip.evaluations.steps import ProgressFn, Steps
from robustbench_lip.lipschitz.bounds import Mode, UpperBound, upper_bound
from robustbench_lip.lipschitz.lower import LowerBound, fne_test, lower_bounds
from robustbench_lip.records.schema import FneVerdict
from robustbench_lip.tasks import task_of

log = logging.getLogger(__name__)

_SHARES = {"A": 1.0, "R": 1.0, "FNE": 0.5}
TargetChoice = Literal["A", "reflection", "both"]


@dataclass
class Certificate:
    """Everything `certify` found; `payload()` gives the record's payload keys."""

    bound: UpperBound
    lower_A: LowerBound
    lower_R: LowerBound | None
    fne: dict[str, Any]
    certified_accuracy: dict[str, float] | None
    certified_accuracy_estimate: dict[str, float] | None
    certified_miou: dict[str, float | None] | None
    certified_miou_estimate: dict[str, float | None] | None
    certified_pixel_accuracy: dict[str, float] | None
    clean: dict[str, Any]
    timings: dict[str, float | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    radius_rules: dict[str, Any] | None = None

    def payload(self, layers: bool = False) -> dict[str, Any]:
        u = self.bound.upper
        a = {"upper": u, "upper_kind": "certified" if u is not None else None, **self.lower_A.to_dict()}
        a["gap"] = _gap(u, self.lower_A.lower)
        r = None
        if self.lower_R is not None:
            ru = self.bound.reflection_upper()
            r = {"upper": ru, "upper_kind": "certified" if ru is not None else None, **self.lower_R.to_dict()}
            r["gap"] = _gap(ru, self.lower_R.lower)
        out: dict[str, Any] = {
            "lipschitz": {"A": a, "R": r, "bound_mode": self.bound.mode, "graph": self.bound.graph},
            "fne": self.fne,
            "certified_accuracy": self.certified_accuracy,
            "certified_accuracy_estimate": self.certified_accuracy_estimate,
            "certified_miou": self.certified_miou,
            "certified_miou_estimate": self.certified_miou_estimate,
            "certified_pixel_accuracy": self.certified_pixel_accuracy,
            "clean": self.clean,
            "unsupported_ops": list(self.bound.unsupported_ops),
            "bound_problems": [p.to_dict() for p in self.bound.problems],
            "timings": self.timings,
            "notes": self.notes,
        }
        if self.radius_rules is not None:
            out["radius_rules"] = self.radius_rules
        if layers:
            out["layers"] = [vars(layer) for layer in self.bound.layers]
        return out


def _gap(upper: float | None, lower: float | None) -> float | None:
    if upper is None or lower is None or not lower > 0:
        return None
    return upper / lower


# ----------------------------------------------------------------------------------------------
# the whole certificate (the certified robustness is in evaluations.lipschitz.metrics)
# ----------------------------------------------------------------------------------------------


def _check_order(what: str, low: LowerBound, upper: float | None) -> None:
    """A witnessed lower bound above a certified upper bound means a bug: say so and stop."""
    if upper is not None and low.lower is not None and low.lower > upper:
        raise RlipError(
            f"internal inconsistency: the witnessed lower bound of {what}, {low.lower:.9g}, exceeds the "
            f"certified upper bound {upper:.9g}; no record written — please report this model"
        )


def _input_shape(
    model: nn.Module, images: torch.Tensor | None, input_shape: Sequence[int] | None
) -> tuple[int, ...]:
    """(C, H, W) of the certified inputs: the images', else `input_shape`, else the model config's."""
    if images is not None:
        if images.dim() < 2:
            raise RlipError("images must be a batch (N, C, H, W)")
        return tuple(images.shape[1:])
    cfg = getattr(model, "config", None)
    shape = tuple(input_shape) if input_shape is not None else (tuple(cfg.input_size) if cfg else None)
    if shape is None:
        raise RlipError("no data and no input shape: pass --input-shape C,H,W")
    return shape


FORWARD_BATCH = 64


def _batches(x: torch.Tensor, steps: Steps | None) -> Iterator[torch.Tensor]:
    """x in batches of FORWARD_BATCH, each a progress step."""
    for i in range(0, x.shape[0], FORWARD_BATCH):
        if steps is not None:
            steps.start(f"forward pass, images {i + 1}–{min(i + FORWARD_BATCH, x.shape[0])}")
        yield x[i : i + FORWARD_BATCH]
        if steps is not None:
            steps.finish()


@torch.no_grad()
def _forward_all(
    model: nn.Module, x: torch.Tensor, shape: Sequence[int], steps: Steps | None = None
) -> torch.Tensor:
    """The model's outputs on x in batches of 64 (a progress step each); one-line errors when it
    fails or is not finite."""
    try:
        out = torch.cat([model(xb) for xb in _batches(x, steps)])
    except RlipError:
        raise
    except Exception as e:  # a foreign model may raise anything
        text = str(e).strip().splitlines()
        first = text[0] if text else type(e).__name__
        raise RlipError(f"the model fails on inputs of shape {tuple(shape)}: {first}") from None
    if not bool(torch.isfinite(out).all()):
        raise RlipError(f"the model returns non-finite values (NaN or inf) on inputs of shape {tuple(shape)}")
    return out


def _undefined_fne() -> dict[str, Any]:
    return {
        "violated": None,
        "verdict": FneVerdict.UNDEFINED.value,
        "min_value": None,
        "min_normalised": None,
        "pairs_tested": 0,
        "witness": None,
    }


class _Budget:
    """The lower-bound budget shared by the searches of one certify: each gets the time left times
    its share of the shares left (time one search does not use goes to the next)."""

    def __init__(self, seconds: float | None, parts: Sequence[str]) -> None:
        self.end = None if seconds is None else time.perf_counter() + seconds
        self.left = [_SHARES[p] for p in parts]

    def next(self) -> float | None:
        share = self.left.pop(0)
        if self.end is None:
            return None
        return max(0.0, self.end - time.perf_counter()) * share / (share + sum(self.left))


def _lower_and_fne(
    model: nn.Module,
    x: torch.Tensor,
    ub: UpperBound,
    reflection: bool,
    search: tuple[int, int, float | None],
    gen: torch.Generator,
    progress: Steps,
) -> tuple[LowerBound, LowerBound | None, dict[str, Any]]:
    """Witnessed lower bounds of A, and — when `reflection` (R defined and asked for) — of R and
    the FNE test, checked against the certified upper bounds; search = (iters, steps, budget in s
    or None). Without R the FNE verdict is "undefined" (as the records have always said, also for
    target A on a same-shape model)."""
    iters, steps, seconds = search
    budget = _Budget(seconds, ("A", "R", "FNE") if reflection else ("A",))
    progress.start("lower bounds of A (witnessed search)")
    low_a = lower_bounds(model, x, "A", iters=iters, steps=steps, generator=gen, budget_s=budget.next())
    progress.finish()
    _check_order("L(A)", low_a, ub.upper)
    if not reflection:
        return low_a, None, _undefined_fne()
    progress.start("lower bounds of R = 2A − I (witnessed search)")
    low_r = lower_bounds(
        model, x, "reflection", iters=iters, steps=steps, generator=gen, budget_s=budget.next()
    )
    progress.finish()
    progress.start("firm non-expansiveness test")
    fne = fne_test(model, x, steps=steps, generator=gen, budget_s=budget.next())
    progress.finish()
    ru = ub.reflection_upper()
    _check_order("L(R)", low_r, ru)
    if ru is not None and ru <= 1:  # R 1-Lipschitz ⇔ A firmly non-expansive
        if fne["violated"]:
            raise RlipError(
                f"internal inconsistency: certified L(R) ≤ {ru:.6g} ≤ 1 but a pair violates firm "
                "non-expansiveness; please report this model"
            )
        fne["verdict"] = FneVerdict.CERTIFIED.value
    return low_a, low_r, fne


def certify(
    model: nn.Module,
    images: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    masks: torch.Tensor | None = None,
    *,
    input_shape: Sequence[int] | None = None,
    target: TargetChoice = CERTIFY.target,  # type: ignore[assignment]
    eps: Sequence[float] = DEFAULT_EPS,
    n_random: int = 32,
    iters: int = 30,
    steps: int = CERTIFY.steps,
    seed: int = 0,
    mode: Mode = CERTIFY.mode,  # type: ignore[assignment]
    num_mask_classes: int | None = None,
    device: str | torch.device | None = None,
    bound: UpperBound | None = None,
    progress: ProgressFn | None = None,
    lower_budget: float | None = DEFAULT_LOWER_BUDGET_S,
) -> Certificate:
    """Certify `model` (inputs in [0,1], eval semantics; its modes and the global RNG are restored).

    images (N, C, H, W) / labels (N,) / masks (N, H, W) from a dataset, or images=None to use
    `n_random` uniform random points of `input_shape` (defaults to model.config.input_size).
    target: "A", "reflection" (needs output shape == input shape) or "both" (R when defined).
    eps: ℓ2 radii for the certified metrics. num_mask_classes: mask label count for segmenters
    (defaults to model.config.num_mask_classes). bound: a precomputed UpperBound to reuse.
    progress(what, done, total): called as each step starts (evaluations.steps). lower_budget:
    seconds for the witnessed lower-bound searches (None: no limit). timings (s): export_upper_s
    (export + certified upper bound), lower_s (searches, FNE test), radii_s (certified radii), and
    lower_budget_s, the budget asked.
    """
    if target not in ("A", "reflection", "both"):
        raise RlipError(f"unknown target {target!r}; expected A, reflection or both")
    cfg = getattr(model, "config", None)
    shape = _input_shape(model, images, input_shape)
    dev = (
        torch.device(device)
        if device is not None
        else next((p.device for p in model.parameters()), torch.device("cpu"))
    )
    timings: dict[str, float | None] = {}
    notes: list[str] = []
    with preserved_modes(model), preserved_rng():
        set_eval(model)
        gen = torch.Generator().manual_seed(seed)
        if images is None:
            x = torch.rand((n_random, *shape), generator=gen).to(dev)
            notes.append(f"no data: lower bounds from {n_random} uniform random points in [0,1]")
        else:
            x = images.to(dev, torch.float32)
        n_batches = -(-x.shape[0] // FORWARD_BATCH)
        todo = Steps(progress, n_batches + 3 + (2 if target != "A" else 0))
        out = _forward_all(model, x, shape, todo)
        same_shape = tuple(out.shape[1:]) == tuple(x.shape[1:])
        if target == "reflection" and not same_shape:
            raise RlipError(
                "the reflection R = 2A − I needs an output shape equal to the input shape; this model "
                f"maps {tuple(x.shape[1:])} → {tuple(out.shape[1:])}; use --target A"
            )
        t0 = time.perf_counter()
        todo.start("certified upper bound")
        ub = bound if bound is not None else upper_bound(model, shape, mode=mode, device=dev)
        todo.finish()
        timings["export_upper_s"] = time.perf_counter() - t0
        if ub.upper is None:
            notes.append("no certified bound: " + "; ".join(ub.reasons))
        t0 = time.perf_counter()
        reflection = same_shape and target in ("reflection", "both")
        if target != "A" and not reflection:
            todo.drop(2)
        low_a, low_r, fne = _lower_and_fne(model, x, ub, reflection, (iters, steps, lower_budget), gen, todo)
        timings["lower_s"] = time.perf_counter() - t0
        timings["lower_budget_s"] = lower_budget
        t0 = time.perf_counter()
        k = num_mask_classes if num_mask_classes is not None else (cfg.num_mask_classes if cfg else None)
        data = (images, labels, masks)
        todo.start("certified robustness")
        rob, rules = certified_metrics(
            task_of(model, out, x), model, x, out, data, ub, low_a.lower, eps, k, notes
        )
        if bound is None:
            ub.keep_lowered(None)  # the graph and its values are not needed past the radii
        timings["radii_s"] = time.perf_counter() - t0
        todo.end()
    return Certificate(
        bound=ub, lower_A=low_a, lower_R=low_r, fne=fne, timings=timings, notes=notes,
        radius_rules=rules, **vars(rob),
    )  # fmt: skip


__all__ = [
    "DEFAULT_EPS",
    "DEFAULT_LOWER_BUDGET_S",
    "Certificate",
    "LowerBound",
    "TargetChoice",
    "certify",
    "fne_test",
    "lower_bounds",
]
