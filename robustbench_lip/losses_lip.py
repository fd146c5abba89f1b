"""Losses for certifiable margins of Lipschitz classifiers and segmenters.

A classifier whose logits z are L-Lipschitz keeps its prediction within ℓ2 radius
(z_y − max_{j≠y} z_j) / (√2·L) (Tsuzuku, Sato & Sugiyama 2018), or (z_y − z_j) / (‖W_y − W_j‖·L(φ))
with a known last linear layer (`robustbench_lip.lipschitz.margins`). Plain cross-entropy stops
pushing once a sample is well classified; these losses ask for margins in logit units instead.

Every loss takes logits (N, K) or (N, K, *spatial) and integer labels (N,) or (N, *spatial) and returns
the mean over samples (and pixels): a scalar.

- `margin_cross_entropy` (offset u, temperature t): t · CE((z − u·onehot(y)) / t). The offset asks
  for a margin of about u, the temperature sets how hard (Prach & Lampert 2022, "Almost-orthogonal
  layers for efficient general-purpose Lipschitz networks", ECCV, §5; Araujo et al. 2023, "A unified
  algebraic perspective on Lipschitz neural networks", ICLR, use the same loss). To aim at radius ε
  with the √2 margin formula, u ≈ √2·L·ε.
- `multiclass_hinge` (margin m): mean of max(0, m − (z_y − max_{j≠y} z_j)) (Crammer & Singer 2001).
- `hkr` (α, margin m): the hinge-regularised Kantorovich–Rubinstein loss of Serrurier, Mamalet,
  González-Sanz, Boissin, Loubes & del Barrio 2021 ("Achieving robustness in classification using
  optimal transport with hinge regularization", CVPR), multiclass form as in deel-torchlip:
  α·H − KR with H the one-vs-all hinge Σ_j max(0, m/2 − s_j·z_j) (s_y = +1 weighted K − 1,
  s_j = −1 otherwise) averaged over classes, and KR = z_y − mean_{j≠y} z_j.

`get_loss(name, **options)` returns one of these as a function (logits, labels) → scalar; names
in `LOSSES`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import torch
import torch.nn.functional as F

from robustbench_lip.errors import RlipError

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _one_hot(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """One-hot of labels along dim 1 of logits, same shape and dtype as logits."""
    k = logits.shape[1]
    if labels.shape != logits.shape[:1] + logits.shape[2:]:
        raise RlipError(f"labels of shape {tuple(labels.shape)} do not fit logits {tuple(logits.shape)}")
    oh = F.one_hot(labels.long(), k).to(logits.dtype)
    return oh.movedim(-1, 1) if logits.dim() > 2 else oh


def margin_cross_entropy(
    logits: torch.Tensor, labels: torch.Tensor, offset: float = 0.0, temperature: float = 1.0
) -> torch.Tensor:
    """t · CE((z − u·onehot(y)) / t), u = offset ≥ 0, t = temperature > 0 (Prach & Lampert 2022)."""
    if not temperature > 0 or offset < 0:
        raise RlipError(
            f"margin cross-entropy needs temperature > 0 and offset ≥ 0, got {temperature}, {offset}"
        )
    z = logits.float() - offset * _one_hot(logits.float(), labels)
    return temperature * F.cross_entropy(z / temperature, labels.long())


def top_margin(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """z_y − max_{j≠y} z_j per sample (and pixel): shape of labels."""
    oh = _one_hot(logits, labels)
    zy = (logits * oh).sum(1)
    others = logits.masked_fill(oh.bool(), float("-inf")).amax(1)
    return zy - others


def multiclass_hinge(logits: torch.Tensor, labels: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """mean max(0, m − (z_y − max_{j≠y} z_j)) (Crammer & Singer 2001)."""
    return F.relu(margin - top_margin(logits.float(), labels)).mean()


def hkr(logits: torch.Tensor, labels: torch.Tensor, alpha: float = 0.9, margin: float = 1.0) -> torch.Tensor:
    """α · one-vs-all hinge − KR term (Serrurier et al. 2021; deel-torchlip's multiclass form)."""
    if not 0 <= alpha <= 1:
        raise RlipError(f"hkr needs 0 ≤ alpha ≤ 1, got {alpha}")
    z = logits.float()
    oh = _one_hot(z, labels)
    k = z.shape[1]
    if k < 2:
        raise RlipError("hkr needs at least two classes")
    sign = 2 * oh - 1
    hinge = F.relu(margin / 2 - sign * z)
    hinge = torch.where(oh > 0, hinge * (k - 1), hinge).mean(1)
    kr = (z * oh).sum(1) - (z * (1 - oh)).sum(1) / (k - 1)
    return (alpha * hinge - (1 - alpha) * kr).mean()


def cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Plain cross-entropy (the default of `rlip train`)."""
    return F.cross_entropy(logits.float(), labels.long())


LOSSES: dict[str, tuple[LossFn, tuple[str, ...]]] = {
    "ce": (cross_entropy, ()),
    "margin_ce": (margin_cross_entropy, ("offset", "temperature")),
    "hinge": (multiclass_hinge, ("margin",)),
    "hkr": (hkr, ("alpha", "margin")),
}


def get_loss(name: str, **options: Any) -> LossFn:
    """The loss `name` (one of LOSSES) with its options bound; unknown names/options: RlipError."""
    if name not in LOSSES:
        raise RlipError(f"unknown loss {name!r}; available: {', '.join(LOSSES)}")
    fn, allowed = LOSSES[name]
    bad = sorted(set(options) - set(allowed))
    if bad:
        valid = ", ".join(allowed) or "none"
        raise RlipError(f"unknown option(s) {', '.join(bad)} for loss {name}; valid: {valid}")
    return partial(fn, **{k: float(v) for k, v in options.items()}) if options else fn


__all__ = [
    "LOSSES",
    "cross_entropy",
    "get_loss",
    "hkr",
    "margin_cross_entropy",
    "multiclass_hinge",
    "top_margin",
]
