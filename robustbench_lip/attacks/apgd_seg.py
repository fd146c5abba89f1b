"""APGD for segmentation (Croce & Hein, ICML 2020; as used by SEA, Croce, Singh & Hein 2023), ℓ∞ and ℓ2.

Call style as the other attacks: `atk(images, masks) -> adversarial images`, images (N, C, H, W) in
[0, 1], masks (N, H, W) int64 with `ignore_index` marking unlabelled pixels. Pixel logits come from
`logits_fn(x)`: (N, K, H, W), or a binary map z (N, 1, H, W) whose mask is z > 0 — turned into
cat([0, z]) (N, 2, H, W), the convention of `UNetI2I.mask_logits` — by default the model's
`mask_logits` (see `segmentation.pixel_logits_fn`: U-Nets, the i2i U-Net, mResNet CAM masks).

Step-size schedule of APGD: initial step 2ε; checkpoints after 22 % of the iterations, then at
intervals shrinking by 3 % of the iterations down to 6 %; at a checkpoint an image's step is halved
and its iterate reset to its best point (highest tracked loss) when fewer than 75 % of the steps
since the last checkpoint increased the loss (Croce & Hein's condition 1, strict <), or when its
step was not halved at the last checkpoint and its best loss has not improved since (condition 2).
Update x ← P(x + 0.75·(P(x + η·d) − x) + 0.25·(x − x_prev)), d = sign(∇) (ℓ∞) or ∇/‖∇‖₂ (ℓ2),
P = projection onto the ε-ball ∩ [0, 1]; the first step has no momentum.

As SEA (authors' code): the per-image loss is the mean of the pixel losses over the H·W pixels; the
best point of the schedule is tracked with an *unmasked* loss (CE, or the unmasked spherical loss for
`mask-sph`), because a masked loss falls as pixels flip; the returned point of each image is the
iterate with the lowest pixel accuracy (ties: the later iterate); the attack stops early when every
labelled pixel of every image is wrong; with `shrink_eps` (SEA's default) the budget shrinks over
three stages, 2ε, 1.5ε, ε, of 30 %, 30 % and 40 % of the steps, each stage starting from the
previous stage's lowest-accuracy point projected onto its ball. Only the last stage's points are
returned, so the output is within ε.

Losses (per pixel, y the label, p = softmax(z), only labelled pixels; `correct` = argmax z == y):
- `ce`: cross-entropy.
- `mask-ce` (SEA's L_MCE): CE on correct pixels only.
- `mask-ce-bal` (SEA's L_MCE-Bal): mask-ce weighted by class: `class_weights[y]` when given (SEA
  uses fixed per-dataset inverse-frequency weights), else per image n_lab / (C·n_y), n_y the number
  of labelled pixels of class y in the image and C the number of classes present (our default:
  each class present weighs the same in the image's loss; the weights average to 1).
- `js` (SEA's L_JS): Jensen–Shannon divergence of p and the one-hot label, which depends on p_y only:
  ½·(2 log 2 + p_y log p_y − (1 + p_y) log(1 + p_y)), in [0, log 2].
- `mask-sph` (masked spherical loss of SEA's first version): −z_y / ‖z‖₂ on correct pixels. For a
  binary map cat([0, z]) the normalised logit is ±1 and carries no gradient.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from robustbench_lip.attacks.base import (
    ascent_direction,
    check_budget,
    check_norm,
    fast_argmax,
    isolated,
    project,
    random_start,
)
from robustbench_lip.attacks.rng import stream_generator
from robustbench_lip.attacks.segmentation import IGNORE_INDEX, LogitsFn, pixel_logits_fn
from robustbench_lip.errors import RlipError

APGD_LOSSES: tuple[str, ...] = ("ce", "mask-ce", "mask-ce-bal", "js", "mask-sph")
MOMENTUM = 0.75  # weight of the new step (1 − weight of the previous move)
RHO = 0.75  # condition 1: fraction of loss increases below which the step is halved
FIRST_CHECK, MIN_INTERVAL, INTERVAL_DECREMENT = 0.22, 0.06, 0.03
SHRINK_STAGES: tuple[tuple[float, float], ...] = ((2.0, 0.3), (1.5, 0.3), (1.0, 0.4))  # (ε factor, steps)
LOG2 = math.log(2.0)


@dataclass
class APGDResult:
    """adv (N, C, H, W) within ε and in [0, 1]; prediction (N, H, W) int64: argmax of the logits at
    adv; accuracy (N,) float: pixel accuracy there (1 for an image without labelled pixels);
    num_classes: channels of the pixel logits."""

    adv: torch.Tensor
    prediction: torch.Tensor
    accuracy: torch.Tensor
    num_classes: int


def class_logits(out: torch.Tensor) -> torch.Tensor:
    """(N, K, H, W) pixel logits as they are; a binary map (N, 1, H, W) (mask z > 0) → cat([0, z])."""
    if out.dim() != 4:
        raise RlipError(f"pixel logits must have shape (N, K, H, W), got {tuple(out.shape)}")
    return torch.cat([torch.zeros_like(out), out], dim=1) if out.shape[1] == 1 else out


def labelled(target: torch.Tensor, ignore_index: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """(target with ignored pixels set to 0, valid mask (N, H, W) bool)."""
    valid = torch.ones_like(target, dtype=torch.bool) if ignore_index is None else target != ignore_index
    return torch.where(valid, target, torch.zeros_like(target)), valid


def pixel_weights(
    loss: str, tgt: torch.Tensor, valid: torch.Tensor, num_classes: int, class_weights: torch.Tensor | None
) -> torch.Tensor:
    """Weight map (N, H, W): 1 on labelled pixels, 0 elsewhere; for `mask-ce-bal` the class weights."""
    w = valid.to(torch.get_default_dtype())
    if loss != "mask-ce-bal":
        return w
    if class_weights is not None:
        cw = torch.as_tensor(class_weights, dtype=w.dtype, device=tgt.device).reshape(-1)
        if cw.numel() != num_classes:
            raise RlipError(
                f"class_weights has {cw.numel()} entries, the model predicts {num_classes} classes"
            )
        return cw[tgt] * w
    n = tgt.shape[0]
    counts = torch.zeros(n, num_classes, dtype=w.dtype, device=tgt.device)
    counts.scatter_add_(1, tgt.reshape(n, -1), w.reshape(n, -1))
    present = (counts > 0).sum(1, keepdim=True).clamp_min(1)
    per_class = counts.sum(1, keepdim=True) / (present * counts).clamp_min(1)
    return per_class.gather(1, tgt.reshape(n, -1)).reshape(tgt.shape) * w


def pixel_losses(
    loss: str, logits: torch.Tensor, tgt: torch.Tensor, weights: torch.Tensor, correct: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """(attacked loss (N, H, W) with gradient, tracked loss (N, H, W) detached) of one loss name.

    logits (N, K, H, W); tgt (N, H, W) labels with ignored pixels set to any valid class; weights from
    `pixel_weights` (0 on ignored pixels); correct (N, H, W) bool: labelled and argmax == label."""
    dtype = logits.dtype
    if loss == "mask-sph":
        norm = (logits * logits).sum(1).sqrt().clamp_min(1e-12)
        sph = -logits.gather(1, tgt.unsqueeze(1)).squeeze(1) / norm
        return sph * (weights * correct.to(dtype)), (sph * weights).detach()
    ce = F.cross_entropy(logits, tgt, reduction="none")
    track = (ce * weights).detach()
    if loss == "ce":
        return ce * weights, track
    if loss in ("mask-ce", "mask-ce-bal"):
        return ce * (weights * correct.to(dtype)), track
    if loss == "js":
        p = torch.exp(-ce)
        js = 0.5 * (2 * LOG2 - p * ce - (1 + p) * torch.log1p(p))
        return js * weights, track
    raise RlipError(f"unknown APGD loss {loss!r}; expected one of {', '.join(APGD_LOSSES)}")


class _Schedule:
    """APGD's step sizes and checkpoints for one stage of `n_iter` iterations on `n` images."""

    def __init__(self, n_iter: int, step: torch.Tensor, loss_max: torch.Tensor) -> None:
        self.k = max(int(FIRST_CHECK * n_iter), 1)
        self.k_min = max(int(MIN_INTERVAL * n_iter), 1)
        self.decrement = max(int(INTERVAL_DECREMENT * n_iter), 1)
        self.counter = 0
        self.step = step
        self.loss_last = loss_max.clone()
        self.reduced_last = torch.ones_like(loss_max, dtype=torch.bool)

    def update(self, history: list[torch.Tensor], loss_max: torch.Tensor) -> torch.Tensor | None:
        """After an iteration: None, or at a checkpoint the (N,) mask of images whose step was halved."""
        self.counter += 1
        if self.counter < self.k:
            return None
        window = torch.stack(history[-(self.k + 1) :])
        increases = (window[1:] > window[:-1]).sum(0)
        reduce = (increases < RHO * self.k) | (~self.reduced_last & (self.loss_last >= loss_max))
        self.step = torch.where(reduce.view(-1, 1, 1, 1), self.step / 2, self.step)
        self.reduced_last, self.loss_last = reduce, loss_max.clone()
        self.counter, self.k = 0, max(self.k - self.decrement, self.k_min)
        return reduce


