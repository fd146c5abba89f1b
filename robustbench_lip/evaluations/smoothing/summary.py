"""Dataset-level randomized-smoothing certificates: `certify_smoothed(model, dataset, ...)`.

Classification (Cohen et al. CERTIFY per image): per-sample radius (None = abstain), predicted class
and Clopper–Pearson bound in dataset order; certified accuracy at r = fraction of images that are
not abstained, correctly classified and have radius > r; abstention rate = fraction abstained.

Segmentation (SegCertify per image, segmentation): the Monte Carlo counts are drawn once per image;
at each radius r the image's pixels are tested at tau = Φ(r/σ) with Holm (or Bonferroni) at level
alpha, so the statement at each r holds with probability ≥ 1 − alpha per image (the statements at
different radii are not simultaneous). A pixel is certified at r when its test rejects; abstained or
uncertified pixels count as wrong: they get an impossible label, i.e. a false negative of their true
class (the convention of the Lipschitz certificates), both in the certified pixel accuracy and in the
certified mIoU (mean IoU over the K classes present in prediction or target).

Monotone in the radius by construction: a pixel counts as certified at r only when it is certified at
every tested radius ≤ r, r = 0 included (dropping claims keeps each statement valid), so certified
pixel accuracy never rises and pixel abstention never falls with r; the certified mIoU reported at r
is the running minimum of the per-radius mIoU over the tested radii ≤ r, r = 0 included (abstaining
a wrong pixel can raise an IoU, so nesting alone does not make the mIoU monotone). Classification's
certified accuracy (radius > r) is monotone as it stands, and never above the clean figure.

"clean" holds the smoothed classifier's own (radius-0) figures with abstentions counted as wrong:
CERTIFY's correct-and-not-abstained rate for classification, the r = 0 (tau = 1/2) test for
segmentation.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from robustbench_lip.attacks.eps import format_eps
from robustbench_lip.errors import RlipError
from robustbench_lip.evaluations.smoothing.classification import smoothed_certify
from robustbench_lip.evaluations.smoothing.sampling import Forward, Rule, check_positive_int, check_sigma
from robustbench_lip.evaluations.smoothing.segmentation import ABSTAIN, pixel_certify, segment_votes
from robustbench_lip.evaluations.smoothing.settings import SMOOTHING
from robustbench_lip.evaluations.smoothing.statistics import check_alpha, check_correction, tau_for_radius
from robustbench_lip.metrics import ConfusionMatrix
from robustbench_lip.tasks import SCORED_TASKS as TASKS
from robustbench_lip.tasks import Task, scored_task, task_of

log = logging.getLogger(__name__)

DEFAULT_RADII: tuple[float, ...] = (36 / 255, 72 / 255, 108 / 255, 0.25, 0.5, 1.0)


def radius_key(r: float) -> str:
    """Text of a radius used as a JSON key: robustbench_lip.attacks.eps.format_eps (36/255 →
    "36/255", 0.25 → "0.25", 1.0 → "1"), so keys match the Lipschitz certificates'."""
    return format_eps(r)


@dataclass
class SmoothingSummary:
    """Randomized-smoothing certificate of the first `n_images` samples of a dataset.

    Per-sample lists are in dataset order; radius-keyed dicts use `radius_key`. Classification fills
    predictions / sample_radii / p_lower / certified_accuracy; segmentation fills certified_miou /
    certified_pixel_accuracy / pixel_abstention_rate (the others are None). abstention_rate: fraction
    of abstained images (classification) or pixels at r = 0 (segmentation). Radii: ℓ2, [0, 1] pixels.
    rule / forward: the decision rule and the forward map by name (forward None = the model itself).
    """

    task: str
    sigma: float
    alpha: float
    n0: int
    n: int
    n_images: int
    radii: tuple[float, ...]
    batch_size: int
    seed: int
    correction: str | None
    rule: str
    forward: str | None
    num_classes: int | None
    labels: list[int]
    predictions: list[int | None] | None
    sample_radii: list[float | None] | None
    p_lower: list[float | None] | None
    certified_accuracy: dict[str, float] | None
    certified_miou: dict[str, float | None] | None
    certified_pixel_accuracy: dict[str, float] | None
    pixel_abstention_rate: dict[str, float] | None
    abstention_rate: float | None
    clean: dict[str, float | None]
    wall_s: float
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready: numbers as floats/ints, missing values None, plus "certificate": "smoothed"."""
        d = asdict(self)
        d["radii"] = [float(r) for r in self.radii]
        return {"certificate": "smoothed", **d}


def _name(f: Any) -> str:
    """A rule or forward as text: its name, or a callable's __name__ ("callable" for lambdas)."""
    if isinstance(f, str):
        return f
    name = getattr(f, "__name__", "callable")
    return "callable" if name == "<lambda>" else name


