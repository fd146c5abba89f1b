"""Benchmark of the certifier: conv-bound tightness, full-network bound time, memory, power-iteration cost.

Prints ONE JSON object. Tightness: for every Conv2d of a random mResNet-18 (width 64, 32×32), a set
of random zero-padded convolutions (kernel 1/3/5, stride 1/2, groups 1/4, padding 0/1/2) and a set
of circular / reflect / replicate / strided / dilated / transposed convolutions, the ratio of the
certified bound to the exact operator norm of the actual operator (the conv applied after its
padding, as a function of the unpadded input): dense SVD when the matrix fits, else power
iteration on the operator, converged, with its residual ‖AᵀAv − σ²v‖/σ² reported. Speed: wall time
of `upper_bound` on the whole mResNet-18 (each mode), with a reference (a fixed complex matmul) timed
in the same process; the cost of one power iteration relative to a forward+backward. Memory: the
peak resident set size (VmHWM of a fresh subprocess, minus its VmRSS just before bounding) and time
of bounding three 1×1 convs with 768 channels at 16×16 (`upper_bound` of an nn.Sequential) and one
512-channel 3×3 conv at 32×32 (`conv2d_bound`).

    .venv/bin/python benchmarks/bench_certify.py [--quick]
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import subprocess
import sys
import time
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from robustbench_lip.lipschitz.bounds import conv2d_bound, upper_bound
from robustbench_lip.lipschitz.spectral import spectral_norm
from robustbench_lip.models import create_model

DENSE_LIMIT = 4096


def exact_op_norm(f, in_shape: tuple[int, int, int], iters: int):
    """(σ_max, method, residual) of the linear map f on float64 inputs of in_shape."""
    n = in_shape[0] * in_shape[1] * in_shape[2]
    if n <= DENSE_LIMIT:
        basis = torch.eye(n, dtype=torch.float64).view(n, *in_shape)
        m = f(basis).reshape(n, -1)
        return float(torch.linalg.matrix_norm(m, 2)), "dense-svd", 0.0

    def at(u):
        v = torch.zeros(1, *in_shape, dtype=torch.float64, requires_grad=True)
        (g,) = torch.autograd.grad(f(v), v, u)
        return g

    x = torch.randn(1, *in_shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    v, sig = x / x.norm(), 0.0
    for _ in range(iters):
        s2v = at(f(v))
        new = float(s2v.norm()) ** 0.5
        v = s2v / s2v.norm()
        if abs(new - sig) <= 1e-10 * new:
            sig = new
            break
        sig = new
    s2v = at(f(v))
    rayleigh = float((s2v * v).sum())
    resid = float((s2v - rayleigh * v).norm()) / max(rayleigh, 1e-30)
    return rayleigh**0.5, "power-iteration", resid


def padded_conv(x, w, stride, pad, dilation, groups, pmode):
    """The actual operator: conv2d after padding of width pad in pmode."""
    if pmode == "zeros":
        return F.conv2d(x, w, stride=stride, padding=pad, dilation=dilation, groups=groups)
    return F.conv2d(F.pad(x, (pad,) * 4, mode=pmode), w, stride=stride, dilation=dilation, groups=groups)


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


def _row(source, mode, cfg, b, meth, ex, how, res) -> dict:
    return dict(source=source, mode=mode, **cfg, bound=b, exact=ex, exact_method=how, residual=res,
                ratio=b / ex if ex > 0 else (1.0 if b == 0 else float("inf")), method=meth)


def mresnet_rows(model, quick: bool, iters: int) -> list[dict]:
    rows = []
    convs = conv_inputs(model, (3, 32, 32))
    if quick:  # one conv per (channels, grid) type
        uniq: dict = {}
        for m, s in convs:
            uniq.setdefault((m.in_channels, m.stride, m.kernel_size, s), (m, s))
        convs = list(uniq.values())
    for m, s in convs:
        w = m.weight.detach().double()
        f = partial(F.conv2d, weight=w, stride=m.stride, padding=m.padding, dilation=m.dilation,
                    groups=m.groups)
        ex, how, res = exact_op_norm(f, s, iters)
        cfg = dict(shape=list(s), kernel=m.kernel_size[0], stride=m.stride[0], groups=m.groups,
                   padding=m.padding[0], dilation=1, padding_mode="zeros", transposed=False)
        for mode in ("fast", "tight"):
            b, meth = conv2d_bound(m.weight, s[1:], m.stride, m.padding, m.dilation, m.groups, mode=mode)
            rows.append(_row("mresnet18", mode, cfg, b, meth, ex, how, res))
    return rows


def random_configs(quick: bool) -> list[dict]:
    """The 36 zero-padded configs of the original benchmark per grid, then the other kinds."""
    out = []
    grids = [(8, 8)] if quick else [(4, 4), (16, 16)]
    for k, st, g, p, hw in itertools.product([1, 3, 5], [1, 2], [1, 4], [0, 1, 2], grids):
        if k <= hw[0] + 2 * p:
            out.append(dict(c=8, k=k, s=st, g=g, p=p, d=1, hw=hw, pm="zeros", tr=False))
    extra_grids = [(6, 6), (12, 12)] if quick else [(6, 6), (12, 12), (20, 20)]
    for hw in extra_grids:
        for pm in ("circular", "reflect", "replicate"):
            for k, st, d in [(3, 1, 1), (3, 2, 1), (3, 1, 2), (5, 2, 1)]:
                out.append(dict(c=8, k=k, s=st, g=1, p=(k // 2) * d, d=d, hw=hw, pm=pm, tr=False))
        for k, st, d, p in [(3, 3, 1, 1), (3, 1, 2, 2), (3, 2, 2, 2), (2, 2, 1, 0)]:
            out.append(dict(c=8, k=k, s=st, g=1, p=p, d=d, hw=hw, pm="zeros", tr=False))
        for k, st, p in [(4, 2, 1), (3, 2, 1), (2, 2, 0)]:
            out.append(dict(c=8, k=k, s=st, g=1, p=p, d=1, hw=hw, pm="zeros", tr=True))
    return out


def random_rows(quick: bool, iters: int) -> list[dict]:
    rows = []
    gen = torch.Generator().manual_seed(1)
    for c in random_configs(quick):
        w = torch.randn(c["c"], c["c"] // c["g"], c["k"], c["k"], generator=gen, dtype=torch.float64)
        if c["tr"]:  # conv_transpose2d on an input of size hw: the adjoint conv acts on its output grid
            f = partial(F.conv_transpose2d, weight=w, stride=c["s"], padding=c["p"])
            grid = tuple(f(torch.zeros(1, c["c"], *c["hw"], dtype=torch.float64)).shape[-2:])
        else:
            f = partial(padded_conv, w=w, stride=c["s"], pad=c["p"], dilation=c["d"], groups=c["g"],
                        pmode=c["pm"])
            grid = c["hw"]
        ex, how, res = exact_op_norm(f, (c["c"], *c["hw"]), iters)
        cfg = dict(shape=[c["c"], *c["hw"]], kernel=c["k"], stride=c["s"], groups=c["g"], padding=c["p"],
                   dilation=c["d"], padding_mode=c["pm"], transposed=c["tr"])
        for mode in ("fast", "tight"):
            b, meth = conv2d_bound(w, grid, c["s"], c["p"], c["d"], c["g"], c["pm"], mode=mode)
            rows.append(_row("random", mode, cfg, b, meth, ex, how, res))
    return rows


def memory_case(case: str) -> dict:
    """Bound one memory case in THIS process; peak RSS minus the RSS just before bounding (MB)."""
    torch.manual_seed(0)
    if case == "conv1x1_768":
        net = nn.Sequential(*[nn.Conv2d(768, 768, 1) for _ in range(3)]).eval()

        def run():
            return upper_bound(net, (768, 16, 16)).upper
    else:
        w = torch.randn(512, 512, 3, 3) / 50

        def run():
            return conv2d_bound(w, (32, 32), 1, 1)[0]
    before = _rss_mb()
    t = time.perf_counter()
    value = run()
    return {"case": case, "s": time.perf_counter() - t, "peak_rss_delta_mb": _peak_mb() - before,
            "value": value, "goal_mb": 500, "goal_s": 10}


def _status_mb(field: str) -> float:
    """A memory field of /proc/self/status (VmRSS now, VmHWM the peak since exec) in MB. Not
    ru_maxrss: a child inherits its parent's maximum through fork."""
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _rss_mb() -> float:
    return _status_mb("VmRSS")


