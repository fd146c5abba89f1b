"""Dataset-level metrics from one accumulated confusion matrix.

Conventions — those of torchmetrics 1.x (checked against it in tests/scoring/test_metrics.py):

- accuracy: fraction of correct labels over all kept samples/pixels
  (= `MulticlassAccuracy(average="micro")`; note torchmetrics' *default* there is "macro").
- samples/pixels whose target equals `ignore_index` are dropped before counting. Predictions are
  kept as they are, so a prediction equal to an in-range `ignore_index` still counts as a false
  positive of that class and a false negative of the true class.
- macro precision (`MulticlassPrecision(average="macro")`): mean of tp / (tp + fp) over classes with
  tp + fp + fn > 0; a class present in the target but never predicted scores 0. An in-range
  `ignore_index` class takes part like any other class (it scores 0 if it is ever predicted).
- mIoU (`MulticlassJaccardIndex(average="macro", ignore_index=...)`): mean of tp / (tp + fp + fn)
  over classes present in prediction or target, **excluding** an in-range `ignore_index` class
  (torchmetrics treats the ignored class differently in precision and IoU; we follow it in both).
- an empty matrix gives None (torchmetrics would return 0), never a made-up number.
"""

from __future__ import annotations

import torch


class ConfusionMatrix:
    """Accumulates a (K, K) confusion matrix: rows = target, columns = prediction (int64, on CPU)."""

    def __init__(self, num_classes: int, ignore_index: int | None = None) -> None:
        if num_classes < 1:
            raise ValueError("num_classes must be ≥ 1")
        self.num_classes = int(num_classes)
        self.ignore_index = ignore_index
        self.matrix = torch.zeros(num_classes, num_classes, dtype=torch.int64)

    def update(self, pred: torch.Tensor, target: torch.Tensor) -> ConfusionMatrix:
        """Add integer predictions and targets of any equal shape.

        Targets equal to `ignore_index` are dropped; any other label outside [0, K) is an error.
        """
        if pred.shape != target.shape:
            raise ValueError(f"prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
        p = pred.reshape(-1).to(torch.int64)
        t = target.reshape(-1).to(torch.int64)
        if self.ignore_index is not None:
            keep = t != self.ignore_index
            p, t = p[keep], t[keep]
        k = self.num_classes
        if p.numel() and (bool((t < 0).any() | (t >= k).any()) or bool((p < 0).any() | (p >= k).any())):
            raise ValueError(f"labels must lie in [0, {k}) (or equal ignore_index={self.ignore_index})")
        counts = torch.bincount(t * k + p, minlength=k * k).reshape(k, k)
        self.matrix += counts.to("cpu")
        return self

    def merge(self, other: ConfusionMatrix) -> ConfusionMatrix:
        """Add another matrix of the same size in place."""
        if other.num_classes != self.num_classes:
            raise ValueError("cannot merge confusion matrices of different sizes")
        self.matrix += other.matrix
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
        """IoU per class (K,), NaN for classes absent from both prediction and target."""
        tp, fp, fn = self._tp_fp_fn()
        den = tp + fp + fn
        return torch.where(den > 0, tp / den.clamp_min(1), torch.full_like(den, float("nan")))

    def miou(self) -> float | None:
        """Mean IoU over classes present in prediction or target, an in-range ignore class
        excluded; None when no class is present."""
        iou = self.per_class_iou()
        keep = ~torch.isnan(iou)
        if self.ignore_index is not None and 0 <= self.ignore_index < self.num_classes:
            keep[self.ignore_index] = False
        return float(iou[keep].mean()) if bool(keep.any()) else None

    def macro_precision(self) -> float | None:
        """Mean over present classes of tp / (tp + fp), 0 for a class never predicted."""
        tp, fp, fn = self._tp_fp_fn()
        present = (tp + fp + fn) > 0
        if not bool(present.any()):
            return None
        prec = torch.where(tp + fp > 0, tp / (tp + fp).clamp_min(1), torch.zeros_like(tp))
        return float(prec[present].mean())

    def summary(self) -> dict[str, float | None]:
        """{"accuracy", "precision", "miou"} of the accumulated matrix."""
        return {"accuracy": self.accuracy(), "precision": self.macro_precision(), "miou": self.miou()}


def accuracy(pred: torch.Tensor, target: torch.Tensor) -> float:
    """Fraction of equal labels; `pred` may be logits (N, K, ...) or labels of the target's shape."""
    if pred.dim() == target.dim() + 1:
        pred = pred.argmax(1)
    return float((pred == target).double().mean())


def per_sample_accuracy(
    pred: torch.Tensor, target: torch.Tensor, ignore_index: int | None = None
) -> torch.Tensor:
    """Per-sample fraction of correct labels over kept positions: pred/target (N, ...) → (N,) float64.

    A sample with no kept position scores 1 (nothing to get wrong)."""
    if pred.shape != target.shape:
        raise ValueError(f"prediction shape {tuple(pred.shape)} != target shape {tuple(target.shape)}")
    p = pred.reshape(pred.shape[0], -1)
    t = target.reshape(target.shape[0], -1)
    keep = torch.ones_like(t, dtype=torch.bool) if ignore_index is None else t != ignore_index
    correct = ((p == t) & keep).sum(1).double()
    count = keep.sum(1).double()
    return torch.where(count > 0, correct / count.clamp_min(1), torch.ones_like(count))
