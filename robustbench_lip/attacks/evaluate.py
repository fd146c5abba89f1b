"""Attack a model over a dataset at several budgets: the payload of an `attack` record.

Metric levels (documented in the record under `levels`):
- classifiers (task "classification"): `accuracy` and `precision` (macro) are image-level over the
  image labels; `miou` is the mIoU of the model's mask (for mResNet-18 the CAM mask) against the
  dataset's masks, null when the dataset has no masks or the model cannot segment.
- segmenters (U-Nets: task "segmentation", or "image2image" models that segment): every metric is
  pixel-level over the masks: pixel accuracy, pixel macro precision, mIoU.
All three come from confusion matrices accumulated over the whole dataset (metrics.ConfusionMatrix,
torchmetrics conventions), one per (attack, ε).

Worst case (attack "worst", when several attacks run; as SEA, Croce et al. 2024): per image, the
adversarial example of the attack that hurts most is kept — for classifiers with objective "cls"
the first one that flips the label (ties: lowest pixel accuracy of the mask), otherwise the one
with the lowest per-image pixel accuracy (ties: a flipped image label) — and the metrics are
computed on those images.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from robustbench_lip.attacks.base import check_budget, check_norm, default_alpha, fast_argmax
from robustbench_lip.attacks.classification import ClassificationAttack
from robustbench_lip.attacks.eps import format_eps
from robustbench_lip.attacks.segmentation import (
    IGNORE_INDEX,
    SegmentationAttack,
    pixel_logits_fn,
)
from robustbench_lip.device import preserved_modes, preserved_rng, resolve_device
from robustbench_lip.errors import RlipError
from robustbench_lip.metrics import ConfusionMatrix, per_sample_accuracy

logger = logging.getLogger(__name__)

ATTACK_NAMES: tuple[str, ...] = ("fgsm", "pgd", "segpgd", "cospgd", "apgd", "autoattack")
PIXEL_ONLY: tuple[str, ...] = ("segpgd", "cospgd")
OBJECTIVES: tuple[str, ...] = ("cls", "pixel")

Progress = Callable[[int, int], None]


def model_kind(model: torch.nn.Module) -> str:
    """`classifier` (task classification) or `segmenter` (segmentation, or image2image that segments)."""
    cfg = getattr(model, "config", None)
    task = getattr(cfg, "task", None)
    if task == "classification":
        return "classifier"
    if task in ("segmentation", "image2image"):
        try:
            pixel_logits_fn(model)
        except RlipError:
            raise RlipError(
                f"model {cfg.arch} ({task}) cannot be attacked: it predicts no labels or masks"
            ) from None
        return "segmenter"
    if task == "features":
        raise RlipError(
            f"model {cfg.arch} returns a feature map {cfg.num_classes}×…, not labels or masks: "
            "nothing to attack"
        )
    raise RlipError(f"model {type(model).__name__} has no .config.task; load it with rlip's load_model")


def _can_segment(model: torch.nn.Module) -> bool:
    try:
        pixel_logits_fn(model)
    except RlipError:
        return False
    return True


def _dataset_has_masks(dataset: Dataset) -> bool:
    info = getattr(dataset, "info", None)
    if info is not None:
        return bool(info.has_masks)
    item = dataset[0]
    return len(item) > 2 and item[2] is not None


def _check_label_spaces(dataset: Dataset, kind: str, num_classes: int, num_mask: int | None) -> None:
    """One-line errors when the model's label spaces cannot hold the dataset's labels."""
    info = getattr(dataset, "info", None)
    if info is None:
        return
    name = getattr(info, "name", "the dataset")
    if kind == "classifier" and num_classes < int(info.num_classes):
        raise RlipError(f"the model predicts {num_classes} classes but {name} has {info.num_classes}")
    if num_mask is not None and info.num_mask_classes and num_mask < int(info.num_mask_classes):
        raise RlipError(
            f"the model predicts {num_mask} mask classes but {name} has {info.num_mask_classes}; "
            "attack it on the dataset it was trained for"
        )


def resolve_attacks(attacks: str | Sequence[str], kind: str, pixel_ok: bool, objective: str) -> list[str]:
    """Expand `all`, check names against the model kind; one-line errors for bad requests."""
    names = [attacks] if isinstance(attacks, str) else list(attacks)
    names = [str(a).strip().lower() for a in names]
    out: list[str] = []
    for a in names:
        if a == "all":
            expanded = ["fgsm", "pgd", *(PIXEL_ONLY if (pixel_ok or kind == "segmenter") else ())]
        elif a not in ATTACK_NAMES:
            raise RlipError(f"unknown attack {a!r}; expected one of {', '.join((*ATTACK_NAMES, 'all'))}")
        else:
            expanded = [a]
        for e in expanded:
            if e not in out:
                out.append(e)
    if not out:
        raise RlipError("no attack given")
    for a in out:
        if a in PIXEL_ONLY and kind == "classifier" and not pixel_ok:
            raise RlipError(
                f"segmentation attack {a!r} needs a model that segments and a dataset with masks; "
                "use --attack fgsm or pgd for this classifier"
            )
        if a in ("apgd", "autoattack") and (kind != "classifier" or objective != "cls"):
            raise RlipError(f"attack {a!r} is for classifiers with the cls objective only")
    return out


def _batches(dataset: Dataset, n: int, batch_size: int):
    for start in range(0, n, batch_size):
        items = [dataset[i] for i in range(start, min(n, start + batch_size))]
        x = torch.stack([it[0] for it in items]).float()
        y = torch.stack([torch.as_tensor(it[1]) for it in items]).long().reshape(-1)
        masks = [it[2] if len(it) > 2 else None for it in items]
        m = None if any(mm is None for mm in masks) else torch.stack(masks).long()
        yield x, y, m


class _Tracker:
    """Confusion matrices of one (attack, ε) cell: image labels and/or masks."""

    def __init__(self, kind: str, num_classes: int, num_mask: int | None, ignore_index: int | None) -> None:
        self.kind = kind
        self.labels = ConfusionMatrix(num_classes) if kind == "classifier" else None
        self.masks = ConfusionMatrix(num_mask, ignore_index) if num_mask is not None else None

    def update(
        self, lbl: torch.Tensor | None, y: torch.Tensor, mask: torch.Tensor | None, m: torch.Tensor | None
    ) -> None:
        if self.labels is not None and lbl is not None:
            self.labels.update(lbl, y)
        if self.masks is not None and mask is not None and m is not None:
            self.masks.update(mask, m)

    def summary(self) -> dict[str, float | None]:
        if self.kind == "classifier":
            assert self.labels is not None
            return {
                "accuracy": self.labels.accuracy(),
                "precision": self.labels.macro_precision(),
                "miou": self.masks.miou() if self.masks is not None else None,
            }
        assert self.masks is not None
        return self.masks.summary()


def evaluate(
    model: torch.nn.Module,
    dataset: Dataset,
    eps_list: Sequence[float],
    attacks: str | Sequence[str] = "pgd",
    norm: str = "linf",
    steps: int = 10,
    alpha: float | None = None,
    n: int | None = None,
    batch_size: int = 64,
    seed: int = 0,
    objective: str | None = None,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
    ignore_index: int | None = IGNORE_INDEX,
) -> dict[str, Any]:
    """Clean and attacked metrics of `model` on the first `n` samples of `dataset`, per ε and attack.

    dataset items: (image (C, H, W) in [0, 1], label, mask (H, W) int64 or None). attacks: names
    from ATTACK_NAMES or "all"; norm "linf" | "l2"; alpha: step size (default 2.5·ε/steps, per ε);
    objective: "cls" (image-label CE, classifiers only) or "pixel" (pixel CE on mask_logits);
    default "cls" for classifiers, "pixel" for segmenters (segpgd/cospgd always use pixels).
    n larger than the dataset is clamped (logged). The model is moved to `device` and evaluated in
    eval mode; its modes and the global RNG are restored afterwards. progress(done, total) is
    called after every (batch, ε, attack).

    Returns {"clean": {accuracy, precision, miou}, "results": [{attack, norm, eps, eps_text, steps,
    alpha, accuracy, precision, miou}, ...], "n", "objective", "task", "levels", "ignore_index"}.
    """
    norm = check_norm(norm)
    eps_values = list(dict.fromkeys(check_budget(e, norm) for e in eps_list))
    if not eps_values:
        raise RlipError("no eps given")
    if int(steps) < 1:
        raise RlipError(f"steps must be ≥ 1, got {steps}")
    if alpha is not None and not (math.isfinite(alpha) and alpha > 0):
        raise RlipError(f"alpha must be a positive number, got {alpha}")
    if int(batch_size) < 1:
        raise RlipError(f"batch size must be ≥ 1, got {batch_size}")
    kind = model_kind(model)
    has_masks = _dataset_has_masks(dataset)
    can_seg = _can_segment(model)
    if kind == "segmenter" and not has_masks:
        raise RlipError("this model segments but the dataset has no masks to attack or score against")
    if objective is None:
        objective = "cls" if kind == "classifier" else "pixel"
    objective = str(objective).lower()
    if objective not in OBJECTIVES:
        raise RlipError(f"unknown objective {objective!r}; expected cls or pixel")
    if objective == "cls" and kind == "segmenter":
        raise RlipError("objective 'cls' needs a classifier; a segmenter is attacked on its pixels (pixel)")
    pixel_ok = has_masks and can_seg
    if objective == "pixel" and not pixel_ok:
        raise RlipError("objective 'pixel' needs a model that segments and a dataset with masks")
    names = resolve_attacks(attacks, kind, pixel_ok, objective)

    total_n = len(dataset)  # type: ignore[arg-type]
    if total_n == 0:
        raise RlipError("the dataset is empty")
    if n is None:
        n = total_n
    if int(n) < 1:
        raise RlipError(f"n must be ≥ 1, got {n}")
    if n > total_n:
        logger.warning("n=%d is larger than the dataset (%d samples); using %d", n, total_n, total_n)
        n = total_n
    n = int(n)

    dev = resolve_device(device)
    model.to(dev)
    pixel_fn = pixel_logits_fn(model) if pixel_ok or kind == "segmenter" else None
    cfg = getattr(model, "config", None)

    def build(
        name: str, eps: float, idx: int
    ) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]:
        a = alpha if alpha is not None else default_alpha(eps, steps)
        s = seed + 7919 * idx  # distinct, reproducible random starts per (ε, attack)
        if kind == "classifier" and objective == "cls" and name not in PIXEL_ONLY:
            atk = ClassificationAttack(
                model, name, eps, norm, steps, a, True, s, num_classes=getattr(cfg, "num_classes", None)
            )
            return lambda x, y, m: atk(x, y)
        seg = SegmentationAttack(model, name, eps, norm, steps, a, True, s, ignore_index, pixel_fn)
        return lambda x, y, m: seg(x, m)

    def steps_of(name: str) -> int:
        return 1 if name == "fgsm" else int(steps)

    cells = [(e, a) for e in eps_values for a in names]
    runners = {cell: build(cell[1], cell[0], i) for i, cell in enumerate(cells)}
    with_worst = len(names) > 1
    keys = cells + ([(e, "worst") for e in eps_values] if with_worst else [])
    trackers: dict[Any, _Tracker] = {}
    clean: _Tracker | None = None
    num_batches = math.ceil(n / batch_size)
    total_units = num_batches * len(cells)
    done = 0

    def predict(x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        with torch.no_grad():
            lbl = model(x).argmax(1) if kind == "classifier" else None
            mask = fast_argmax(pixel_fn(x), 1) if pixel_fn is not None else None
        return lbl, mask

    def harm(
        lbl: torch.Tensor | None, y: torch.Tensor, mask: torch.Tensor | None, m: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        wrong = (
            (lbl != y).double()
            if lbl is not None
            else torch.zeros(y.shape[0], dtype=torch.float64, device=y.device)
        )
        perr = (
            (1 - per_sample_accuracy(mask, m, ignore_index))
            if mask is not None and m is not None
            else torch.zeros_like(wrong)
        )
        return (wrong, perr) if (kind == "classifier" and objective == "cls") else (perr, wrong)

    with preserved_modes(model), preserved_rng():
        model.eval()
        for x, y, m in _batches(dataset, n, batch_size):
            x, y = x.to(dev), y.to(dev)
            m = m.to(dev) if m is not None else None
            lbl, mask = predict(x)
            if clean is None:
                with torch.no_grad():
                    num_classes = int(model(x[:1]).shape[1]) if kind == "classifier" else 0
                    num_mask = int(pixel_fn(x[:1]).shape[1]) if pixel_fn is not None else None
                _check_label_spaces(dataset, kind, num_classes, num_mask)
                clean = _Tracker(kind, num_classes, num_mask, ignore_index)
                trackers = {k: _Tracker(kind, num_classes, num_mask, ignore_index) for k in keys}
            clean.update(lbl, y, mask, m)
            for e in eps_values:
                best: tuple[torch.Tensor, torch.Tensor] | None = None
                best_pred: list[torch.Tensor | None] = [None, None]
                for a in names:
                    adv = runners[(e, a)](x, y, m)
                    albl, amask = predict(adv)
                    trackers[(e, a)].update(albl, y, amask, m)
                    if with_worst:
                        h = harm(albl, y, amask, m)
                        if best is None:
                            best, best_pred = h, [albl, amask]
                        else:
                            better = (h[0] > best[0]) | ((h[0] == best[0]) & (h[1] > best[1]))
                            best = (torch.where(better, h[0], best[0]), torch.where(better, h[1], best[1]))
                            best_pred = [
                                None
                                if p is None
                                else torch.where(better.view(-1, *([1] * (p.dim() - 1))), p, q)
                                for p, q in zip((albl, amask), best_pred, strict=True)
                            ]
                    done += 1
                    if progress is not None:
                        progress(done, total_units)
                if with_worst:
                    trackers[(e, "worst")].update(best_pred[0], y, best_pred[1], m)

    assert clean is not None
    results = []
    for e, a in keys:
        rec = {
            "attack": a,
            "norm": norm,
            "eps": e,
            "eps_text": format_eps(e),
            "steps": steps_of(a) if a != "worst" else int(steps),
            "alpha": (e if a == "fgsm" else (alpha if alpha is not None else default_alpha(e, steps))),
            **trackers[(e, a)].summary(),
        }
        results.append(rec)
    results.sort(key=lambda r: eps_values.index(r["eps"]))
    levels = (
        {"accuracy": "image", "precision": "image", "miou": "pixel" if pixel_ok else None}
        if kind == "classifier"
        else {"accuracy": "pixel", "precision": "pixel", "miou": "pixel"}
    )
    return {
        "clean": clean.summary(),
        "results": results,
        "n": n,
        "objective": objective,
        "task": kind,
        "attacks": names,
        "levels": levels,
        "ignore_index": ignore_index,
    }
