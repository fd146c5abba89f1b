"""Soundness by attack on trained models: a strong ℓ2 PGD at 0.99× each certified radius flips nothing.

For every run of a runs directory (default zoo/runs, the demo's) whose model is certified (U(A) finite):
- classifiers: the certified radius of each correctly classified test image, from `rlip certify`'s own
  functions (`classifier_radii`: max(min_j (z_i − z_j) / (‖W_i − W_j‖·U(φ)) (the head rule, where the
  head is recognised), margin / (√2·U(A))); `cam_pixel_radii`, `pixel_radii` for masks) — then an
  ℓ2 PGD (`attacks.l2_search.pgd_l2`: restarts × steps, in ℝ^d, no clamping, as the certificate holds
  on all of ℝ^d) at 0.99× that radius on the margin objective; a flip is a perturbed image whose top
  class changes;
- CAM masks (constrained classifiers with class maps) and image-to-image masks (U-Nets, mask A(x) > 0):
  the `pixels` certified pixels with the smallest positive radii of each image (the most fragile), each
  attacked alone on its own score margin at 0.99× its radius.
The attack's teeth are shown beside it: the same attack at 1.5× the radius flips `flips_at_1.5x` of them
(zero there too means the radii are loose, not that the attack is weak — read the two together).

Prints one JSON object: per run, attacked certified samples / pixels, flips (must be 0) and flips at 1.5×.
Run: `.venv/bin/python benchmarks/bench_certified_attack.py [--runs-dir zoo/runs] [--n 64] [--only SUBSTR]`
(1 thread; ≈ 1 min per constrained classifier at the defaults).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from robustbench_lip.attacks.l2_search import pgd_l2
from robustbench_lip.data import get_dataset
from robustbench_lip.evaluations.lipschitz.cam_masks import cam_pixel_radii
from robustbench_lip.evaluations.lipschitz.heads import classifier_radii
from robustbench_lip.evaluations.lipschitz.radii import pixel_radii
from robustbench_lip.lipschitz.bounds import upper_bound
from robustbench_lip.modelio import load_model
from robustbench_lip.runs import read_train_record

Objective = Callable[[torch.Tensor], torch.Tensor]


def _other_minus_own(scores: torch.Tensor, own: torch.Tensor) -> torch.Tensor:
    """max_{j≠own} s_j − s_own (N,): > 0 means the label changed."""
    return (scores - 1e9 * F.one_hot(own, scores.shape[1])).amax(1) - scores.gather(1, own[:, None])[:, 0]


def attack_pair(objective: Objective, x: torch.Tensor, r: torch.Tensor, args: argparse.Namespace) -> dict:
    """Flips at 0.99×r (must be 0) and at 1.5×r (the attack's teeth)."""
    if x.shape[0] == 0:
        return {"attacked": 0, "flips": 0, "flips_at_1.5x": 0}
    at = pgd_l2(objective, x, 0.99 * r, args.steps, args.restarts)
    over = pgd_l2(objective, x, 1.5 * r, args.steps, max(1, args.restarts // 5))
    return {"attacked": int(x.shape[0]), "flips": int((at > 0).sum()), "flips_at_1.5x": int((over > 0).sum())}


def classifier(model: torch.nn.Module, x, y, z, r: torch.Tensor, head, args) -> dict:
    """Attack each correctly classified image at 0.99× its certified radius r (N,)."""
    pred = z.argmax(1)
    keep = (pred == y) & (r > 0) & torch.isfinite(r)
    xs, ps, rs = x[keep], pred[keep], r[keep].float()
    out = attack_pair(lambda xa: _other_minus_own(model(xa), ps), xs, rs, args)
    median = float(rs.median()) if len(rs) else None
    return out | {"rule": "head" if head.ok else "sqrt2", "median_radius": median}


def _fragile(radii: torch.Tensor, k: int) -> torch.Tensor:
    """Indices (N, k) of the k smallest positive finite radii per image (flattened pixels)."""
    flat = radii.flatten(1).clone()
    flat[~(torch.isfinite(flat) & (flat > 0))] = math.inf
    return flat.argsort(1)[:, :k]


def pixels(x: torch.Tensor, labels: torch.Tensor, radii: torch.Tensor, scores: Objective, args) -> dict:
    """Attack the `args.pixels` most fragile certified pixels of each image, one pixel at a time:
    labels, radii (N, H, W) the mask and its certified radii; scores(x) (N, M, H·W) the mask rule's
    per-label scores (label = argmax)."""
    total = {"attacked": 0, "flips": 0, "flips_at_1.5x": 0}
    for idx in _fragile(radii, args.pixels).T:
        rr = radii.flatten(1).gather(1, idx[:, None])[:, 0]
        lab = labels.flatten(1).gather(1, idx[:, None])[:, 0]
        ok = torch.isfinite(rr) & (rr > 0)

        def objective(xa: torch.Tensor, idx=idx[ok], lab=lab[ok]) -> torch.Tensor:
            s = scores(xa)
            s = s.gather(2, idx.view(-1, 1, 1).expand(-1, s.shape[1], 1))[..., 0]
            return _other_minus_own(s, lab)

        got = attack_pair(objective, x[ok], rr[ok].float(), args)
        total = {k: total[k] + got[k] for k in total}
    return total


def _i2i_scores(model: torch.nn.Module) -> Objective:
    def scores(xa: torch.Tensor) -> torch.Tensor:
        s = model(xa)[:, :1].flatten(2)
        return torch.cat([torch.zeros_like(s), s], 1)  # [background 0, z]: label 1 iff z > 0

    return scores


def check_run(run: Path, args: argparse.Namespace) -> dict | None:
    """The attacks of one run at the radii `rlip certify`'s own functions give (None: no run)."""
    rec = read_train_record(run)
    if not rec:
        return None
    model = load_model(run).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    s = rec["settings"]
    ds = get_dataset(s["data"], "test", **s["data_options"])
    x, y, _ = ds.take(min(args.n, len(ds))).tensors()
    t0 = time.perf_counter()
    ub = upper_bound(model, tuple(x.shape[1:]))
    u = ub.upper
    if u is None or not math.isfinite(u) or u > args.max_upper:
        return {"upper": u, "skipped": f"U(A) = {u}: nothing is certified at useful radii"}
    out: dict = {"upper": u}
    with torch.no_grad():
        z = model(x)
    if model.config.task == "classification":
        r, head = classifier_radii(model, x, z, ub, [])
        out["samples"] = classifier(model, x, y, z, r, head, args)
        if callable(getattr(model, "class_maps", None)) and getattr(model, "head_kind", "cam") == "cam":
            xm = x[: args.n_masks]
            labels, radii = cam_pixel_radii(model, xm, lip_features=head.phi_upper)
            out["cam_pixels"] = pixels(xm, labels, radii, lambda xa: model.mask_logits(xa).flatten(2), args)
    elif z.dim() == 4 and z.shape[1] == 1:
        xm = x[: args.n_masks]
        labels, radii = pixel_radii(z[: args.n_masks], u)
        out["pixels"] = pixels(xm, labels, radii, _i2i_scores(model), args)
    out["seconds"] = round(time.perf_counter() - t0, 1)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs-dir", default="zoo/runs")
    ap.add_argument("--n", type=int, default=64, help="test images per classifier")
    ap.add_argument("--n-masks", type=int, default=16, help="images whose pixels are attacked")
    ap.add_argument("--pixels", type=int, default=4, help="most fragile certified pixels per image")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--restarts", type=int, default=10)
    ap.add_argument("--max-upper", type=float, default=100.0, help="skip runs with a larger U(A)")
    ap.add_argument("--only", default="", help="substring of the run names to check")
    args = ap.parse_args()
    torch.set_num_threads(1)
    runs = sorted(p for p in Path(args.runs_dir).iterdir() if p.is_dir() and args.only in p.name)
    result = {"runs_dir": args.runs_dir, "steps": args.steps, "restarts": args.restarts, "at": 0.99}
    result["runs"] = {}
    for run in runs:
        got = check_run(run, args)
        if got is not None:
            result["runs"][run.name] = got
            print(f"{run.name}: {got}", file=sys.stderr)
    kinds = ("samples", "cam_pixels", "pixels")
    flips = [v.get(k, {}).get("flips", 0) for v in result["runs"].values() for k in kinds]
    result["total_flips"] = sum(flips)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
