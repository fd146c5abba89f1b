"""Cost and effect of the Lipschitz penalty: plain step vs reference penalty vs the default penalty.

mResNet-18 width 16 on `shapes` 32×32, batch 128, one process. From the same initial weights and
the same batches, trains S steps (AdamW) three ways — plain (λ = 0), the reference penalty (fresh
power iteration, 5 iterations, full batch, double backward, as in the published code) and the
default penalty (PenaltyConfig defaults: 1 iteration on an 8-point sub-batch, 4 of whose slots
hold the hardest points seen so far) — after a shared plain warm-up (so that σ ≫ 1 and the
hinge λ·max(σ², 1) is active).
The variants' steps are interleaved (rotating order) so that machine load hits them alike; the
median step time drops each variant's first step. Then σ of A on 64 held-out points (power
iteration, 50 iterations, eval mode); the max over the points is reported.
The whole comparison is repeated for --seeds seeds (initial weights, batch order, penalty stream;
default 3): step times and σ are medians over the seeds, and each σ also comes with its min, max
and per-seed values (`sigma_spread`), since one seed's σ does not carry from machine to machine.

Prints one JSON object: plain_step_s, reference_step_s, default_step_s, overhead_ratio
(default / plain), reference_ratio (reference / plain), sigma_start, sigma_plain, sigma_reference,
sigma_default (medians over seeds), sigma_spread {variant: {median, min, max, per_seed}},
sigma_rel_diff (|median default − median reference| / median reference), goal_met, settings.
Run: `.venv/bin/python benchmarks/bench_penalty.py [--quick] [--steps S] [--seeds N] [--lam L] [--extra]`.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
from dataclasses import replace

import torch

from robustbench_lip.data import get_dataset, make_loader
from robustbench_lip.lipschitz.penalty import REFERENCE, LipschitzPenalty, PenaltyConfig
from robustbench_lip.models import create_model_for
from robustbench_lip.training import measure_sigma, task_loss


class Variant:
    """One way of training: its own copy of the model, optimizer and penalty; step times."""

    def __init__(self, model, pen_cfg, lr, seed=0):
        self.model = copy.deepcopy(model).train()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=lr, weight_decay=0.0)
        self.pen = LipschitzPenalty(pen_cfg, seed=seed) if pen_cfg is not None else None
        self.times: list[float] = []

    def step(self, x, y):
        t = time.perf_counter()
        loss = task_loss(self.model, x, y, None, False)
        if self.pen is not None:
            loss = loss + self.pen(self.model, x).value
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.times.append(time.perf_counter() - t)

    def result(self, held_out):
        sigma = measure_sigma(self.model, held_out, "A", iters=50, seed=1)
        times = self.times[1:] if len(self.times) > 2 else self.times
        return statistics.median(times), float(sigma.max())


def run_once(args: argparse.Namespace, steps: int, seed: int) -> dict:
    """One comparison from seed `seed` (initial weights, batch order, penalty stream): {variant: (median
    step s, σ after the steps)} plus "sigma_start" (σ after the plain warm-up)."""
    torch.manual_seed(seed)
    n_train = (steps + args.warmup_steps) * args.batch_size
    train = get_dataset("shapes", "train", n_train=n_train, n_test=64)
    test = get_dataset("shapes", "test", n_train=n_train, n_test=64)
    model = create_model_for(args.width_model, train.info)
    loader = make_loader(train, args.batch_size, shuffle=True, seed=seed, drop_last=True)
    batches = [(x, y) for x, y, _ in loader]
    held_out = test.tensors()[0]
    base = PenaltyConfig(lam=args.lam, target="A", eps=args.reg_eps)
    ref_cfg = replace(REFERENCE, lam=args.lam, target="A", eps=args.reg_eps)
    warm = Variant(model, None, args.lr, seed)  # plain warm-up so that σ ≫ 1 and the penalty is active
    for x, y in batches[: args.warmup_steps]:
        warm.step(x, y)
    sigma_start = float(measure_sigma(warm.model, held_out, "A", iters=50, seed=1).max())
    cfgs = {"plain": None, "reference": ref_cfg, "default": base}
    if args.extra:
        cfgs.update(_extra_variants(base))
    if args.extra and args.only:
        keep = set(args.only.split(",")) | set(MAIN)
        cfgs = {k: c for k, c in cfgs.items() if k in keep}
    variants = {k: Variant(warm.model, c, args.lr, seed) for k, c in cfgs.items()}
    names = list(variants)
    for i, (x, y) in enumerate(batches[args.warmup_steps :]):
        for k in names[i % len(names) :] + names[: i % len(names)]:  # interleaved, rotating order
            variants[k].step(x, y)
    res: dict = {k: v.result(held_out) for k, v in variants.items()}
    res["sigma_start"] = sigma_start
    return res


MAIN = ("plain", "reference", "default")


def _extra_variants(base: PenaltyConfig) -> dict:
    return {
        "every2": replace(base, every=2),
        "subbatch32": replace(base, subbatch=32),
        "forward_mode": replace(base, method="forward"),
        "interp": replace(base, points="interp"),
        "hard8": replace(base, hard=8),
        "hard8_every2": replace(base, hard=8, every=2),
        "hard8_sub32_every2": replace(base, hard=8, subbatch=32, every=2),
        "hard4_sub8": replace(base, hard=4, subbatch=8),
        "hard6_sub8": replace(base, hard=6, subbatch=8),
        "hard8_sub12": replace(base, hard=8, subbatch=12),
    }


def _spread(values: list[float]) -> dict:
    """median, min, max and the per-seed values of one quantity."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "per_seed": values}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="6 steps instead of 20 (after the warm-up)")
    ap.add_argument("--warmup-steps", type=int, default=None, help="plain steps first (default 30, quick 15)")
    ap.add_argument("--steps", type=int, default=None)
    ap.add_argument("--seeds", type=int, default=3, help="independent repetitions (seeds 0..N-1), >= 1")
    ap.add_argument("--lam", type=float, default=0.01)
    ap.add_argument("--reg-eps", type=float, default=0.0)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--batch-size", type=int, default=128)
    ap.add_argument("--width-model", default="mresnet18_w16")
    ap.add_argument("--extra", action="store_true", help="also time other cheap variants")
    ap.add_argument("--only", default="", help="with --extra: comma-separated extra variants to run")
    args = ap.parse_args()
    steps = args.steps or (6 if args.quick else 20)
    args.warmup_steps = args.warmup_steps if args.warmup_steps is not None else (15 if args.quick else 30)
    t0 = time.perf_counter()
    runs = []
    for seed in range(max(1, args.seeds)):
        runs.append(run_once(args, steps, seed))
        print(f"seed {seed} done after {time.perf_counter() - t0:.0f} s", file=sys.stderr, flush=True)
    names = [k for k in runs[0] if k != "sigma_start"]
    step_s = {k: statistics.median(r[k][0] for r in runs) for k in names}
    sigma = {k: _spread([r[k][1] for r in runs]) for k in names}
    rel = [abs(r["default"][1] - r["reference"][1]) / r["reference"][1] for r in runs]
    plain_t, ref_t, def_t = step_s["plain"], step_s["reference"], step_s["default"]
    ref_s, def_s = sigma["reference"]["median"], sigma["default"]["median"]
    out = {
        "plain_step_s": plain_t,
        "reference_step_s": ref_t,
        "default_step_s": def_t,
        "overhead_ratio": def_t / plain_t,
        "reference_ratio": ref_t / plain_t,
        "sigma_start": _spread([r["sigma_start"] for r in runs]),
        "sigma_plain": sigma["plain"]["median"],
        "sigma_reference": ref_s,
        "sigma_default": def_s,
        "sigma_spread": {k: sigma[k] for k in MAIN},
        "sigma_rel_diff": abs(def_s - ref_s) / ref_s,
        "sigma_rel_diff_per_seed": rel,
        "goal_met": bool(def_t / plain_t <= 1.5 and abs(def_s - ref_s) / ref_s <= 0.10),
    }
    out["variants"] = {
        k: {"step_s": step_s[k], "ratio": step_s[k] / plain_t, "sigma": sigma[k]}
        for k in names
        if k not in MAIN
    }
    out["settings"] = {
        "model": args.width_model,
        "data": "shapes 32x32",
        "batch_size": args.batch_size,
        "steps": steps,
        "seeds": list(range(max(1, args.seeds))),
        "lam": args.lam,
        "lr": args.lr,
        "reg_eps": args.reg_eps,
        "warmup_steps": args.warmup_steps,
        "default": PenaltyConfig(lam=args.lam, target="A", eps=args.reg_eps).to_dict(),
        "reference": replace(REFERENCE, lam=args.lam, target="A", eps=args.reg_eps).to_dict(),
        "threads": torch.get_num_threads(),
        "wall_s": time.perf_counter() - t0,
    }
    json.dump(out, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