def _sample(dataset: Any, i: int) -> tuple[torch.Tensor, int, torch.Tensor | None]:
    item = dataset[i]
    image, label = item[0], item[1]
    mask = item[2] if len(item) > 2 else None
    return torch.as_tensor(image), int(label), mask


def _task(model: nn.Module, task: str | None) -> str:
    if task is not None:
        if task not in TASKS:
            raise RlipError(f"unknown smoothing task {task!r}; expected {' or '.join(TASKS)}")
        return task
    if getattr(model, "config", None) is None:
        raise RlipError("the model has no .config: pass task='classification' or 'segmentation'")
    # how the model is scored (tasks.scored_task); a features model falls to segmentation, as before
    return (scored_task(task_of(model)) or Task.SEGMENTATION).value


def _group_size(opts: dict[str, Any], cap: int) -> int:
    """Images certified per call: about 10 batches of samples (few partial batches), at most `cap`."""
    per_image = opts["n0"] + opts["n"]
    return max(1, min(cap, -(-10 * opts["batch_size"] // per_image)))


def _groups(n_images: int, size: int) -> list[range]:
    return [range(s, min(s + size, n_images)) for s in range(0, n_images, size)]


def _classify(
    model: nn.Module, dataset: Any, n_images: int, opts: dict[str, Any], progress: Callable | None
) -> dict[str, Any]:
    radii = opts.pop("radii")
    group = _group_size(opts, 256)
    labels: list[int] = []
    results = []
    for g in _groups(n_images, group):
        samples = [_sample(dataset, i) for i in g]
        labels += [s[1] for s in samples]
        images = torch.stack([s[0] for s in samples])
        results += smoothed_certify(model, images, indices=list(g), **opts)
        if progress is not None:
            progress(g.stop, n_images)
    preds = [r.label for r in results]
    rads = [r.radius for r in results]
    correct = [p is not None and p == y for p, y in zip(preds, labels, strict=True)]
    pairs = list(zip(correct, rads, strict=True))
    cert = {radius_key(e): sum(c and r is not None and r > e for c, r in pairs) / n_images for e in radii}
    return {
        "labels": labels,
        "predictions": preds,
        "sample_radii": rads,
        "p_lower": [r.p_lower for r in results],
        "certified_accuracy": cert,
        "abstention_rate": sum(p is None for p in preds) / n_images,
        "clean": {"accuracy": sum(correct) / n_images, "miou": None, "pixel_accuracy": None},
    }


class _SegTally:
    """Confusion matrix, correct and abstained pixel counts at one radius (abstained → label K)."""

    def __init__(self, k: int) -> None:
        self.k, self.cm, self.correct, self.abstained, self.pixels = k, ConfusionMatrix(k + 1), 0, 0, 0

    def update(self, pred: torch.Tensor, mask: torch.Tensor) -> None:
        abst = pred == ABSTAIN
        p = torch.where(abst, torch.full_like(pred, self.k), pred)
        self.cm.update(p, mask)
        self.correct += int((p == mask).sum())
        self.abstained += int(abst.sum())
        self.pixels += mask.numel()

    def miou(self) -> float | None:
        iou = self.cm.per_class_iou()[: self.k]
        return None if bool(torch.isnan(iou).all()) else float(torch.nanmean(iou))


def _running_min(tallies: dict[str, _SegTally]) -> dict[str, float | None]:
    """mIoU per radius key (keys in ascending radius) as the running minimum from r = 0 on."""
    out: dict[str, float | None] = {}
    low: float | None = None
    for key, tally in tallies.items():
        v = tally.miou()
        low = v if low is None else (low if v is None else min(low, v))
        out[key] = low
    return out


def _segment(
    model: nn.Module, dataset: Any, n_images: int, opts: dict[str, Any], progress: Callable | None
) -> dict[str, Any]:
    radii, alpha, sigma, n = opts.pop("radii"), opts.pop("alpha"), opts["sigma"], opts["n"]
    correction = opts.pop("correction")
    levels = {radius_key(r): tau_for_radius(r, sigma) for r in sorted({0.0, *radii})}  # ascending r
    tallies: dict[str, _SegTally] = {}
    labels: list[int] = []
    pixels = _sample(dataset, 0)[0][0].numel()
    group = _group_size(opts, max(1, min(64, 2**16 // max(pixels, 1))))
    for g in _groups(n_images, group):
        samples = [_sample(dataset, i) for i in g]
        if any(s[2] is None for s in samples):
            raise RlipError("segmentation certificates need masks, and this dataset has none")
        top, count, k = segment_votes(model, torch.stack([s[0] for s in samples]), indices=list(g), **opts)
        for (_, label, mask), t, c in zip(samples, top, count, strict=True):
            labels.append(label)
            mask = torch.as_tensor(mask).to(torch.int64)
            if mask.shape != t.shape:
                raise RlipError(f"mask shape {tuple(mask.shape)} != prediction shape {tuple(t.shape)}")
            if int(mask.min()) < 0 or int(mask.max()) >= k:
                raise RlipError(f"mask labels outside the model's {k} classes [0, {k})")
            held = torch.ones_like(t, dtype=torch.bool)  # certified at every smaller radius so far
            for key, tau in levels.items():
                pred = pixel_certify(t, c, n, alpha=alpha, tau=min(tau, 1.0), correction=correction)
                pred = torch.where(held, pred, torch.full_like(pred, ABSTAIN))
                held = pred != ABSTAIN
                tallies.setdefault(key, _SegTally(k)).update(pred, mask)
        if progress is not None:
            progress(g.stop, n_images)
    keys = [radius_key(r) for r in radii]
    zero, miou = tallies["0"], _running_min(tallies)
    return {
        "labels": labels,
        "num_classes": zero.k,
        "certified_miou": {e: miou[e] for e in keys},
        "certified_pixel_accuracy": {e: tallies[e].correct / tallies[e].pixels for e in keys},
        "pixel_abstention_rate": {e: tallies[e].abstained / tallies[e].pixels for e in keys},
        "abstention_rate": zero.abstained / zero.pixels,
        "clean": {"accuracy": None, "miou": zero.miou(), "pixel_accuracy": zero.correct / zero.pixels},
    }


def certify_smoothed(
    model: nn.Module,
    dataset: Any,
    *,
    sigma: float,
    n_images: int | None = None,
    task: str | None = None,
    n0: int = 100,
    n: int = 10_000,
    alpha: float = SMOOTHING.alpha,
    radii: Sequence[float] = DEFAULT_RADII,
    correction: str = "holm",
    batch_size: int = SMOOTHING.batch_size,
    seed: int = 0,
    forward: Forward | None = None,
    rule: Rule | None = None,
    num_classes: int | None = None,
    device: str | torch.device | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> SmoothingSummary:
    """Smoothed certificates of the first `n_images` samples (all by default) of `dataset` (indexable,
    `ds[i]` = (image (C, H, W) in [0, 1], label[, mask (H, W)])).

    task: "classification" | "segmentation" (default from model.config.task; image2image →
    segmentation). forward / rule / num_classes: see sampling (rule default "argmax" for
    classification, "auto" for segmentation). correction: segmentation only. progress(done, total)
    is called per group of images. Image i's noise is seeded by (seed, i) and images are grouped from
    index 0, so its noise does not depend on n_images (nor, up to the model's floating-point effects of
    batch composition, its result). The model's modes and the global RNG are left as they were.
    """
    t0 = time.perf_counter()
    kind = _task(model, task)
    total = len(dataset) if n_images is None else min(check_positive_int("n_images", n_images), len(dataset))
    if total < 1:
        raise RlipError("the dataset is empty")
    radii = tuple(float(r) for r in radii)
    if any(not r >= 0 for r in radii):
        raise RlipError(f"radii must be ≥ 0, got {radii}")
    opts: dict[str, Any] = {
        "sigma": check_sigma(sigma), "n0": check_positive_int("n0", n0), "n": check_positive_int("n", n),
        "alpha": check_alpha(alpha), "batch_size": check_positive_int("batch_size", batch_size),
        "seed": int(seed), "forward": forward, "num_classes": num_classes, "device": device, "radii": radii,
    }  # fmt: skip
    if kind == "classification":
        rule = rule or "argmax"
        res = _classify(model, dataset, total, {**opts, "rule": rule}, progress)
        res["num_classes"] = num_classes
        corr = None
    else:
        corr = check_correction(correction)
        rule = rule or "auto"
        res = _segment(model, dataset, total, {**opts, "rule": rule, "correction": corr}, progress)
    notes = [] if kind == "classification" else ["per-radius statements: each at level alpha per image"]
    wall = time.perf_counter() - t0
    log.info("smoothed %s certificate of %d images in %.1f s", kind, total, wall)
    empty = dict.fromkeys(
        ("predictions", "sample_radii", "p_lower", "certified_accuracy", "certified_miou",
         "certified_pixel_accuracy", "pixel_abstention_rate"),
    )  # fmt: skip
    return SmoothingSummary(
        rule=_name(rule), forward=None if forward is None else _name(forward),
        task=kind, sigma=opts["sigma"], alpha=opts["alpha"], n0=n0, n=n, n_images=total, radii=radii,
        batch_size=batch_size, seed=int(seed), correction=corr, wall_s=wall, notes=notes,
        **{**empty, **res},
    )  # fmt: skip
