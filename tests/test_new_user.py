"""What a new user meets (issue 26): one image label space for datasets and segmenters, and the
small dead ends (help texts, missing runs dir, mixed grayscale/RGB folders)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import nn

from robustbench_lip.config import ModelConfig
from robustbench_lip.data import get_dataset
from robustbench_lip.errors import RlipError
from robustbench_lip.labels import label_offset, labels_from_masks
from robustbench_lip.models import predict_labels
from robustbench_lip.scoring import score
from tests.folder_fixtures import write_seg_folder


class _Oracle(nn.Module):
    """A segmenter that outputs one-hot logits of the true masks of a fixed set of images."""

    def __init__(self, images: torch.Tensor, masks: torch.Tensor, m: int) -> None:
        super().__init__()
        self.images, self.masks, self.m = images.float(), masks.long(), m
        c, h, w = images.shape[1:]
        self.config = ModelConfig("oracle", "segmentation", c, m, (c, h, w), num_mask_classes=m)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idx = [int(((self.images - xi).abs().flatten(1).sum(1)).argmin()) for xi in x]
        return nn.functional.one_hot(self.masks[idx], self.m).permute(0, 3, 1, 2).float() * 7.0


@pytest.mark.parametrize("name", ["folder", "shapes", "lesions"])
def test_perfect_segmenter_gets_every_image_label(tmp_path: Path, name: str) -> None:
    if name == "folder":
        ds = get_dataset("folder", split="test", root=write_seg_folder(tmp_path, n=8), image_size=16)
    else:
        ds = get_dataset(name, split="test", n_test=12, image_size=16, seed=3)
    x, y, m = ds.tensors()
    model = _Oracle(x, m, ds.info.num_mask_classes).eval()
    got = score(model, ds, batch_size=5)
    assert got["miou"] == pytest.approx(1.0)
    assert got["accuracy"] == pytest.approx(1.0), (name, y.tolist())


def test_label_rule_is_one_function() -> None:
    masks = torch.tensor([[[0, 2], [2, 1]], [[0, 0], [0, 0]], [[3, 3], [1, 1]]])
    assert labels_from_masks(masks, 4, 0).tolist() == [2, 0, 1]  # ties → the lower value
    fallback = torch.tensor([[0.0, 0.0, 0.0], [0.0, 0.0, 5.0], [0.0, 0.0, 0.0]])
    assert labels_from_masks(masks, 4, 1, fallback).tolist() == [1, 2, 0]
    assert label_offset(10, 11) == 1 and label_offset(3, 3) == 0
    with pytest.raises(RlipError, match="one label space"):
        label_offset(10, 13)


def test_predict_labels_takes_the_dataset_offset() -> None:
    logits = torch.zeros(1, 3, 2, 2)
    logits[0, 2] = 4.0  # every pixel has mask value 2
    model = _Oracle(torch.zeros(1, 1, 2, 2), logits.argmax(1), 3)
    assert predict_labels(model, torch.zeros(1, 1, 2, 2), offset=0).tolist() == [2]
    assert predict_labels(model, torch.zeros(1, 1, 2, 2), offset=1).tolist() == [1]
