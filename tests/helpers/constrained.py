"""Helpers of the constrained-model tests: tiny built-in data, a few training steps, ℓ2 PGD."""

from __future__ import annotations

import torch
from torch import nn

from robustbench_lip.attacks.l2_search import pgd_l2  # noqa: F401  (the tests import it from here)
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