def _peak_mb() -> float:
    return _status_mb("VmHWM")


def memory_rows() -> list[dict]:
    out = []
    for case in ("conv1x1_768", "conv3x3_512"):
        cp = subprocess.run([sys.executable, __file__, "--memory-case", case], capture_output=True, text=True)
        out.append(json.loads(cp.stdout) if cp.returncode == 0 else {"case": case, "error": cp.stderr[-300:]})
    return out


def matmul_reference() -> float:
    """Seconds for a fixed float64-complex matmul (the machine's speed now, for reading the timings)."""
    a = torch.randn(4, 512, 512, dtype=torch.complex128, generator=torch.Generator().manual_seed(0))
    return median_time(lambda: a @ a, 5)


def stats(rows: list[dict], mode: str) -> dict:
    r = [row["ratio"] for row in rows if row["mode"] == mode]
    return {"min": min(r), "median": statistics.median(r), "max": max(r), "n": len(r)}


def speed(model, quick: bool) -> dict:
    reps = 1 if quick else 3
    ref = matmul_reference()
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
    return {
        "upper_bound_s": t_fast, "upper_bound_tight_s": t_tight, "upper_bound_goal_s": 2.0,
        "matmul_reference_s": ref, "upper_bound_in_references": t_fast / ref,
        "upper_bound_value": ub.upper, "upper_bound_graph": ub.graph,
        "power_iteration_s": per_iter, "forward_backward_s": t_fb, "power_iteration_ratio": per_iter / t_fb,
    }


