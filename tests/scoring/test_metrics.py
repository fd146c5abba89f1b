"""metrics.ConfusionMatrix against torchmetrics on random predictions (with ignore indices)."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.classification import (
    MulticlassAccuracy,
    MulticlassJaccardIndex,
    MulticlassPrecision,
)

from robustbench_lip.metrics import ConfusionMatrix, accuracy, per_sample_accuracy

K = 6


def _batches(
    seed: int, ignore_index: int | None, n_batches: int = 3
) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Random (pred, target) pixel batches; class 5 never appears (absent from both), class 4 only
    in predictions, some targets set to the ignore index."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n_batches):
        target = torch.randint(0, 4, (2, 7, 9), generator=g)
        pred = torch.randint(0, 5, (2, 7, 9), generator=g)
        if ignore_index is not None:
            drop = torch.rand(target.shape, generator=g) < 0.2
            target = torch.where(drop, torch.full_like(target, ignore_index), target)
        out.append((pred, target))
    return out


@pytest.mark.parametrize("ignore_index", [None, 255, 0, 2])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_against_torchmetrics(ignore_index: int | None, seed: int) -> None:
    cm = ConfusionMatrix(K, ignore_index=ignore_index)
    jac = MulticlassJaccardIndex(num_classes=K, average="macro", ignore_index=ignore_index)
    prec = MulticlassPrecision(num_classes=K, average="macro", ignore_index=ignore_index)
    acc = MulticlassAccuracy(num_classes=K, average="micro", ignore_index=ignore_index)
    for pred, target in _batches(seed, ignore_index):
        cm.update(pred, target)
        jac.update(pred, target)
        prec.update(pred, target)
        acc.update(pred, target)
    assert cm.miou() == pytest.approx(float(jac.compute()), abs=1e-6)
    assert cm.macro_precision() == pytest.approx(float(prec.compute()), abs=1e-6)
    assert cm.accuracy() == pytest.approx(float(acc.compute()), abs=1e-6)


def test_in_range_ignore_class_conventions() -> None:
    """torchmetrics drops an in-range ignore class from the mIoU but not from macro precision
    (where a prediction of it is a false positive); the module docstring documents this."""
    pred = torch.tensor([0, 0, 1, 1, 2])
    target = torch.tensor([0, 1, 1, 1, 2])
    cm = ConfusionMatrix(3, ignore_index=0).update(pred, target)
    # target 0 dropped; pixels: (p0,t1), (p1,t1), (p1,t1), (p2,t2)
    iou_1, iou_2 = 2 / 3, 1.0
    assert cm.miou() == pytest.approx((iou_1 + iou_2) / 2)
    assert cm.macro_precision() == pytest.approx((0.0 + 1.0 + 1.0) / 3)
    assert cm.accuracy() == pytest.approx(3 / 4)


def test_absent_classes_excluded_and_empty_is_none() -> None:
    cm = ConfusionMatrix(4)
    assert cm.miou() is None and cm.macro_precision() is None and cm.accuracy() is None
    cm.update(torch.tensor([0, 1]), torch.tensor([0, 0]))
    assert torch.isnan(cm.per_class_iou()[2:]).all()
    assert cm.miou() == pytest.approx((0.5 + 0.0) / 2)
    assert cm.macro_precision() == pytest.approx((1.0 + 0.0) / 2)


def test_out_of_range_labels_rejected() -> None:
    with pytest.raises(ValueError, match="labels"):
        ConfusionMatrix(3).update(torch.tensor([3]), torch.tensor([0]))
    with pytest.raises(ValueError, match="shape"):
        ConfusionMatrix(3).update(torch.tensor([1, 2]), torch.tensor([0]))


def test_merge_equals_single_pass() -> None:
    (p1, t1), (p2, t2) = _batches(5, 255, n_batches=2)
    a = ConfusionMatrix(K, 255).update(p1, t1).merge(ConfusionMatrix(K, 255).update(p2, t2))
    b = ConfusionMatrix(K, 255).update(torch.cat([p1, p2]), torch.cat([t1, t2]))
    assert torch.equal(a.matrix, b.matrix)


def test_accuracy_helpers() -> None:
    logits = torch.tensor([[2.0, 1.0], [0.0, 3.0], [1.0, 0.0]])
    assert accuracy(logits, torch.tensor([0, 1, 1])) == pytest.approx(2 / 3)
    pred = torch.tensor([[0, 1, 1], [2, 2, 2]])
    target = torch.tensor([[0, 0, 255], [255, 255, 255]])
    assert per_sample_accuracy(pred, target, 255).tolist() == [0.5, 1.0]
    assert per_sample_accuracy(pred, target).tolist() == pytest.approx([1 / 3, 0.0])
