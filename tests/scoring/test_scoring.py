"""scoring: score() against torchmetrics on per-image predictions, batch-size
invariance, the n limit, and that the model's train/eval modes are restored."""

from __future__ import annotations

import pytest
import torch
from torchmetrics.classification import MulticlassAccuracy, MulticlassJaccardIndex, MulticlassPrecision

from robustbench_lip.data import get_dataset
from robustbench_lip.models import create_model_for, predict_labels, predict_mask
from robustbench_lip.scoring import Level, Scores, score


@pytest.fixture(scope="module")
def setup():
    ds = get_dataset("shapes", split="test", n_test=10, image_size=16, seed=0)
    torch.manual_seed(0)
    model = create_model_for("mresnet18_tiny", ds.info)
    return model.eval(), ds


def test_score_matches_torchmetrics(setup) -> None:
    model, ds = setup
    x, y, m = ds.tensors()
    with torch.no_grad():
        labels = torch.cat([predict_labels(model, x[i : i + 1]) for i in range(len(ds))])
        masks = torch.cat([predict_mask(model, x[i : i + 1]) for i in range(len(ds))])
    k, km = ds.info.num_classes, ds.info.num_mask_classes
    expected = {
        "accuracy": float(MulticlassAccuracy(k, average="micro")(labels, y)),
        "precision": float(MulticlassPrecision(k, average="macro")(labels, y)),
        "miou": float(MulticlassJaccardIndex(km, average="macro")(masks, m)),
    }
    got = score(model, ds, batch_size=3)
    assert got == pytest.approx(expected, abs=1e-6)
    assert score(model, ds, batch_size=256) == got  # batching does not change a confusion matrix


def test_score_first_n_and_modes_restored(setup) -> None:
    model, ds = setup
    model.train()
    try:
        part = score(model, ds, n=4)
        assert model.training  # restored
    finally:
        model.eval()
    assert part == score(model, ds.take(4))
    with pytest.raises(ValueError, match="num_mask"):
        Scores(Level.PIXEL, None, None)


def test_pixel_level_scores_count_pixels() -> None:
    pred = torch.tensor([[[0, 1], [1, 1]]])
    target = torch.tensor([[[0, 1], [0, 1]]])
    s = Scores(Level.PIXEL, None, 2).update(None, torch.zeros(1), pred, target).summary()
    assert s["accuracy"] == pytest.approx(3 / 4) and s["miou"] == pytest.approx((1 / 2 + 2 / 3) / 2)
