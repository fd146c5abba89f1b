"""Dataset-level metrics from one accumulated confusion matrix.

Conventions (those of torchmetrics' macro averages): pixels/samples whose target equals
`ignore_index` are dropped; a class absent from both prediction and target is excluded from a
macro average; precision of a class never predicted but present in the target is 0.
"""

from __future__ import annotations

import torch


class ConfusionMatrix:
    """Accumulates a (K, K) confusion matrix: rows = target, columns = prediction."""

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        if num_classes < 1:
            raise ValueError("num_classes must be ≥ 1")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> ConfusionMatrix:
        """Add predictions and targets of any equal shape (integer labels)."""
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
        p = pred.reshape(-1).to("cpu", torch.int64)
        t = target.reshape(-1).to("cpu", torch.int64)
        keep = torch.ones_like(t, dtype=torch.bool)
        if self.ignore_index is not None:
            keep &= t != self.ignore_index
        k = self.num_classes
        keep &= (t >= 0) & (t < k) & (p >= 0) & (p < k)
        idx = t[keep] * k + p[keep]
        self.matrix += torch.bincount(idx, minlength=k * k).reshape(k, k)
        return self

    @property
    def total(self) -> int:
        return int(self.matrix.sum())

    def _tp_fp_fn(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        m = self.matrix.double()
        tp = m.diag()
        return tp, m.sum(0) - tp, m.sum(1) - tp

    def accuracy(self) -> float | None:
        """Fraction of correct labels (pixel accuracy for masks); None when empty."""
        n = self.total
        return float(self.matrix.diag().sum()) / n if n else None

    def per_class_iou(self) -> torch.Tensor:
        """IoU per class, NaN for classes absent from both prediction and target."""
        tp, fp, fn = self._tp_fp_fn()
        den = tp + fp + fn
        return torch.where(den > 0, tp / den.clamp_min(1), torch.full_like(den, float("nan")))

    def miou(self) -> float | None:
        """Mean IoU over classes present in prediction or target; None when empty."""
        iou = self.per_class_iou()
        iou = iou[~torch.isnan(iou)]
        return float(iou.mean()) if iou.numel() else None

    def macro_precision(self) -> float | None:
        """Mean over present classes of tp / (tp + fp), 0 for a class never predicted."""
        tp, fp, fn = self._tp_fp_fn()
        present = (tp + fp + fn) > 0
        if not bool(present.any()):
            return None
        prec = torch.where(tp + fp > 0, tp / (tp + fp).clamp_min(1), torch.zeros_like(tp))
        return float(prec[present].mean())


def accuracy(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of equal labels; `pred` may be logits (N, K) or labels (N,)."""
    if pred.dim() == target.dim() + 1:
        pred = pred.argmax(1)
    return float((pred == target).double().mean())
