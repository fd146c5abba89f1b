"""Tightness of the certifier on 1-Lipschitz networks built from the field's blocks, trained briefly.

Four nets, each 1-Lipschitz by construction, at 16×16 (input 3 channels, 10 classes): an SLL net of
our own (PixelUnshuffle, an AOL conv, MaxMin, three SLL steps x − 2·Wᵀ·T·relu(W·x + b), an orthogonal
head), an AOL net (AOL convs + MaxMin), orthogonium's default layers (AdaptiveOrthoConv2d with
circular padding, MaxMin, OrthoLinear) and deel-torchlip's (SpectralConv2d, GroupSort2,
ScaledL2NormPool2d, SpectralLinear). Each is trained for a few SGD steps on random images (weights
off their initialisation), then: certified bound ÷ construction constant (1), a dense float64
Jacobian norm at one point (a lower bound on the truth), and the bound's wall time.

Prints one JSON object. Run: `.venv/bin/python benchmarks/bench_block_patterns.py`.
"""

from __future__ import annotations

import json
import time
import warnings

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_lip.lipschitz.bounds import upper_bound
from robustbench_lip.lipschitz.bounds.graph import fixed_weights_copy

SIZE = 16


class AOLConv(nn.Module):
    """conv(x·d, W) with d_j = (Σ_k |WᵀW|_jk over shifts)^(-1/2): ‖W·diag(d)‖ ≤ 1 (AOL)."""

    def __init__(self, ci: int, co: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(co, ci, 3, 3) * 0.3)

    def forward(self, x):
        wt = self.w.transpose(0, 1)
        d = F.conv2d(wt, wt, padding=2).abs().sum(dim=(1, 2, 3)).rsqrt()
        return F.conv2d(x * d[None, :, None, None], self.w, padding=1)


class SLL(nn.Module):
    """x − 2·convT(t·relu(conv(x, W, b)), W), t_i = 1 / Σ_j |W Wᵀ|_ij over shifts (SLL, q = 1)."""

    def __init__(self, c: int, hidden: int) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.randn(hidden, c, 3, 3) * 0.3)
        self.b = nn.Parameter(torch.zeros(hidden))

    def forward(self, x):
        t = 1.0 / F.conv2d(self.w, self.w, padding=2).abs().sum(dim=(1, 2, 3))
        u = t[None, :, None, None] * F.relu(F.conv2d(x, self.w, self.b, padding=1))
        return x - 2.0 * F.conv_transpose2d(u, self.w, padding=1)


def _nets() -> dict[str, nn.Module]:
    from orthogonium.layers import AdaptiveOrthoConv2d, MaxMin, OrthoLinear

    out = {
        "sll": nn.Sequential(
            nn.PixelUnshuffle(2),
            AOLConv(12, 16),
            MaxMin(),
            SLL(16, 32),
            SLL(16, 32),
            SLL(16, 32),
            nn.Flatten(),
            OrthoLinear(16 * 64, 10),
        ),
        "aol": nn.Sequential(
            AOLConv(3, 16),
            MaxMin(),
            AOLConv(16, 16),
            MaxMin(),
            nn.PixelUnshuffle(2),
            AOLConv(64, 16),
            MaxMin(),
            nn.Flatten(),
            OrthoLinear(16 * 64, 10),
        ),
        "orthogonium": nn.Sequential(
            AdaptiveOrthoConv2d(3, 16, 3),
            MaxMin(),
            AdaptiveOrthoConv2d(16, 32, 2, stride=2, padding=0),
            MaxMin(),
            AdaptiveOrthoConv2d(32, 32, 3),
            MaxMin(),
            nn.Flatten(),
            OrthoLinear(32 * 64, 10),
        ),
    }
    try:
        import deel.torchlip as tl

        out["deel"] = tl.Sequential(
            tl.SpectralConv2d(3, 16, 3, padding=1),
            tl.GroupSort2(),
            tl.ScaledL2NormPool2d(2),
            tl.SpectralConv2d(16, 16, 3, padding=1),
            tl.GroupSort2(),
            nn.Flatten(),
            tl.SpectralLinear(16 * 64, 10),
        )
    except ImportError:
        pass
    return out


def _train(model: nn.Module, steps: int = 15) -> None:
    g = torch.Generator().manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), lr=0.05)
    model.train()
    for _ in range(steps):
        x = torch.rand(16, 3, SIZE, SIZE, generator=g)
        y = torch.randint(0, 10, (16,), generator=g)
        opt.zero_grad()
        F.cross_entropy(model(x) * 10, y).backward()
        opt.step()
    model.eval()


def _jacobian_norm(model: nn.Module) -> float:
    m = fixed_weights_copy(model).double()
    x = torch.randn(1, 3, SIZE, SIZE, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    j = torch.autograd.functional.jacobian(lambda t: m(t.view_as(x)).flatten(), x.flatten())
    return float(torch.linalg.matrix_norm(j, 2))


def main() -> None:
    torch.manual_seed(0)
    torch.set_num_threads(1)
    warnings.filterwarnings("ignore")
    res = {}
    for name, net in _nets().items():
        _train(net)
        t0 = time.perf_counter()
        ub = upper_bound(net, (3, SIZE, SIZE))
        secs = time.perf_counter() - t0
        res[name] = {
            "certified_over_construction": ub.upper,
            "jacobian_norm_at_a_point": _jacobian_norm(net),
            "bound_seconds": round(secs, 3),
            "problems": ub.reasons,
        }
    print(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
