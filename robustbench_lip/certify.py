"""Certify a model: certified upper and measured lower Lipschitz bounds of A and R = 2A − I, the
firm non-expansiveness test, and certified ℓ2 robustness (accuracy / pixel accuracy / mIoU).

`certify(model, images, labels, masks, ...)` returns a `Certificate` whose `payload()` holds the
record keys of kind "certify": `lipschitz` {"A", "R"}, `fne`, `certified_accuracy`,
`certified_miou`, `certified_pixel_accuracy`, `clean`, `unsupported_ops`, `timings` (+ `layers`).

Words: "upper" values are certified (provably ≥ the true constant over all of R^d); "lower"
values are estimates — each is a true Lipschitz quotient or local Jacobian norm at a point found
by search, hence ≤ the true constant on [0, 1]^d, but not the constant itself.

Certified radii (ℓ2, pixel units):
- classifier: margin / (√2·U) with margin = top logit − runner-up (a pair of logits moves by at
  most √2·‖ΔA‖ ≤ √2·U·‖δ‖);
- K-class segmenter (forward (N, K, H, W)): per pixel margin / (√2·U), U the bound of the whole
  output map (a pixel's logit vector moves by at most ‖ΔA‖);
- binary image-to-image model (1 channel, mask = z > 0, mask logits [0, z]): |z| / U, since the
  pair difference of [0, z] is z itself and |Δz_pixel| ≤ ‖ΔA‖ ≤ U‖δ‖; [0, z] has the constant of z.
A pixel counts as certified-correct at ε when it is correct and its radius > ε; uncertified
pixels get an impossible label, so they are wrong for every class in the certified mIoU.
mResNet's CAM masks are not certified (their map, upsampled class maps, is not the bounded
forward map); only its classification is.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from robustbench_lip.attacks.eps import format_eps
from robustbench_lip.device import preserved_modes, preserved_rng, set_eval
from robustbench_lip.errors import RlipError
from robustbench_lip.lipschitz.bounds import Mode, UpperBound, upper_bound
from robustbench_lip.lipschitz.lower import LowerBound, fne_test, lower_bounds
from robustbench_lip.metrics import ConfusionMatrix

log = logging.getLogger(__name__)

DEFAULT_EPS: tuple[float, ...] = (36 / 255, 72 / 255, 108 / 255)
TargetChoice = Literal["A", "reflection", "both"]
SQRT2 = math.sqrt(2.0)


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
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

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
        if layers:
            out["layers"] = [vars(layer) for layer in self.bound.layers]
        return out


def _gap(upper: float | None, lower: float | None) -> float | None:
    if upper is None or lower is None or not lower > 0:
        return None
    return upper / lower


# ----------------------------------------------------------------------------------------------
# certified robustness
# ----------------------------------------------------------------------------------------------


def _top2_margin(logits: torch.Tensor, dim: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    top = logits.topk(2, dim=dim)
    return top.indices.select(dim, 0), top.values.select(dim, 0) - top.values.select(dim, 1)


def certified_classification(
    logits: torch.Tensor, labels: torch.Tensor, lipschitz: float | None, eps: Sequence[float]
) -> dict[str, float] | None:
    """Fraction of samples correctly classified with ℓ2 radius margin / (√2·L) > ε, per ε."""
    if lipschitz is None or logits.shape[1] < 2:
        return None
    pred, margin = _top2_margin(logits)
    correct = pred == labels
    radius = margin / (SQRT2 * lipschitz) if lipschitz > 0 else torch.full_like(margin, math.inf)
    return {format_eps(e): float((correct & (radius > e)).float().mean()) for e in eps}


def _pixel_pred_radius(out: torch.Tensor, lipschitz: float) -> tuple[torch.Tensor, torch.Tensor]:
    if out.shape[1] == 1:  # binary: mask = z > 0, logits [0, z]
        z = out[:, 0]
        r = z.abs() / lipschitz if lipschitz > 0 else torch.full_like(z, math.inf)
        return (z > 0).long(), r
    pred, margin = _top2_margin(out)
    r = margin / (SQRT2 * lipschitz) if lipschitz > 0 else torch.full_like(margin, math.inf)
    return pred, r


def certified_segmentation(
    out: torch.Tensor, masks: torch.Tensor, lipschitz: float | None, eps: Sequence[float], num_classes: int
) -> tuple[dict[str, float | None], dict[str, float]] | None:
    """(certified mIoU per ε, certified pixel accuracy per ε) — uncertified pixels are wrong."""
    if lipschitz is None:
        return None
    pred, radius = _pixel_pred_radius(out, lipschitz)
    miou: dict[str, float | None] = {}
    pix: dict[str, float] = {}
    for e in eps:
        ok = radius > e
        p = torch.where(ok, pred, torch.full_like(pred, num_classes))
        cm = ConfusionMatrix(num_classes + 1).update(p.flatten(), masks.flatten())
        iou = cm.per_class_iou()[:num_classes]
        miou[format_eps(e)] = None if bool(torch.isnan(iou).all()) else float(torch.nanmean(iou))
        pix[format_eps(e)] = float(((p == masks) & ok).float().mean())
    return miou, pix


# ----------------------------------------------------------------------------------------------
# the whole certificate
# ----------------------------------------------------------------------------------------------


def _check_order(what: str, low: LowerBound, upper: float | None) -> None:
    """A witnessed lower bound above a certified upper bound means a bug: say so and stop."""
    if upper is not None and low.lower is not None and low.lower > upper:
        raise RlipError(
            f"internal inconsistency: the witnessed lower bound of {what}, {low.lower:.9g}, exceeds the "
            f"certified upper bound {upper:.9g}; no record written — please report this model"
        )


def _task_of(model: nn.Module, out: torch.Tensor, x: torch.Tensor) -> str:
    cfg = getattr(model, "config", None)
    if cfg is not None:
        return cfg.task
    if out.dim() == 2:
        return "classification"
    if out.shape == x.shape:
        return "image2image"
    if out.dim() == 4 and out.shape[2:] == x.shape[2:]:
        return "segmentation"
    return "features"


def certify(
    model: nn.Module,
    images: torch.Tensor | None = None,
    labels: torch.Tensor | None = None,
    masks: torch.Tensor | None = None,
    *,
    input_shape: Sequence[int] | None = None,
    target: TargetChoice = "both",
    eps: Sequence[float] = DEFAULT_EPS,
    n_random: int = 32,
    iters: int = 30,
    steps: int = 10,
    seed: int = 0,
    mode: Mode = "fast",
    num_mask_classes: int | None = None,
    device: str | torch.device | None = None,
    bound: UpperBound | None = None,
) -> Certificate:
    """Certify `model` (inputs in [0,1], eval semantics; its modes and the global RNG are restored).

    images (N, C, H, W) / labels (N,) / masks (N, H, W) from a dataset, or images=None to use
    `n_random` uniform random points of `input_shape` (defaults to model.config.input_size).
    target: "A", "reflection" (needs output shape == input shape) or "both" (R when defined).
    eps: ℓ2 radii for the certified metrics. num_mask_classes: mask label count for segmenters
    (defaults to model.config.num_mask_classes). bound: a precomputed UpperBound to reuse.
    """
    if target not in ("A", "reflection", "both"):
        raise RlipError(f"unknown target {target!r}; expected A, reflection or both")
    cfg = getattr(model, "config", None)
    if images is None:
        shape = tuple(input_shape) if input_shape is not None else (tuple(cfg.input_size) if cfg else None)
        if shape is None:
            raise RlipError("no data and no input shape: pass --input-shape C,H,W")
    else:
        if images.dim() < 2:
            raise RlipError("images must be a batch (N, C, H, W)")
        shape = tuple(images.shape[1:])
    dev = (
        torch.device(device)
        if device is not None
        else next((p.device for p in model.parameters()), torch.device("cpu"))
    )
    timings: dict[str, float] = {}
    notes: list[str] = []
    with preserved_modes(model), preserved_rng():
        set_eval(model)
        gen = torch.Generator().manual_seed(seed)
        if images is None:
            x = torch.rand((n_random, *shape), generator=gen).to(dev)
            notes.append(f"no data: lower bounds from {n_random} uniform random points in [0,1]")
        else:
            x = images.to(dev, torch.float32)
        with torch.no_grad():
            try:
                out = torch.cat([model(x[i : i + 64]) for i in range(0, x.shape[0], 64)])
            except RlipError:
                raise
            except Exception as e:  # a foreign model may raise anything
                text = str(e).strip().splitlines()
                first = text[0] if text else type(e).__name__
                raise RlipError(f"the model fails on inputs of shape {tuple(shape)}: {first}") from None
        if not bool(torch.isfinite(out).all()):
            raise RlipError(
                f"the model returns non-finite values (NaN or inf) on inputs of shape {tuple(shape)}"
            )
        same_shape = tuple(out.shape[1:]) == tuple(x.shape[1:])
        if target == "reflection" and not same_shape:
            raise RlipError(
                "the reflection R = 2A − I needs an output shape equal to the input shape; this model "
                f"maps {tuple(x.shape[1:])} → {tuple(out.shape[1:])}; use --target A"
            )
        t0 = time.perf_counter()
        ub = bound if bound is not None else upper_bound(model, shape, mode=mode, device=dev)
        timings["upper_s"] = time.perf_counter() - t0
        if ub.upper is None:
            notes.append("no certified bound: " + "; ".join(ub.reasons))
        f = model
        t0 = time.perf_counter()
        low_a = lower_bounds(f, x, "A", iters=iters, steps=steps, generator=gen)
        low_r = None
        if same_shape and target in ("reflection", "both"):
            low_r = lower_bounds(f, x, "reflection", iters=iters, steps=steps, generator=gen)
        if same_shape:
            fne = fne_test(f, x, steps=steps, generator=gen)
        _check_order("L(A)", low_a, ub.upper)
        if low_r is not None:
            _check_order("L(R)", low_r, ub.reflection_upper())
            ru = ub.reflection_upper()
            if ru is not None and ru <= 1:  # R 1-Lipschitz ⇔ A firmly non-expansive
                if fne["violated"]:
                    raise RlipError(
                        f"internal inconsistency: certified L(R) ≤ {ru:.6g} ≤ 1 but a pair violates firm "
                        "non-expansiveness; please report this model"
                    )
                fne["verdict"] = "certified"
        else:
            fne = {
                "violated": None,
                "verdict": "undefined (output shape differs from input shape)",
                "min_value": None,
                "min_normalised": None,
                "pairs_tested": 0,
                "witness": None,
            }
        timings["lower_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        task = _task_of(model, out, x)
        clean: dict[str, Any] = {"accuracy": None, "miou": None, "pixel_accuracy": None}
        ca = ca_est = miou = miou_est = pix = None
        if images is not None and task == "classification" and labels is not None and out.dim() == 2:
            lab = labels.to(out.device)
            clean["accuracy"] = float((out.argmax(1) == lab).float().mean())
            ca = certified_classification(out, lab, ub.upper, eps)
            ca_est = certified_classification(out, lab, low_a.lower, eps)
            if masks is not None:
                notes.append("CAM masks are not certified (only the classification is)")
        elif task == "features":
            notes.append(
                f"the output {tuple(out.shape[1:])} is a feature map: Lipschitz bounds only, "
                "no certified radius"
            )
        elif images is not None and masks is not None and out.dim() == 4:
            k = num_mask_classes if num_mask_classes is not None else (cfg.num_mask_classes if cfg else None)
            binary = out.shape[1] == 1 and (k in (None, 2))
            if binary:
                k = 2
            if k is None or (not binary and out.shape[1] != k):
                notes.append(
                    f"output channels {out.shape[1]} do not match the mask classes {k}: no segmentation"
                )
            else:
                mk = masks.to(out.device)
                pred, _ = _pixel_pred_radius(out, 1.0)
                cm = ConfusionMatrix(k).update(pred.flatten(), mk.flatten())
                clean["miou"], clean["pixel_accuracy"] = cm.miou(), cm.accuracy()
                r = certified_segmentation(out, mk, ub.upper, eps, k)
                if r is not None:
                    miou, pix = r
                re = certified_segmentation(out, mk, low_a.lower, eps, k)
                if re is not None:
                    miou_est = re[0]
        timings["robustness_s"] = time.perf_counter() - t0
    return Certificate(
        bound=ub,
        lower_A=low_a,
        lower_R=low_r,
        fne=fne,
        certified_accuracy=ca,
        certified_accuracy_estimate=ca_est,
        certified_miou=miou,
        certified_miou_estimate=miou_est,
        certified_pixel_accuracy=pix,
        clean=clean,
        timings=timings,
        notes=notes,
    )


def settings_for(
    data: str | None,
    n: int,
    target: str,
    eps: Sequence[float],
    seed: int,
    steps: int,
    mode: str,
    input_shape: Sequence[int],
) -> dict[str, Any]:
    """The record settings of a certify run (their key names the record file)."""
    return {
        "data": data,
        "n": int(n),
        "target": target,
        "eps": [format_eps(e) for e in eps],
        "seed": int(seed),
        "steps": int(steps),
        "mode": mode,
        "input_shape": [int(s) for s in input_shape],
    }


__all__ = [
    "DEFAULT_EPS",
    "Certificate",
    "LowerBound",
    "certified_classification",
    "certified_segmentation",
    "certify",
    "fne_test",
    "lower_bounds",
    "settings_for",
]
