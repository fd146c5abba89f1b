"""The one convention linking a dataset's image labels to its mask values (datasets and models use it).

A dataset with masks has K image classes and M mask values, 0 = background; offset = M − K is 0 or 1:
- offset 1 (`shapes`, `coco`): image class k ↔ mask value k + 1; every image shows some class;
- offset 0 (`lesions`, `folder`): image class k ↔ mask value k; class 0 means "nothing": an image
  whose mask is all background.
The image label of a mask is (most frequent non-background value, ties → the lower one) − offset;
an all-background mask has label 0 with offset 0, and no label with offset 1 (a dataset skips such
images; a model's prediction falls back to its largest mean foreground score).
"""

from __future__ import annotations

import torch

from robustbench_lip.errors import RlipError


def label_offset(num_classes: int, num_mask_classes: int) -> int:
    """M − K for K image classes and M mask values (background included): 0 or 1, else an error."""
    offset = int(num_mask_classes) - int(num_classes)
    if offset not in (0, 1):
        raise RlipError(
            f"{num_classes} image classes and {num_mask_classes} mask values do not fit one label space: "
            "mask value k + 1 must name image class k (M = K + 1), or value k class k (M = K)"
        )
    return offset


def default_offset(num_mask_classes: int) -> int:
    """The offset of a segmenter whose image class count is unknown: 0 for a binary mask (the label
    says whether any pixel is foreground, as `lesions`), else 1 (as `shapes` and `coco`)."""
    return 0 if int(num_mask_classes) == 2 else 1


def labels_from_counts(
    counts: torch.Tensor, offset: int, fallback: torch.Tensor | None = None
) -> torch.Tensor:
    """Image labels (N,) int64 from per-value pixel counts (N, M) (column 0 = background).

    All-background rows get 0 (offset 0) or argmax of `fallback` (N, M − 1), scores of the
    foreground values (offset 1; without it such a row is an error)."""
    fg = counts[:, 1:].to(torch.float64)
    empty = fg.sum(dim=1) == 0
    labels = fg.argmax(dim=1) + 1 - offset
    if offset == 0:
        return torch.where(empty, torch.zeros_like(labels), labels)
    if bool(empty.any()):
        if fallback is None:
            raise RlipError("an all-background mask has no image label when mask value k + 1 names class k")
        labels = torch.where(empty, fallback.argmax(dim=1), labels)
    return labels


def labels_from_masks(
    masks: torch.Tensor, num_mask_classes: int, offset: int, fallback: torch.Tensor | None = None
) -> torch.Tensor:
    """Image labels (N,) int64 of label masks (N, H, W) with values in 0..M−1 (see `labels_from_counts`)."""
    m = int(num_mask_classes)
    counts = torch.nn.functional.one_hot(masks.long().flatten(1), m).sum(dim=1)
    return labels_from_counts(counts, offset, fallback)
