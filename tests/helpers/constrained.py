"""Helpers of the constrained-model tests: tiny built-in data, a few training steps, ℓ2 PGD."""

from __future__ import annotations

import torch
from torch import nn

from robustbench_lip.data import get_dataset
from robustbench_lip.losses_lip import margin_cross_entropy
from robustbench_lip.models import create_model, mask_logits


def data(name: str, n: int, size: int = 16, split: str = "train"):
    """(images, labels, masks) of a built-in dataset at size×size."""
    ds = get_dataset(name, split, n_train=n, n_test=n, image_size=size, seed=0)
    xs, ys, ms = zip(*[ds[i] for i in range(n)], strict=True)
    return torch.stack(xs), torch.stack([torch.as_tensor(y) for y in ys]), torch.stack(ms)


def trained(arch: str, steps: int = 4, lr: float = 0.05, seed: int = 0) -> nn.Module:
    """A tiny constrained model after a few Adam steps of margin cross-entropy on built-in data."""
    torch.manual_seed(seed)
    model = create_model(arch)
    c = model.config.in_channels
    x, y, m = data("shapes" if c == 3 else "lesions", 32, model.config.input_size[-1])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        if model.config.task == "classification":
            loss = margin_cross_entropy(model(x), y, offset=0.1, temperature=0.1)
        else:
            loss = margin_cross_entropy(mask_logits(model, x), m, offset=0.1, temperature=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def pgd_l2(objective, x: torch.Tensor, eps: torch.Tensor, steps: int = 40, restarts: int = 10, seed: int = 0):
    """Best δ (per sample, ‖δ‖ ≤ eps) maximising objective(x + δ) (N,) over restarts of ℓ2 PGD in ℝ^d
    (no clamping to [0, 1]: the certificates hold on all of ℝ^d). Returns the best objective values."""
    gen = torch.Generator().manual_seed(seed)
    n = x.shape[0]
    shape = (n, *[1] * (x.dim() - 1))
    e = eps.to(x).view(shape)

    def norm(t: torch.Tensor) -> torch.Tensor:
        return t.flatten(1).norm(dim=1).clamp_min(1e-12).view(shape)

    best = torch.full((n,), -float("inf"), dtype=x.dtype)
    for _ in range(restarts):
        d = torch.randn(x.shape, generator=gen, dtype=x.dtype)
        d = d / norm(d) * e * torch.rand(n, generator=gen, dtype=x.dtype).view(shape)
        for _ in range(steps):
            d.requires_grad_(True)
            (g,) = torch.autograd.grad(objective(x + d).sum(), d)
            with torch.no_grad():
                d = d + 2.5 * e / steps * g / norm(g)
                d = d * torch.clamp(e / norm(d), max=1.0)
        with torch.no_grad():
            best = torch.maximum(best, objective(x + d))
    return best