class Up(nn.Module):
    def forward(self, z):
        return F.interpolate(z, scale_factor=2, mode="bilinear")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer convs and repetitions")
    ap.add_argument("--memory-case", help=argparse.SUPPRESS)
    args = ap.parse_args()
    torch.set_num_threads(1)
    if args.memory_case:
        json.dump(memory_case(args.memory_case), sys.stdout, default=float)
        return
    torch.manual_seed(0)
    quick = args.quick
    iters = 300 if quick else 3000
    model = create_model("mresnet18").eval()
    rows = mresnet_rows(model, quick, iters) + random_rows(quick, iters)
    fast, tight = stats(rows, "fast"), stats(rows, "tight")
    worst = sorted((row for row in rows if row["mode"] == "fast"), key=lambda row: -row["ratio"])[:6]
    kinds = {}
    pick = {
        **{m: (lambda r, m=m: r["padding_mode"] == m) for m in ("zeros", "circular", "reflect", "replicate")},
        "transposed": lambda r: r["transposed"],
        "strided": lambda r: r["stride"] > 1,
        "dilated": lambda r: r["dilation"] > 1,
    }
    for kind, sel in pick.items():
        rr = [r["ratio"] for r in rows if r["mode"] == "fast" and sel(r)]
        if rr:
            kinds[kind] = {"n": len(rr), "min": min(rr), "median": statistics.median(rr), "max": max(rr)}
    reps = 1 if quick else 3
    upsample = {}
    for n in (64, 256):
        t_up = median_time(lambda n=n: upper_bound(Up(), (3, n, n)), reps)
        upsample[f"{n}x{n}"] = {"s": t_up, "value": upper_bound(Up(), (3, n, n)).upper, "goal_s": 1.0}
    out = {
        "quick": quick,
        "conv_ratio_min": fast["min"], "conv_ratio_median": fast["median"], "conv_ratio_max": fast["max"],
        "conv_ratio_fast": fast, "conv_ratio_tight": tight, "conv_ratio_by_kind_fast": kinds,
        "conv_all_sound": min(fast["min"], tight["min"]) >= 1.0,
        "conv_worst_fast": worst,
        "max_power_residual": max(row["residual"] for row in rows),
        **speed(model, quick),
        "memory": memory_rows(),
        "upsample_bilinear_x2": upsample,
        "threads": torch.get_num_threads(),
    }
    json.dump(out, sys.stdout, default=float)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
