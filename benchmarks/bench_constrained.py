"""Certified-by-construction models on this CPU: cost, tightness of the certificate, certified accuracy.

For lipresnet18_w8 (vs mresnet18_w8, `shapes`) and unet_lip / unet_fne at base width 8 (vs unet_i2i at
base width 8, `lesions`), all 32×32, one process:
1. training step time ÷ the plain model's (same width, batch 64), median over interleaved steps (first
   dropped);
2. a short training (Adam, batch 32, margin cross-entropy: `robustbench_lip.losses_lip`, the zoo specs'
   learning rates and temperatures) of the constrained model, 3 epochs on 2000 images;
3. certified U(A) (and U(R) for unet_fne) ÷ the witnessed lower bound on test points (the gap);
4. certified accuracy at ℓ2 ε ∈ {36, 72, 108, 255}/255: classifier from the last layer's row
   differences (`lipschitz.margins`) and, for comparison, from margin/(√2·U(A)); CAM masks and U-Net
   masks: certified pixel accuracy (radius > ε and correct; `lipschitz.certified_masks`).

Prints one JSON object per model under "models", plus settings. Targets: gap ≤ 1.5, step ratio ≤ 3.
Run: `.venv/bin/python benchmarks/bench_constrained.py [--quick]` (≈ 5 min on a quiet 2-core CPU).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import torch

from robustbench_lip.data import dataset_info, get_dataset, make_loader
from robustbench_lip.lipschitz.bounds import upper_bound
from robustbench_lip.lipschitz.certified_masks import cam_pixel_radii, i2i_pixel_radii
from robustbench_lip.lipschitz.lower import lower_bounds
from robustbench_lip.lipschitz.margins import head_radii, linear_head, margin_radii
from robustbench_lip.losses_lip import margin_cross_entropy
from robustbench_lip.models import create_model_for, mask_logits
from robustbench_lip.training.losses import task_loss

EPS = {"36/255": 36 / 255, "72/255": 72 / 255, "108/255": 108 / 255, "255/255": 1.0}
#: (constrained, plain, dataset, options of both, training: the zoo specs' settings — zoo/shapes_lip_cpu.toml,
#: zoo/lesions_fne_cpu.toml; the U-Nets' cross-entropy on 100·A is the margin loss at t = 0.01, u = 0)
PAIRS = [
    ("lipresnet18_w8", "mresnet18_w8", "shapes", {}, {"offset": 0.0, "temperature": 0.0125, "lr": 3e-3}),
    ("unet_lip", "unet_i2i", "lesions", {"base_width": 8}, {"offset": 0.0, "temperature": 0.01, "lr": 1e-2}),
    ("unet_fne", "unet_i2i", "lesions", {"base_width": 8}, {"offset": 0.0, "temperature": 0.01, "lr": 1e-2}),
]
TRAIN_BATCH = 32


def _loss(model, x, y, m, offset, temperature):
    z = model(x) if model.config.task == "classification" else mask_logits(model, x)
    t = y if model.config.task == "classification" else m
    return margin_cross_entropy(z, t, offset=offset, temperature=temperature)


def step_ratio(lip, plain, x, y, m, n_steps: int) -> tuple[float, float]:
    """(median constrained step s, median plain step s), interleaved; first steps dropped."""
    opts = {k: torch.optim.Adam(v.parameters(), lr=1e-3) for k, v in (("lip", lip), ("plain", plain))}
    times: dict[str, list[float]] = {"lip": [], "plain": []}
    for i in range(n_steps + 1):
        for key, model in (("lip", lip), ("plain", plain)) if i % 2 else (("plain", plain), ("lip", lip)):
            model.train()
            t = time.perf_counter()
            loss = _loss(model, x, y, m, 0.1, 0.1) if key == "lip" else task_loss(model, x, y, m, False)
            opts[key].zero_grad()
            loss.backward()
            opts[key].step()
            if i:
                times[key].append(time.perf_counter() - t)
    return statistics.median(times["lip"]), statistics.median(times["plain"])


def train(model, ds, epochs: int, offset: float, temperature: float, lr: float) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    t = time.perf_counter()
    for epoch in range(epochs):
        for x, y, m in make_loader(ds, TRAIN_BATCH, shuffle=True, seed=epoch, drop_last=True):
            loss = _loss(model, x, y, m, offset, temperature)
            opt.zero_grad()
            loss.backward()
            opt.step()
    return time.perf_counter() - t


def _stack(ds, n: int):
    xs, ys, ms = zip(*[ds[i] for i in range(n)], strict=True)
    return torch.stack(xs), torch.stack([torch.as_tensor(v) for v in ys]), torch.stack(ms)


def evaluate_classifier(model, x, y, m) -> dict:
    shape = model.config.input_size
    head = linear_head(model, shape)
    with torch.no_grad():
        z = model(x)
    correct = z.argmax(1) == y
    r_head = head_radii(z, head)
    r_sqrt2 = margin_radii(z, head.upper)
    labels, r_pix = cam_pixel_radii(model, x[:64])
    ok = labels == m[:64]
    return {
        "upper": head.upper,
        "upper_features_after_mean": head.lip_features,
        "head_structure": head.structure,
        "clean_accuracy": float(correct.float().mean()),
        "certified_accuracy_head": {
            k: float((correct & (r_head > e)).float().mean()) for k, e in EPS.items()
        },
        "certified_accuracy_sqrt2": {
            k: float((correct & (r_sqrt2 > e)).float().mean()) for k, e in EPS.items()
        },
        "cam_clean_pixel_accuracy": float(ok.float().mean()),
        "cam_certified_pixel_accuracy": {k: float((ok & (r_pix > e)).float().mean()) for k, e in EPS.items()},
    }


def evaluate_i2i(model, x, m) -> dict:
    ub = upper_bound(model, model.config.input_size)
    with torch.no_grad():
        out = model(x)
    pred = (out[:, 0] > 0).long()
    r = i2i_pixel_radii(out, ub.upper)
    ok = pred == m
    return {
        "upper": ub.upper,
        "reflection_upper": ub.reflection,
        "fne_certified": ub.reflection is not None and ub.reflection <= 1,
        "clean_pixel_accuracy": float(ok.float().mean()),
        "certified_pixel_accuracy": {k: float((ok & (r > e)).float().mean()) for k, e in EPS.items()},
    }


def run_pair(lip_name, plain_name, data, opts, train_opts, quick: bool) -> dict:
    size = 32
    n_train, n_test = (512, 128) if quick else (2000, 500)
    info = dataset_info(data, image_size=size, n_train=n_train, n_test=n_test)
    train_ds = get_dataset(data, "train", image_size=size, n_train=n_train, n_test=n_test)
    test_ds = get_dataset(data, "test", image_size=size, n_train=n_train, n_test=n_test)
    torch.manual_seed(0)
    lip = create_model_for(lip_name, info, **opts)
    plain = create_model_for(plain_name, info, **opts)
    x, y, m = _stack(train_ds, 64)
    t_lip, t_plain = step_ratio(lip, plain, x, y, m, 3 if quick else 6)
    train_s = train(lip, train_ds, 1 if quick else 3, **train_opts)
    lip.eval()
    xt, yt, mt = _stack(test_ds, n_test)
    res = {"step_s": t_lip, "plain_step_s": t_plain, "step_ratio": t_lip / t_plain, "train_s": train_s}
    if lip.config.task == "classification":
        res |= evaluate_classifier(lip, xt, yt, mt)
    else:
        res |= evaluate_i2i(lip, xt, mt)
    low = lower_bounds(lip, xt[:16], iters=20, steps=5)
    res["lower"] = low.lower
    res["gap"] = res["upper"] / low.lower if low.lower else None
    if lip.config.task == "image2image" and res["reflection_upper"] is not None:
        low_r = lower_bounds(lip, xt[:16], "reflection", iters=20, steps=5)
        res["reflection_lower"] = low_r.lower
        res["reflection_gap"] = res["reflection_upper"] / low_r.lower if low_r.lower else None
    return res


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer images and steps (a smoke run)")
    args = ap.parse_args()
    torch.set_num_threads(2)
    t0 = time.perf_counter()
    models = {p[0]: run_pair(*p, quick=args.quick) for p in PAIRS}
    out = {
        "models": models,
        "targets": {"gap": 1.5, "step_ratio": 3.0},
        "settings": {
            "image_size": 32,
            "step_batch": 64,
            "train_batch": TRAIN_BATCH,
            "train": {p[0]: p[4] for p in PAIRS},
            "quick": args.quick,
            "eps": list(EPS),
        },
        "wall_s": time.perf_counter() - t0,
    }
    json.dump(out, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
