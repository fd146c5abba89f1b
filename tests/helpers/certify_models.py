"""Small models for the certify-pipeline tests (heads the rule must or must not recognise, user
reflections A = (x + N(x))/2, rounding traps)."""

from __future__ import annotations

import torch
from torch import nn

from tests.helpers.oracle import linear_norm


def scaled_conv(c_in: int, c_out: int, norm: float, shape: tuple[int, ...], seed: int) -> nn.Conv2d:
    """A 3×3 zero-padded convolution whose exact operator norm at `shape` is `norm` (bias 0)."""
    g = torch.Generator().manual_seed(seed)
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False).double()
    with torch.no_grad():
        conv.weight.copy_(torch.randn(conv.weight.shape, generator=g, dtype=torch.float64))
        conv.weight.mul_(norm / linear_norm(conv, shape))
    return conv.float()


class ConvReluConv(nn.Module):
    """N(x) = c2(relu(c1(x) + b)) with each convolution at a chosen exact norm."""

    def __init__(self, c: int, hidden: int, norms: tuple[float, float], shape, bias: float = 0.0) -> None:
        super().__init__()
        self.c1 = scaled_conv(c, hidden, norms[0], shape, 11)
        self.c2 = scaled_conv(hidden, c, norms[1], (hidden, *shape[1:]), 12)
        self.bias = bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c2(torch.relu(self.c1(x) + self.bias))


class HalfSum(nn.Module):
    """A = (x + N(x))/2 in one of four spellings."""

    def __init__(self, net: nn.Module, spelling: int) -> None:
        super().__init__()
        self.net, self.spelling = net, spelling

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.spelling == 0:
            return 0.5 * (x + self.net(x))
        if self.spelling == 1:
            return (x + self.net(x)) / 2
        if self.spelling == 3:
            return x / 2 + self.net(x) / 2
        return torch.add(x, self.net(x), alpha=1).mul(0.5)


class SharedRowHead(nn.Module):
    """Logits (N, K) from ONE row applied to K per-class feature vectors: (N·K, F) → (N·K, 1) →
    (N, K). The Linear's single row is not the classes: the head rule must not apply."""

    def __init__(self, k: int = 3, hw: int = 4) -> None:
        super().__init__()
        self.k = k
        self.conv = nn.Conv2d(1, k, 3, padding=1)
        self.row = nn.Linear(hw * hw, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = torch.relu(self.conv(x))  # (N, K, H, W)
        return self.row(f.reshape(-1, f.shape[2] * f.shape[3])).view(x.shape[0], self.k)


class PerPositionHead(nn.Module):
    """A Linear over channels at every position, flattened: (N, H·W·K) 'logits'."""

    def __init__(self, c: int = 2, k: int = 3) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, c, 3, padding=1)
        self.lin = nn.Linear(c, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = torch.relu(self.conv(x)).permute(0, 2, 3, 1)
        return self.lin(f.reshape(-1, f.shape[-1])).reshape(x.shape[0], -1)


class PlainHead(nn.Module):
    """conv → relu → flatten → Linear(K rows): the head rule applies."""

    def __init__(self, k: int = 3, hw: int = 4) -> None:
        super().__init__()
        self.conv = nn.Conv2d(1, 2, 3, padding=1)
        self.lin = nn.Linear(2 * hw * hw, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.lin(torch.relu(self.conv(x)).flatten(1))


class RoundingTrap(nn.Module):
    """(x + c) − c with c = 3·2^51: x over the reals (constant 1); float64 rounds it to integers."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = 3.0 * 2.0**51
        return (x + c) - c


class SampleMixingHead(nn.Module):
    """A K-row Linear on features that add the reversed batch: φ_i depends on every sample."""

    def __init__(self, k: int = 3, hw: int = 4) -> None:
        super().__init__()
        self.lin = nn.Linear(hw * hw, k)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f = x.flatten(1)
        return self.lin(f + 0.5 * f.flip(0))
