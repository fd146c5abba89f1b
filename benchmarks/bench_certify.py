"""Benchmark of the certifier: conv-bound tightness, full-network bound time, power-iteration cost.

Prints ONE JSON object. Tightness: for every Conv2d of a random mResNet-18 (width 64, 32×32) and a
set of random convolutions (kernel 1/3/5, stride 1/2, groups 1/4, padding 0/1/2), the ratio of the
certified bound to the exact operator norm of the zero-padded convolution (dense SVD when the
matrix fits, else power iteration on the actual operator, converged, with its residual
‖AᵀAv − σ²v‖/σ² reported). Speed: wall time of `upper_bound` on the whole mResNet-18 (each mode),
and the cost of one power iteration (jacobian.spectral_norm) relative to one forward+backward of
the same batch (medians of several runs, same process).

    .venv/bin/python benchmarks/bench_certify.py [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_lip.lipschitz.bounds import conv2d_bound, upper_bound
from robustbench_lip.lipschitz.spectral import spectral_norm
from robustbench_lip.models import create_model

DENSE_LIMIT = 4096


def exact_conv_norm(conv_args: dict, w: torch.Tensor, in_shape: tuple[int, int, int], iters: int):
    """(σ_max, method, residual) of x ↦ conv2d(x, w, **conv_args) on inputs of in_shape."""
    w = w.detach().double()
    n = in_shape[0] * in_shape[1] * in_shape[2]
    if n <= DENSE_LIMIT:
        basis = torch.eye(n, dtype=torch.float64).view(n, *in_shape)
        m = F.conv2d(basis, w, **conv_args).reshape(n, -1)
        return float(torch.linalg.matrix_norm(m, 2)), "dense-svd", 0.0
    x = torch.randn(1, *in_shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))

    def a(v):
        return F.conv2d(v, w, **conv_args)

    def at(u):
        v = torch.zeros(1, *in_shape, dtype=torch.float64, requires_grad=True)
        (g,) = torch.autograd.grad(a(v), v, u)
        return g

    v = x / x.norm()
    sig = 0.0
    for _ in range(iters):
        u = a(v)
        s2v = at(u)
        new = float(s2v.norm()) ** 0.5
        v = s2v / s2v.norm()
        if abs(new - sig) <= 1e-10 * new:
            sig = new
            break
        sig = new
    s2v = at(a(v))
    rayleigh = float((s2v * v).sum())
    resid = float((s2v - rayleigh * v).norm()) / max(rayleigh, 1e-30)
    return rayleigh**0.5, "power-iteration", resid


def conv_inputs(model: nn.Module, shape) -> list[tuple[nn.Conv2d, tuple[int, int, int]]]:
    seen: list[tuple[nn.Conv2d, tuple[int, int, int]]] = []
    hooks = [
        m.register_forward_pre_hook(lambda mod, inp: seen.append((mod, tuple(inp[0].shape[1:]))))
        for m in model.modules()
        if isinstance(m, nn.Conv2d)
    ]
    with torch.no_grad():
        model(torch.rand(1, *shape))
    for h in hooks:
        h.remove()
    return seen


def median_time(fn, reps: int) -> float:
    ts = []
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer convs and repetitions")
    args = ap.parse_args()
    torch.manual_seed(0)
    quick = args.quick
    iters = 300 if quick else 3000
    rows = []
    model = create_model("mresnet18").eval()
    convs = conv_inputs(model, (3, 32, 32))
    if quick:  # one conv per (channels, grid) type
        uniq: dict = {}
        for m, s in convs:
            uniq.setdefault((m.in_channels, m.stride, m.kernel_size, s), (m, s))
        convs = list(uniq.values())
    for m, s in convs:
        cargs = dict(stride=m.stride, padding=m.padding, dilation=m.dilation, groups=m.groups)
        ex, how, res = exact_conv_norm(cargs, m.weight, s, iters)
        for mode in ("fast", "tight"):
            b, meth = conv2d_bound(m.weight, s[1:], m.stride, m.padding, m.dilation, m.groups, mode=mode)
            rows.append(
                dict(
                    source="mresnet18",
                    mode=mode,
                    shape=list(s),
                    kernel=m.kernel_size[0],
                    stride=m.stride[0],
                    groups=m.groups,
                    padding=m.padding[0],
                    bound=b,
                    exact=ex,
                    exact_method=how,
                    residual=res,
                    ratio=b / ex,
                    method=meth,
                )
            )
    gen = torch.Generator().manual_seed(1)
    grids = [(8, 8)] if quick else [(4, 4), (16, 16)]
    for k, st, g, p, hw in itertools.product([1, 3, 5], [1, 2], [1, 4], [0, 1, 2], grids):
        if k > hw[0] + 2 * p:  # no valid output: the kernel is larger than the padded input
            continue
        c = 8
        w = torch.randn(c, c // g, k, k, generator=gen)
        cargs = dict(stride=st, padding=p, groups=g)
        ex, how, res = exact_conv_norm(cargs, w, (c, *hw), iters)
        for mode in ("fast", "tight"):
            b, meth = conv2d_bound(w, hw, st, p, 1, g, mode=mode)
            rows.append(
                dict(
                    source="random",
                    mode=mode,
                    shape=[c, *hw],
                    kernel=k,
                    stride=st,
                    groups=g,
                    padding=p,
                    bound=b,
                    exact=ex,
                    exact_method=how,
                    residual=res,
                    ratio=b / ex,
                    method=meth,
                )
            )

    def stats(mode: str) -> dict:
        r = [row["ratio"] for row in rows if row["mode"] == mode]
        return {"min": min(r), "median": statistics.median(r), "max": max(r), "n": len(r)}

    fast, tight = stats("fast"), stats("tight")
    worst = sorted((row for row in rows if row["mode"] == "tight"), key=lambda row: -row["ratio"])[:5]

    reps = 1 if quick else 3
    t_fast = median_time(lambda: upper_bound(model, (3, 32, 32), mode="fast"), reps)
    t_tight = median_time(lambda: upper_bound(model, (3, 32, 32), mode="tight"), reps)
    ub = upper_bound(model, (3, 32, 32), mode="fast")

    x = torch.rand(8 if quick else 32, 3, 32, 32)

    def fwd_bwd():
        xr = x.clone().requires_grad_(True)
        model(xr).sum().backward()

    k = 3 if quick else 6
    t_fb = median_time(fwd_bwd, reps + 2)
    t_k = median_time(lambda: spectral_norm(model, x, iters=k + 1, tol=0.0), reps + 1)
    t_1 = median_time(lambda: spectral_norm(model, x, iters=1, tol=0.0), reps + 1)
    per_iter = (t_k - t_1) / k
    class Up(nn.Module):
        def forward(self, z):
            return F.interpolate(z, scale_factor=2, mode="bilinear")

    upsample = {}
    for n in (64, 256):
        t_up = median_time(lambda n=n: upper_bound(Up(), (3, n, n)), reps)
        upsample[f"{n}x{n}"] = {"s": t_up, "value": upper_bound(Up(), (3, n, n)).upper, "goal_s": 1.0}
    out = {
        "quick": quick,
        "upsample_bilinear_x2": upsample,
        "conv_ratio_min": tight["min"],
        "conv_ratio_median": tight["median"],
        "conv_ratio_max": tight["max"],
        "conv_ratio_fast": fast,
        "conv_ratio_tight": tight,
        "conv_all_sound": min(fast["min"], tight["min"]) >= 1.0,
        "conv_worst_tight": worst,
        "max_power_residual": max(row["residual"] for row in rows),
        "upper_bound_s": t_fast,
        "upper_bound_tight_s": t_tight,
        "upper_bound_value": ub.upper,
        "upper_bound_graph": ub.graph,
        "power_iteration_s": per_iter,
        "forward_backward_s": t_fb,
        "power_iteration_ratio": per_iter / t_fb,
        "threads": torch.get_num_threads(),
    }
    json.dump(out, sys.stdout, default=float)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
