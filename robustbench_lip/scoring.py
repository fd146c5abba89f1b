"""The one scoring loop: predict over a dataset, accumulate confusion matrices, report metrics.

Metrics (`metrics.ConfusionMatrix`, torchmetrics conventions) at one of two levels:
- `Level.IMAGE`: `accuracy` and `precision` (macro) over the image labels; `miou` over the
  masks when the dataset has masks and the model predicts them, else None;
- `Level.PIXEL`: all three over the masks (pixel accuracy, pixel macro precision, mIoU).

A `Predictor` turns a batch of images into (image labels or None, label masks or None).
`model_predictor(model)` predicts as training does (`models.predict_labels` / `predict_mask`);
the attack evaluation and certify bring their own (logit argmax, certified-radius argmax) and
use `Scores` and `batches` directly.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from typing import Any

import torch
from torch import nn
from torch.utils.data import Dataset

from robustbench_lip.device import eval_mode, resolve_device
from robustbench_lip.errors import RlipError
from robustbench_lip.labels import label_offset
from robustbench_lip.metrics import ConfusionMatrix

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]
Metrics = dict[str, float | None]


class Level(str, Enum):
    """What accuracy and precision count: image labels or mask pixels."""

    IMAGE = "image"
    PIXEL = "pixel"


@dataclass(frozen=True)
class Predictor:
    """labels: images (N, C, H, W) → image labels (N,) int64; mask: → label masks (N, H, W) int64."""

    labels: Callable[[torch.Tensor], torch.Tensor] | None
    mask: Callable[[torch.Tensor], torch.Tensor] | None

    @torch.no_grad()
    def __call__(self, x: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        return (
            self.labels(x) if self.labels is not None else None,
            self.mask(x) if self.mask is not None else None,
        )


class Scores:
    """Confusion matrices of one evaluation cell: image labels (Level.IMAGE) and/or masks."""

    def __init__(
        self, level: Level, num_classes: int | None, num_mask: int | None, ignore_index: int | None = None
    ) -> None:
        if level is Level.IMAGE and num_classes is None:
            raise ValueError("image-level scores need num_classes")
        if level is Level.PIXEL and num_mask is None:
            raise ValueError("pixel-level scores need num_mask")
        self.level = level
        self.labels = ConfusionMatrix(num_classes) if level is Level.IMAGE else None  # type: ignore[arg-type]
        self.masks = ConfusionMatrix(num_mask, ignore_index) if num_mask is not None else None

    def update(
        self,
        labels: torch.Tensor | None,
        y: torch.Tensor,
        mask: torch.Tensor | None = None,
        m: torch.Tensor | None = None,
    ) -> Scores:
        """Add predicted labels vs targets `y`, and predicted masks vs target masks `m`."""
        if self.labels is not None and labels is not None:
            self.labels.update(labels, y)
        if self.masks is not None and mask is not None and m is not None:
            self.masks.update(mask, m)
        return self

    def summary(self) -> Metrics:
        """{"accuracy", "precision", "miou"} at this level (None where nothing was counted)."""
        if self.level is Level.IMAGE:
            assert self.labels is not None
            return {
                "accuracy": self.labels.accuracy(),
                "precision": self.labels.macro_precision(),
                "miou": self.masks.miou() if self.masks is not None else None,
            }
        assert self.masks is not None
        return self.masks.summary()


def batches(dataset: Dataset, n: int, batch_size: int) -> Iterator[Batch]:
    """The first `n` samples of `dataset` in order, as (images float32 (B, C, H, W), labels int64
    (B,), masks int64 (B, H, W) or None) batches of `batch_size`."""
    for start in range(0, n, batch_size):
        items = [dataset[i] for i in range(start, min(n, start + batch_size))]
        x = torch.stack([it[0] for it in items]).float()
        y = torch.stack([torch.as_tensor(it[1]) for it in items]).long().reshape(-1)
        masks = [it[2] if len(it) > 2 else None for it in items]
        m = None if any(mm is None for mm in masks) else torch.stack(masks).long()
        yield x, y, m


def dataset_has_masks(dataset: Dataset) -> bool:
    """Whether the dataset's samples carry masks (its info says so, else the first sample)."""
    info = getattr(dataset, "info", None)
    if info is not None:
        return bool(info.has_masks)
    item = dataset[0]
    return len(item) > 2 and item[2] is not None


def model_predictor(model: nn.Module, with_masks: bool = True, offset: int | None = None) -> Predictor:
    """Training's predictions: `models.predict_labels` (image labels with the dataset's label
    `offset`, see `robustbench_lip.labels`) and (when `with_masks` and the model can segment)
    `models.predict_mask`."""
    from robustbench_lip.models import can_segment, predict_labels, predict_mask

    seg = with_masks and can_segment(model)
    return Predictor(
        labels=lambda x: predict_labels(model, x, offset),
        mask=(lambda x: predict_mask(model, x)) if seg else None,
    )


def score_loop(
    predict: Predictor, dataset: Dataset, scores: Scores, n: int, batch_size: int, device: torch.device
) -> Metrics:
    """Accumulate `predict` over the first `n` samples into `scores`; returns its summary."""
    for x, y, m in batches(dataset, n, batch_size):
        lbl, mask = predict(x.to(device))
        scores.update(lbl.cpu() if lbl is not None else None, y, mask.cpu() if mask is not None else None, m)
    return scores.summary()


def score(
    model: nn.Module,
    dataset: Any,
    device: str | torch.device = "cpu",
    n: int | None = None,
    batch_size: int = 256,
    ignore_index: int | None = None,
) -> Metrics:
    """Clean image-level metrics of `model` on the first `n` samples (all by default) of an rlip
    dataset (items (image, label, mask or None), `.info` a DatasetInfo), as training reports them:
    {"accuracy", "precision"} over `info.num_classes` image labels, "miou" over
    `info.num_mask_classes` masks (None when the dataset has no masks or the model cannot segment).
    Evaluated in eval mode; the model's modes are restored."""
    info = dataset.info
    total = len(dataset)
    n = total if n is None else min(int(n), total)
    if n < 1:
        raise RlipError("nothing to score: the dataset is empty or n < 1")
    seg = bool(info.has_masks) and info.num_mask_classes is not None
    fits = seg and info.num_mask_classes - info.num_classes in (0, 1)
    offset = label_offset(info.num_classes, info.num_mask_classes) if fits else None
    predict = model_predictor(model, with_masks=seg, offset=offset)
    scores = Scores(
        Level.IMAGE, int(info.num_classes), info.num_mask_classes if predict.mask else None, ignore_index
    )
    with eval_mode(model):
        return score_loop(predict, dataset, scores, n, batch_size, resolve_device(device))
