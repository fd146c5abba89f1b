"""Which 1-Lipschitz layer library: orthogonium (AOC convs + MaxMin) vs deel-torchlip (SpectralConv2d +
GroupSort2), measured on this CPU as the choice for `robustbench_lip.models.constrained` was made.

The same small plain stack for both (width 8: conv 3→w, then 4 stages of a stride-2 2×2 conv (from the
2nd stage) and three 3×3 convs, each followed by the 2-sort activation, widths w·2^i; a 1×1 head to 10
class maps, averaged into the logits), at 16×16, batch 64:
- step_ratio: training step time (SGD, cross-entropy) ÷ mresnet18_w8's, median of interleaved steps;
- upper / lower: the certifier's bound on the class maps from the exported graph (orthogonium: QR
  orthogonalisation, `models.lip_layers.ortho_conv`; deel: its layers as they export, which equals
  `vanilla_model`) and the witnessed lower bound on 8 random images; gap = upper / lower.
deel-torchlip is not a dependency: `pip install deel-torchlip` to include it.
Prints one JSON object. Run: `.venv/bin/python benchmarks/bench_lip_libraries.py`.
"""

from __future__ import annotations

import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_lip.lipschitz.bounds import upper_bound
from robustbench_lip.lipschitz.lower import lower_bounds
from robustbench_lip.models import create_model
from robustbench_lip.models.lip_layers import MaxMin, ortho_conv

SIZE = 16


def _stack(conv, act, w: int = 8, k: int = 10) -> nn.Sequential:
    layers, c = [conv(3, w, 3, 1), act()], w
    for i in range(4):
        co = w * 2**i
        if i > 0:
            layers += [conv(c, co, 2, 2), act()]
        for _ in range(3):
            layers += [conv(co, co, 3, 1), act()]
        c = co
    return nn.Sequential(*layers, conv(c, k, 1, 1))


def orthogonium_net() -> nn.Sequential:
    return _stack(ortho_conv, MaxMin)


def deel_net() -> nn.Sequential:
    from deel.torchlip import GroupSort2, SpectralConv2d

    def conv(ci, co, k, s):
        return SpectralConv2d(ci, co, k, stride=s, padding=0 if k == s else k // 2)

    return _stack(conv, GroupSort2)


class CAM(nn.Module):
    def __init__(self, body: nn.Module) -> None:
        super().__init__()
        self.body = body

    def forward(self, x):
        return self.body(x - 0.5).mean((2, 3))


def _steps(model, x, y, n):
    opt = torch.optim.SGD(model.parameters(), lr=1e-3)
    model.train()
    out = []
    for i in range(n + 1):
        t = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            out.append(time.perf_counter() - t)
    return out


def main() -> None:
    torch.set_num_threads(2)
    torch.manual_seed(0)
    nets = {
        "plain": create_model("mresnet18_w8", image_size=(SIZE, SIZE)),
        "orthogonium": CAM(orthogonium_net()),
    }
    try:
        nets["deel-torchlip"] = CAM(deel_net())
    except ImportError:
        pass
    x, y = torch.rand(64, 3, SIZE, SIZE), torch.randint(0, 10, (64,))
    times: dict[str, list[float]] = {k: [] for k in nets}
    for _ in range(3):
        for k, m in nets.items():
            times[k] += _steps(m, x, y, 3)
    plain = statistics.median(times["plain"])
    out = {}
    for k in [n for n in nets if n != "plain"]:
        body = nets[k].body.eval()
        ub = upper_bound(body, (3, SIZE, SIZE))
        xs = torch.rand(8, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
        low = lower_bounds(body, xs, iters=20, steps=5)
        out[k] = {
            "step_ratio": statistics.median(times[k]) / plain,
            "upper": ub.upper,
            "lower": low.lower,
            "gap": ub.upper / low.lower if low.lower else None,
        }
    json.dump(
        {"libraries": out, "plain_step_s": plain, "image_size": SIZE, "batch": 64}, sys.stdout, indent=2
    )
    print()


if __name__ == "__main__":
    main()
