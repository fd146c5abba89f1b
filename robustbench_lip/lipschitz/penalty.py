"""The Lipschitz training penalty of Pesquet, Repetti, Terris & Wiaux (2021).

    penalty = λ · reduce_i max(σ_i², 1 − ε)

σ_i is the spectral norm of the input Jacobian J of the model at point x_i (target "A") or of
2J − I (target "reflection", the firm-non-expansiveness penalty of the paper), reduce is max or
mean over the points, and the points are data points or random convex combinations
x̃ = τ·x + (1 − τ)·x′ of pairs of batch points (τ ~ U(0, 1)).

The penalty is evaluated on the model in eval mode (dropout off, running statistics never
updated, every sample processed independently); training/eval flags are restored afterwards.
BatchNorm (bn="batch", default): each BatchNorm layer normalises with the batch statistics of the
penalty points, computed by one extra forward pass and kept as functions of the parameters but
constants with respect to the input — i.e. σ is that of the deployed (eval-mode) network whose
running statistics equal the current batch statistics, which is what the running averages track.
The gradient then sees that scaling a conv weight is undone by the normalisation. bn="running"
uses the running statistics as constants: measured on shapes_cpu (λ=1) it only shrinks the conv
weights (train-mode BN renormalises them away, the running variance follows), the effective
learning rate grows and training blows up (held-out L(A) 1 → 24 after epoch 3).

Each step runs `iters` power iterations u ← Jᵀ J u / ‖·‖ at the penalty points (no graph),
then takes σ = ‖J u‖ with graph, so that the gradient of σ w.r.t. the parameters flows. u starts
random, or (warm_start) from the previous step's vectors — of other images, which measured no
better than random, hence off by default. Two ways of taking the products:
- "double_backward" (default): y = f(x), g = Jᵀw by a backward pass with create_graph, then
  J u = ∂(g·u)/∂w — one graph per step reused by every product (measured cheaper on the CPU);
- "forward": a forward-mode dual pass (torch.autograd.forward_ad) differentiated in reverse mode.
With iters=5, subbatch=None it is the published reference: a fresh random u and 5 power
iterations on the full batch before the final product.
Sub-batches (the first `subbatch` points of the batch) and applying the penalty only every
`every`-th step (with weight every·λ, so the average weight stays λ) cut the cost further.
Hard points (hard = k > 0): the k points of highest σ seen so far (a buffer carried between steps,
with their power vectors, re-ranked every step) take k of the `subbatch` slots, so that the max over
a small sub-batch tracks the worst points of many batches — as a full-batch max does — at the cost
of a small one. Their σ is re-measured at every step with the current weights.
Defaults (8 points, 4 of them hard, 1 iteration, every step), chosen by benchmarks/bench_penalty.py on
mResNet-18 w16, batch 128: a step ≈1.5× a plain one, held-out σ after 20 steps within ≈5 % of the
reference's; without hard points (16 points) 1.7× and +39 %.
Its settings are `PenaltyConfig` (robustbench_lip.config.penalty, re-exported here).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from functools import partial
from typing import Any

import torch
from torch import nn

from robustbench_lip.config.penalty import PenaltyConfig, default_target
from robustbench_lip.device import eval_mode
from robustbench_lip.lipschitz.jvp import JacobianProducts, sample_norms, unit_samples
from robustbench_lip.lipschitz.spectral import power_iterate

REFERENCE = PenaltyConfig(
    iters=5, subbatch=None, every=1, warm_start=False, method="double_backward", bn="batch", hard=0
)
"""The published recipe: fresh power iteration, 5 iterations, full batch, double backward."""


@dataclass
class PenaltyOutput:
    """value: scalar tensor (differentiable w.r.t. the parameters; weight included, 0 when skipped);
    sigma: (k,) detached σ of the points used (empty when skipped); applied: whether computed."""

    value: torch.Tensor
    sigma: torch.Tensor
    applied: bool


def _bn_layers(model: nn.Module) -> list[nn.modules.batchnorm._BatchNorm]:
    return [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]


def _shape(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    return t.view(1, -1, *([1] * (x.dim() - 2)))


@contextmanager
def batch_stat_bn(model: nn.Module, x: torch.Tensor) -> Iterator[None]:
    """Within the block every BatchNorm layer of `model` is the affine map of eval mode with its
    running statistics replaced by the batch statistics of x (N, ...) at that layer: mean and
    (biased) variance are computed by one forward pass of x.detach() now, differentiable w.r.t. the
    parameters, and are constants w.r.t. the input of later calls. Running statistics, momentum
    counters and train/eval flags are untouched (nothing is written to the buffers)."""
    layers = _bn_layers(model)
    if not layers:
        yield
        return
    stats: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}

    def affine(m: nn.modules.batchnorm._BatchNorm, h: torch.Tensor) -> torch.Tensor:
        mean, var = stats[id(m)]
        scale = torch.rsqrt(var + m.eps)
        if m.weight is not None:
            scale = scale * m.weight
        out = (h - _shape(mean, h)) * _shape(scale, h)
        return out + _shape(m.bias, h) if m.bias is not None else out

    def collect(m: nn.modules.batchnorm._BatchNorm) -> Callable[[torch.Tensor], torch.Tensor]:
        def fwd(h: torch.Tensor) -> torch.Tensor:
            dims = [0, *range(2, h.dim())]
            stats[id(m)] = (h.mean(dims), h.var(dims, unbiased=False))
            return affine(m, h)

        return fwd

    try:
        for m in layers:
            m.forward = collect(m)  # type: ignore[method-assign]
        with eval_mode(model):
            model(x.detach())
        for m in layers:
            m.forward = partial(affine, m)  # type: ignore[method-assign]
        yield
    finally:
        for m in layers:
            m.__dict__.pop("forward", None)


class LipschitzPenalty:
    """Stateful penalty: call it once per training step; its state (warm vectors, RNG, step)
    goes into checkpoints via state_dict()/load_state_dict()."""

    def __init__(self, config: PenaltyConfig, seed: int = 0) -> None:
        self.config = config
        self._gen = torch.Generator().manual_seed(int(seed))
        self._u: torch.Tensor | None = None
        self._hard_x: torch.Tensor | None = None  # (h, ...) hardest points so far
        self._hard_u: torch.Tensor | None = None  # (h, ...) their power vectors
        self.step = 0

    # --- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "u": None if self._u is None else self._u.detach().cpu().clone(),
            "gen": self._gen.get_state(),
            "step": self.step,
            "hard_x": None if self._hard_x is None else self._hard_x.detach().cpu().clone(),
            "hard_u": None if self._hard_u is None else self._hard_u.detach().cpu().clone(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._u = state["u"]
        self._gen.set_state(state["gen"])
        self.step = int(state["step"])
        self._hard_x, self._hard_u = state.get("hard_x"), state.get("hard_u")

    # --- points ------------------------------------------------------------------------------
    def _hard_used(self, x: torch.Tensor) -> int:
        """Hard points used at this step: the buffer, at most min(hard, slots − 1) of it."""
        cfg = self.config
        h = self._hard_x
        if not cfg.hard or h is None or h.shape[1:] != x.shape[1:]:
            return 0
        slots = min(cfg.subbatch, x.shape[0]) if cfg.subbatch else x.shape[0]
        return max(0, min(h.shape[0], cfg.hard, slots - 1))

    def _points(self, x: torch.Tensor, h: int) -> torch.Tensor:
        """The penalty points (k, ...): h hard points first, then the first k − h of x (or interp)."""
        cfg = self.config
        n = x.shape[0]
        k = (n if not cfg.subbatch else min(cfg.subbatch, n)) - h
        pts = x[:k].detach()
        if cfg.points == "interp":
            perm = torch.randperm(n, generator=self._gen)[:k].to(x.device)
            tau = torch.rand(k, generator=self._gen).to(device=x.device, dtype=x.dtype)
            tau = tau.view(-1, *([1] * (x.dim() - 1)))
            pts = tau * pts + (1 - tau) * x.detach()[perm]
        if h:
            pts = torch.cat([self._hard_x[:h].to(pts), pts])  # type: ignore[index]
        return pts

    def _start_vector(self, pts: torch.Tensor, h: int) -> torch.Tensor:
        k = pts.shape[0]
        fresh = torch.randn(pts.shape, generator=self._gen).to(pts)
        if self.config.warm_start and self._u is not None and self._u.shape[1:] == pts.shape[1:]:
            m = min(k - h, self._u.shape[0])
            fresh[h : h + m] = self._u[:m].to(pts)
        if h:
            fresh[:h] = self._hard_u[:h].to(pts)  # type: ignore[index]
        return unit_samples(fresh)

    # --- the penalty -------------------------------------------------------------------------
    def target(self, model: nn.Module) -> str:
        """The configured target; None → the reflection where `model.config` defines it, else A."""
        if self.config.target is not None:
            return self.config.target
        config = getattr(model, "config", None)
        return default_target(bool(getattr(config, "reflection_defined", False)))

    def sigma(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """(k,) differentiable σ at the penalty points of batch x (updates the warm vectors).

        `iters` power iterations u ← JᵀJu/‖·‖ on these points (no graph), then σ = ‖J u‖ with
        graph. At least one iteration matters: ‖J u₀‖ for a random or carried-over u₀ is a poor
        estimate (measured 0.94 vs σ = 22.8 on a trained mResNet), one iteration gives ≈ 95 %.
        """
        cfg = self.config
        h = self._hard_used(x)
        pts = self._points(x, h)
        bn = batch_stat_bn(model, pts) if cfg.bn == "batch" else nullcontext()
        with eval_mode(model), torch.enable_grad(), bn:
            u = self._start_vector(pts, h)
            products = JacobianProducts(model, pts, self.target(model), method=cfg.method)
            u, _, _ = power_iterate(products, u, cfg.iters)
            v = products.jvp(u, create_graph=True)
            sigma = sample_norms(v)
            if cfg.warm_start:
                self._store(u[h:])
            if cfg.hard:
                top = torch.argsort(sigma.detach(), descending=True)[: cfg.hard]
                self._hard_x, self._hard_u = pts[top].detach().clone(), u[top].detach().clone()
        return sigma

    def _store(self, u: torch.Tensor) -> None:
        u = u.detach()
        if self._u is not None and self._u.shape[1:] == u.shape[1:] and self._u.shape[0] > u.shape[0]:
            keep = self._u.clone()
            keep[: u.shape[0]] = u.to(keep)
            u = keep
        self._u = u.clone()

    def __call__(self, model: nn.Module, x: torch.Tensor) -> PenaltyOutput:
        """The penalty for this training step on batch x (N, ...); advances the step counter."""
        cfg = self.config
        step = self.step
        self.step += 1
        zero = torch.zeros((), device=x.device)
        if cfg.lam == 0 or step % cfg.every != 0:
            return PenaltyOutput(value=zero, sigma=torch.empty(0), applied=False)
        with torch.autocast(device_type=x.device.type, enabled=False):
            xf = x if x.dtype in (torch.float32, torch.float64) else x.float()
            sigma = self.sigma(model, xf)
            hinge = sigma.pow(2).clamp_min(1.0 - cfg.eps)
            red = hinge.max() if cfg.reduce == "max" else hinge.mean()
            value = (cfg.lam * cfg.every) * red
        return PenaltyOutput(value=value, sigma=sigma.detach(), applied=True)
