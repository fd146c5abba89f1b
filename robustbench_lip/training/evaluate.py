"""The held-out evaluation after each epoch: accuracy, macro precision, mIoU and measured σ of A and R,
and whether the run has collapsed: no better than the best constant prediction (`collapse`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from robustbench_lip.config import DatasetInfo
from robustbench_lip.device import eval_mode
from robustbench_lip.lipschitz.spectral import spectral_norm
from robustbench_lip.scoring import score

FINAL_KEYS = (
    "accuracy",
    "precision",
    "miou",
    "sigma_A_mean",
    "sigma_A_max",
    "sigma_R_mean",
    "sigma_R_max",
    "collapsed",
)
#: a run is collapsed when its accuracy (mIoU for segmenters) is within this of a constant prediction's
COLLAPSE_TOL = 0.02


def measure_sigma(
    model: nn.Module, x: torch.Tensor, target: str, iters: int, seed: int = 0, batch_size: int = 64
) -> torch.Tensor:
    """(N,) power-iteration σ of J (target A) or 2J − I at each point of x, in eval mode (a measured
    lower estimate of the local Lipschitz constant; fixed seed for the start vectors)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    with eval_mode(model):
        for i in range(0, x.shape[0], batch_size):
            xb = x[i : i + batch_size]
            u0 = torch.randn(xb.shape, generator=gen).to(xb)
            out.append(spectral_norm(model, xb, target=target, iters=iters, tol=1e-4, u0=u0).sigma)
    return torch.cat(out) if out else torch.empty(0)


def evaluate(
    model: nn.Module,
    test_set: Any,
    info: DatasetInfo,
    device: torch.device,
    sigma_points: int,
    sigma_iters: int,
    baseline: dict[str, float | None] | None = None,
) -> dict[str, Any]:
    """Held-out metrics: accuracy, macro precision, mIoU (None without masks), and mean/max σ of
    A and R (R None where undefined) on the first `sigma_points` test images (measured, eval mode),
    and `collapsed` against `baseline` (`constant_scores(test_set)`, computed when not given)."""
    with eval_mode(model):
        out = score(model, test_set, device, batch_size=256)
        out.update({k: None for k in FINAL_KEYS[3:]})
        out["collapsed"] = collapse(out, test_set, model.config.task, base=baseline)
        n = min(sigma_points, len(test_set))
        if n > 0:
            x = test_set.take(n).tensors()[0].to(device)
            targets = ["A"] + (["reflection"] if model.config.reflection_defined else [])
            for t in targets:
                s = measure_sigma(model, x, t, sigma_iters)
                key = "A" if t == "A" else "R"
                out[f"sigma_{key}_mean"] = float(s.mean())
                out[f"sigma_{key}_max"] = float(s.max())
    return out


def constant_scores(test_set: Any) -> dict[str, float | None]:
    """The best accuracy and the best mIoU that one constant prediction (the same label for every
    image, the same label at every pixel) reaches on `test_set` (mIoU None without masks)."""
    from robustbench_lip.scoring import Level, Scores

    info = test_set.info
    _, y, m = test_set.take(len(test_set)).tensors()
    k = int(info.num_classes)
    best_acc = float(torch.bincount(y.long(), minlength=k).max()) / max(len(y), 1)
    best_miou = None
    nm = info.num_mask_classes if info.has_masks else None
    if nm is not None and m is not None:
        for c in range(int(nm)):
            s = Scores(Level.IMAGE, k, int(nm)).update(None, y, torch.full_like(m, c), m).summary()["miou"]
            best_miou = s if best_miou is None or (s is not None and s > best_miou) else best_miou
    return {"accuracy": best_acc, "miou": best_miou}


def collapse(
    metrics: dict[str, Any],
    test_set: Any,
    task: str,
    tol: float = COLLAPSE_TOL,
    base: dict[str, float | None] | None = None,
) -> bool:
    """True when the model does no better (within `tol`) than the best constant prediction: by
    accuracy for a classifier, by mIoU for the others (when they segment). base: the test set's
    `constant_scores`, when already known."""
    base = constant_scores(test_set) if base is None else base
    if task != "classification" and metrics.get("miou") is not None and base["miou"] is not None:
        return bool(metrics["miou"] <= base["miou"] + tol)
    acc = metrics.get("accuracy")
    return acc is not None and bool(acc <= base["accuracy"] + tol)


def outputs_finite(model: torch.nn.Module, test_set: Any, device: torch.device, n: int = 64) -> bool:
    """True when the model's eval-mode outputs on the first `n` test images are all finite (finite
    weights can still overflow in eval mode, e.g. through running BatchNorm statistics)."""
    k = min(n, len(test_set))
    if k == 0:
        return True
    x = test_set.take(k).tensors()[0].to(device)
    with eval_mode(model), torch.no_grad():
        out = model(x)
    return bool(torch.isfinite(out).all()) if isinstance(out, torch.Tensor) else True