def _where(mask: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return torch.where(mask.view(-1, *([1] * (a.dim() - 1))), a, b)


class APGDSegmentation:
    """`atk(images, masks) -> adversarial images`: APGD on a pixel loss of `logits_fn(x)` (module doc).

    loss: one of APGD_LOSSES (default `mask-ce`); eps: budget in pixel units; norm `linf` | `l2`;
    steps: gradient steps in all (over the stages); random_start: uniform start in the (first stage's)
    ball, drawn from the stream (seed, name) (`rng.stream_generator`; name = `apgd-<loss>`), so the
    figure does not depend on other attacks; shrink_eps: SEA's 2ε → 1.5ε → ε stages (else one stage
    at ε, plain APGD); early_stop: stop when no labelled pixel is left to flip; class_weights: (K,)
    for `mask-ce-bal`; ignore_index: mask value without a label (None: none). The model runs in
    eval mode; its modes and the global RNG are restored afterwards, also on error.
    images (N, C, H, W) in [0, 1], masks (N, H, W) int64 → adversarial (N, C, H, W) in [0, 1].
    """

    def __init__(
        self,
        model: torch.nn.Module,
        loss: str = "mask-ce",
        eps: float = 8 / 255,
        norm: str = "linf",
        steps: int = 100,
        seed: int = 0,
        random_start: bool = True,
        shrink_eps: bool = True,
        early_stop: bool = True,
        ignore_index: int | None = IGNORE_INDEX,
        logits_fn: LogitsFn | None = None,
        class_weights: torch.Tensor | None = None,
    ) -> None:
        self.loss = str(loss).lower()
        if self.loss not in APGD_LOSSES:
            raise RlipError(f"unknown APGD loss {loss!r}; expected one of {', '.join(APGD_LOSSES)}")
        self.norm = check_norm(norm)
        self.eps = check_budget(eps, self.norm)
        self.steps = int(steps)
        if self.steps < 1:
            raise RlipError(f"steps must be ≥ 1, got {steps}")
        self.model, self.seed = model, int(seed)
        self.random_start, self.shrink_eps, self.early_stop = (
            bool(random_start),
            bool(shrink_eps),
            bool(early_stop),
        )
        self.ignore_index = ignore_index
        self.logits_fn = logits_fn if logits_fn is not None else pixel_logits_fn(model)
        self.class_weights = class_weights
        self.name = f"apgd-{self.loss}"
        self._gen = stream_generator(self.seed, self.name)

    def stages(self) -> list[tuple[float, int]]:
        """(ε of the stage, iterations) in order; stages without iterations are left out."""
        if not self.shrink_eps:
            return [(self.eps, self.steps)]
        n1, n2 = (int(frac * self.steps) for _, frac in SHRINK_STAGES[:2])
        its = (n1, n2, self.steps - n1 - n2)
        return [(f * self.eps, n) for (f, _), n in zip(SHRINK_STAGES, its, strict=True) if n > 0]

    def __call__(self, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.eps == 0:
            return images.detach().clone().clamp(0, 1)
        return self.run(images, target).adv

    def run(self, images: torch.Tensor, target: torch.Tensor) -> APGDResult:
        """The attack with its per-image outcome (prediction and pixel accuracy at the returned points)."""
        x = images.detach()
        target = target.to(x.device)
        with isolated(self.model), torch.enable_grad():
            tgt, valid = labelled(target, self.ignore_index)
            with torch.no_grad():
                k = class_logits(self.logits_fn(x[:1])).shape[1]
            weights = pixel_weights(self.loss, tgt, valid, k, self.class_weights).to(x.dtype)
            stages = self.stages()
            adv = x.clone()
            if self.random_start and self.eps > 0:
                adv = random_start(x, stages[0][0], self.norm, self._gen)
            if self.eps == 0:
                stages = [(0.0, 0)]
            for eps, n_iter in stages:
                adv = project(adv, x, eps, self.norm)
                adv, pred, acc = self._stage(x, tgt, valid, weights, adv, eps, n_iter)
        return APGDResult(adv.detach(), pred, acc, int(k))

    def _evaluate(
        self, x: torch.Tensor, tgt: torch.Tensor, valid: torch.Tensor, weights: torch.Tensor, need_grad: bool
    ) -> tuple[torch.Tensor | None, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(gradient of the attacked loss or None, tracked loss (N,), pixel accuracy (N,), prediction)."""
        x = x.detach().requires_grad_(need_grad)
        with torch.set_grad_enabled(need_grad):
            logits = class_logits(self.logits_fn(x))
            pred = fast_argmax(logits.detach(), 1)
            correct = (pred == tgt) & valid
            attacked, tracked = pixel_losses(self.loss, logits, tgt, weights, correct)
            grad = torch.autograd.grad(attacked.sum(), x)[0] if need_grad else None
        n_pix = tgt.shape[-1] * tgt.shape[-2]
        count = valid.flatten(1).sum(1)
        acc = torch.where(count > 0, correct.flatten(1).sum(1) / count.clamp_min(1), 1.0).double()
        return grad, tracked.flatten(1).sum(1) / n_pix, acc, pred

    def _stage(
        self,
        x: torch.Tensor,
        tgt: torch.Tensor,
        valid: torch.Tensor,
        weights: torch.Tensor,
        adv: torch.Tensor,
        eps: float,
        n_iter: int,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One APGD run of `n_iter` iterations at budget `eps` from `adv`: (lowest-accuracy points,
        their predictions, their accuracies)."""
        grad, loss, acc, pred = self._evaluate(adv, tgt, valid, weights, n_iter > 0)
        best_adv, best_pred, best_acc = adv.clone(), pred, acc
        if n_iter == 0 or grad is None:
            return best_adv, best_pred, best_acc
        x_max, grad_max, loss_max = adv.clone(), grad.clone(), loss.clone()
        sched = _Schedule(n_iter, torch.full_like(adv[:, :1, :1, :1], 2 * eps), loss_max)
        history, prev = [loss], adv
        for i in range(n_iter):
            a = MOMENTUM if i > 0 else 1.0
            z = project(adv + sched.step * ascent_direction(grad, self.norm), x, eps, self.norm)
            prev, adv = adv, project(adv + a * (z - adv) + (1 - a) * (adv - prev), x, eps, self.norm)
            g, loss, acc, pred = self._evaluate(adv, tgt, valid, weights, i < n_iter - 1)
            better = acc <= best_acc
            best_adv, best_pred = _where(better, adv, best_adv), _where(better, pred, best_pred)
            best_acc = torch.minimum(acc, best_acc)
            up = loss > loss_max
            x_max, loss_max = _where(up, adv, x_max), torch.where(up, loss, loss_max)
            if g is not None:
                grad, grad_max = g, _where(up, g, grad_max)
            history.append(loss)
            reduce = sched.update(history, loss_max)
            if reduce is not None and bool(reduce.any()):
                adv, grad = _where(reduce, x_max, adv), _where(reduce, grad_max, grad)
            if self.early_stop and bool((best_acc == 0).all()):
                break
        return best_adv, best_pred, best_acc

    def __repr__(self) -> str:
        return (
            f"APGDSegmentation({self.loss}, norm={self.norm}, eps={self.eps:g}, steps={self.steps}, "
            f"shrink_eps={self.shrink_eps}, random_start={self.random_start}, "
            f"ignore_index={self.ignore_index})"
        )
