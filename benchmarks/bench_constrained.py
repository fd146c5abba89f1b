"""Constrained (1-Lipschitz by construction) models of the demo, trained by their zoo specs over seeds.

For `sllnet_w16` and `sllnet_cam_w16` (zoo/shapes_lip_cpu.toml, `shapes`) and `unet_fne`
(zoo/lesions_fne_cpu.toml, `lesions`), against the λ = 10 penalty U-Net (zoo/lesions_unet_cpu.toml),
each seed trained by `rlip`'s own training (`training.train`, the spec's settings) and certified by
`rlip certify`'s own code (`evaluations.lipschitz.run.certify_run`, records not written):
1. clean accuracy / mIoU, certified accuracy at ℓ2 ε ∈ {36, 72, 255}/255 (classifiers), certified mIoU
   at 36/255 (U-Nets; the CAM masks of sllnet_cam_w16), mean over seeds with std, min and max;
2. the certified bound U(A) and its gap (U(A) ÷ the witnessed lower bound);
3. `by_construction`: certified accuracy with L = 1 (the constant the layers prove; tests/models/
   test_constrained_sll.py checks it by dense Jacobians) and the √2 margin rule, beside `rlip certify`'s;
4. the training step time ÷ the plain `mresnet18_w8` step (batch 64, interleaved, medians);
5. collapsed: whether any seed ended no better than a constant prediction (results/train.json).

Prints one JSON object. Targets (issue 25): clean ≥ 0.65, certified ≥ 0.50 @36/255 and ≥ 0.35 @72/255,
step ≤ 1.0×, gap ≤ 1.5, FNE mIoU within 0.03 of the penalty U-Net, its certified mIoU ≥ 0.30 @36/255.
Run: `.venv/bin/python benchmarks/bench_constrained.py [--quick] [--seeds 0,1,2] [--only LABELS]` (1 thread;
all four × 3 seeds: 37 min on the 2-core machine shared at load 4–5, most of it the penalty U-Net;
--quick: seed 0 only, n = 64 test points). `certified_*` are `rlip certify`'s figures (its SLL, AOL
and MaxMin pattern rules give U(A) ≈ 1 for sllnet).
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from robustbench_lip.config import SweepSpec
from robustbench_lip.data import dataset_info
from robustbench_lip.evaluations.lipschitz.run import certify_run
from robustbench_lip.models import create_model_for
from robustbench_lip.runs import read_train_record
from robustbench_lip.training import train
from robustbench_lip.training.losses import config_loss

ZOO = Path(__file__).resolve().parents[1] / "zoo"
EPS = {"36/255": 36 / 255, "72/255": 72 / 255, "255/255": 1.0}
#: (label, spec file, model, λ)
RUNS = [
    ("sllnet_w16", "shapes_lip_cpu.toml", "sllnet_w16", 0.0),
    ("sllnet_cam_w16", "shapes_lip_cpu.toml", "sllnet_cam_w16", 0.0),
    ("unet_fne", "lesions_fne_cpu.toml", "unet_fne", 0.0),
    ("unet_i2i_lam10", "lesions_unet_cpu.toml", "unet_i2i", 10.0),
]
TARGETS = {"clean": 0.65, "certified_36": 0.50, "certified_72": 0.35, "step_ratio": 1.0, "gap": 1.5}
TARGETS |= {"fne_miou_within": 0.03, "fne_certified_miou_36": 0.30}


def spread(values: list[float | None]) -> dict | None:
    """mean, std (sample), min, max and the values; None when any value is None."""
    if not values or any(v is None for v in values):
        return None
    v = [float(x) for x in values]  # type: ignore[arg-type]
    std = statistics.stdev(v) if len(v) > 1 else 0.0
    return {"mean": statistics.fmean(v), "std": std, "min": min(v), "max": max(v), "values": v}


def by_construction(run_dir: Path, n: int) -> dict[str, float]:
    """Certified accuracy with L = 1 (the layers' constant) and the √2 rule, on the first n test images."""
    from robustbench_lip.data import get_dataset
    from robustbench_lip.modelio import load_model

    model = load_model(run_dir).eval()
    rec = read_train_record(run_dir) or {}
    s = rec["settings"]
    ds = get_dataset(s["data"], "test", **s["data_options"])
    x, y, _ = ds.take(min(n, len(ds))).tensors()
    with torch.no_grad():
        z = model(x)
    top = z.topk(2, 1).values
    r = (top[:, 0] - top[:, 1]) / math.sqrt(2)
    ok = z.argmax(1) == y
    return {k: float((ok & (r > e)).float().mean()) for k, e in EPS.items()}


def one_seed(spec: SweepSpec, model: str, lam: float, seed: int, root: Path, n: int) -> dict:
    name, cfg = spec.run_name(model, lam, seed), spec.config(model, lam, seed)
    cfg = type(cfg).from_dict({**cfg.to_dict(), "device": "cpu"})
    res = train(cfg, root / name)
    rec = certify_run(root / name, n=n, eps=list(EPS.values()), write=False, device="cpu")
    a = rec.lipschitz["A"] if rec.lipschitz else {}
    out = {
        "train_s": res.wall_s,
        "collapsed": bool(res.final.get("collapsed")),
        "clean_accuracy": (rec.clean or {}).get("accuracy"),
        "clean_miou": (rec.clean or {}).get("miou"),
        "upper": a.get("upper"),
        "lower": a.get("lower"),
        "gap": a.get("gap"),
        "certified_accuracy": rec.certified_accuracy,
        "certified_miou": rec.certified_miou,
    }
    if cfg.data == "shapes":
        out["by_construction"] = by_construction(root / name, n)
    return out


def summarise(seeds: list[dict]) -> dict:
    keys = ("clean_accuracy", "clean_miou", "upper", "gap", "train_s")
    out = {k: spread([s[k] for s in seeds]) for k in keys}
    for field in ("certified_accuracy", "certified_miou", "by_construction"):
        per = [s.get(field) or {} for s in seeds]
        out[field] = {e: spread([p.get(e) for p in per]) for e in EPS}
    out["collapsed_seeds"] = [i for i, s in enumerate(seeds) if s["collapsed"]]
    out["seeds"] = seeds
    return out


def step_ratio(steps: int) -> dict[str, float]:
    """Median training-step time (batch 64, 3×32×32, the spec's loss) of each classifier ÷ mresnet18_w8."""
    spec = SweepSpec.from_toml(ZOO / "shapes_lip_cpu.toml")
    info = dataset_info("shapes", image_size=32, n_train=64, n_test=8)
    torch.manual_seed(0)
    names = ["mresnet18_w8", "sllnet_w16", "sllnet_cam_w16", "lipresnet18_w8"]
    models = {k: create_model_for(k, info) for k in names}
    loss_fn = config_loss(spec.config("sllnet_w16", 0.0, 0))
    opts = {k: torch.optim.Adam(m.parameters(), lr=1e-3) for k, m in models.items()}
    x, y = torch.rand(64, 3, 32, 32), torch.randint(0, 10, (64,))
    times: dict[str, list[float]] = {k: [] for k in names}
    for i in range(steps + 1):
        for k in names if i % 2 else names[::-1]:
            t = time.perf_counter()
            z = models[k](x)
            loss = F.cross_entropy(z, y) if k == "mresnet18_w8" else loss_fn(z, y)  # type: ignore[misc]
            opts[k].zero_grad()
            loss.backward()
            opts[k].step()
            if i:
                times[k].append(time.perf_counter() - t)
    ref = statistics.median(times["mresnet18_w8"])
    return {k: statistics.median(times[k]) / ref for k in names[1:]} | {"mresnet18_w8_step_s": ref}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="seed 0 only, 64 test points")
    ap.add_argument("--seeds", default="0,1,2", help="comma-separated seeds (default 0,1,2)")
    ap.add_argument("--only", default="", help="comma-separated labels of RUNS to run (default all)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    seeds = [0] if args.quick else [int(s) for s in args.seeds.split(",")]
    n = 64 if args.quick else 256
    only = set(filter(None, args.only.split(",")))
    t0 = time.perf_counter()
    models = {}
    with tempfile.TemporaryDirectory() as tmp:
        for label, spec_file, model, lam in RUNS:
            if only and label not in only:
                continue
            spec = SweepSpec.from_toml(ZOO / spec_file)
            models[label] = summarise([one_seed(spec, model, lam, s, Path(tmp), n) for s in seeds])
    out = {
        "models": models,
        "step_ratio_vs_mresnet18_w8": step_ratio(4 if args.quick else 8),
        "targets": TARGETS,
        "settings": {"seeds": seeds, "n_test": n, "eps": list(EPS), "threads": 1, "quick": args.quick},
        "wall_s": time.perf_counter() - t0,
    }
    json.dump(out, sys.stdout, indent=1)
    print()


if __name__ == "__main__":
    main()
