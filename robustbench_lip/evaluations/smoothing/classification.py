"""Randomized smoothing for classifiers: PREDICT and CERTIFY of Cohen, Rosenfeld & Kolter (ICML 2019).

The smoothed classifier g(x) = argmax_c P(f(x + ε) = c), ε ~ N(0, σ²I), is evaluated by Monte Carlo:

- `smoothed_predict`: n samples; the top two classes' counts n_A, n_B; abstain unless the two-sided
  binomial test of n_A against n_A + n_B at p = 1/2 rejects at level alpha (then g(x) = c_A with
  probability ≥ 1 − alpha).
- `smoothed_certify`: c_A = the most frequent class in n0 selection samples; from n fresh samples,
  p_A_lower = one-sided Clopper–Pearson lower bound (level 1 − alpha) on P(f(x + ε) = c_A); abstain
  when p_A_lower ≤ 1/2, else g is constant (= c_A) on the open ℓ2 ball of radius σ·Φ⁻¹(p_A_lower)
  around x, with probability ≥ 1 − alpha over the sampling (the certificate of each image separately).

Radii are ℓ2 in [0, 1] pixel units (σ too; the noise is added to the un-normalised image; noisy
images are not clamped to [0, 1]). A sample is "certified at r" when it is not abstained and its radius
is > r (then g is constant on the closed ball of radius r), as for the Lipschitz certificates.
Runs are reproducible: same seed, batch size and device → same result (see sampling).

Segmentation (SegCertify) lives in `segmentation`, the dataset-level summary in `summary`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from robustbench_lip.evaluations.smoothing.sampling import (
    Decision,
    Forward,
    Progress,
    Rule,
    as_batch,
    check_positive_int,
    check_sigma,
    generators,
    isolated,
    model_device,
    sample_votes,
)
from robustbench_lip.evaluations.smoothing.settings import SMOOTHING
from robustbench_lip.evaluations.smoothing.statistics import check_alpha, cp_lower, pvalue_two_sided, radius

__all__ = ["SmoothedPrediction", "smoothed_certify", "smoothed_predict"]


@dataclass(frozen=True)
class SmoothedPrediction:
    """The smoothed classifier's answer for one image.

    label: the class, None = abstain. radius: certified ℓ2 radius (CERTIFY only; None when abstained).
    p_lower: Clopper–Pearson lower bound on the class's probability (CERTIFY only). count: samples
    voting for the (selected) class among n. pvalue: PREDICT's two-sided test p-value (PREDICT only).
    """

    label: int | None
    radius: float | None
    p_lower: float | None
    count: int
    n: int
    pvalue: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _setup(
    model: nn.Module,
    images: torch.Tensor,
    sigma: float,
    alpha: float,
    batch_size: int,
    indices: Sequence[int] | None,
    device: str | torch.device | None,
) -> tuple[torch.Tensor, list[int], float, float]:
    dev = model_device(model, device)
    x = as_batch(images, dev)
    idx = list(range(x.shape[0])) if indices is None else [int(i) for i in indices]
    if len(idx) != x.shape[0]:
        raise ValueError(f"{len(idx)} indices for {x.shape[0]} images")
    check_positive_int("batch_size", batch_size)
    return x, idx, check_sigma(sigma), check_alpha(alpha)


def smoothed_predict(
    model: nn.Module,
    images: torch.Tensor,
    *,
    sigma: float,
    n: int = 1000,
    alpha: float = SMOOTHING.alpha,
    batch_size: int = SMOOTHING.batch_size,
    seed: int = 0,
    indices: Sequence[int] | None = None,
    forward: Forward | None = None,
    rule: Rule = "argmax",
    num_classes: int | None = None,
    device: str | torch.device | None = None,
    progress: Progress | None = None,
) -> list[SmoothedPrediction]:
    """Cohen et al.'s PREDICT for each of `images` (C, H, W) or (M, C, H, W) in [0, 1].

    `indices` (default 0..M−1) are the images' dataset positions: image i's noise comes from
    generators seeded by (seed, i) (sampling.image_seed). `forward` (default the model) maps a
    batch to outputs, `rule` turns them into labels (sampling). `progress(done, total)` is called
    per chunk, in noise samples. The model's modes and the global RNG are left as they were.
    """
    x, idx, sigma, alpha = _setup(model, images, sigma, alpha, batch_size, indices, device)
    check_positive_int("n", n)
    decision = Decision(rule, num_classes)
    fwd = forward if forward is not None else model
    with isolated(model):
        phases = [(n, generators(seed, idx, "predict", x.device))]
        counts = sample_votes(fwd, decision, x, phases, sigma, batch_size, progress)[:, 0].cpu()
    out = []
    for c in counts:
        top = torch.topk(c, min(2, c.numel()))
        n_a = int(top.values[0])
        n_b = int(top.values[1]) if c.numel() > 1 else 0
        pv = pvalue_two_sided(n_a, n_a + n_b)
        label = int(top.indices[0]) if pv <= alpha else None
        out.append(SmoothedPrediction(label, None, None, n_a, n, pv))
    return out


def smoothed_certify(
    model: nn.Module,
    images: torch.Tensor,
    *,
    sigma: float,
    n0: int = 100,
    n: int = 100_000,
    alpha: float = SMOOTHING.alpha,
    batch_size: int = SMOOTHING.batch_size,
    seed: int = 0,
    indices: Sequence[int] | None = None,
    forward: Forward | None = None,
    rule: Rule = "argmax",
    num_classes: int | None = None,
    device: str | torch.device | None = None,
    progress: Progress | None = None,
) -> list[SmoothedPrediction]:
    """Cohen et al.'s CERTIFY for each of `images` (C, H, W) or (M, C, H, W) in [0, 1].

    n0 selection samples pick the class, n independent estimation samples bound its probability; the
    result holds for each image with probability ≥ 1 − alpha. Arguments as `smoothed_predict`
    (`progress` counts the n0 + n samples of every image).
    """
    x, idx, sigma, alpha = _setup(model, images, sigma, alpha, batch_size, indices, device)
    check_positive_int("n0", n0)
    check_positive_int("n", n)
    decision = Decision(rule, num_classes)
    fwd = forward if forward is not None else model
    with isolated(model):
        phases = [
            (n0, generators(seed, idx, "select", x.device)),
            (n, generators(seed, idx, "estimate", x.device)),
        ]
        votes = sample_votes(fwd, decision, x, phases, sigma, batch_size, progress).cpu()
    chosen = votes[:, 0].argmax(1)
    counts = votes[:, 1].gather(1, chosen.view(-1, 1)).view(-1).numpy()
    p_low = cp_lower(counts, n, alpha)
    rad = radius(p_low, sigma)
    out = []
    for c, k, pl, r in zip(chosen.tolist(), counts.tolist(), p_low.tolist(), rad.tolist(), strict=True):
        ok = pl > 0.5
        out.append(SmoothedPrediction(int(c) if ok else None, float(r) if ok else None, float(pl), int(k), n))
    return out
