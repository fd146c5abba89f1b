"""The in-memory dataset type shared by every dataset, its collate function and a seeded loader."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import DataLoader, Dataset

from robustbench_lip.config import DatasetInfo
from robustbench_lip.errors import RlipError

Sample = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]
Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]


class RlipDataset(Dataset):
    """Images, labels and optional masks held in memory.

    `ds[i]` → (image float32 (C,H,W) in [0,1], label int64 0-dim, mask int64 (H,W) or None).
    Images are stored as uint8 (value/255) when they are 8-bit images (every built-in and real
    dataset here), else as float32; masks are stored compactly and returned as int64.
    """

    def __init__(
        self,
        info: DatasetInfo,
        images: torch.Tensor,
        labels: torch.Tensor,
        masks: torch.Tensor | None = None,
    ) -> None:
        if images.ndim != 4:
            raise ValueError(f"images must be (N,C,H,W), got shape {tuple(images.shape)}")
        n = images.shape[0]
        if labels.shape != (n,):
            raise ValueError(f"labels must be ({n},), got shape {tuple(labels.shape)}")
        if masks is not None and masks.shape != (n, *images.shape[2:]):
            raise ValueError(f"masks must be ({n},H,W), got shape {tuple(masks.shape)}")
        self.info = info
        self._images = images
        self._labels = labels.to(torch.int64)
        self._masks = masks

    def __len__(self) -> int:
        return self._images.shape[0]

    def _image(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(torch.float32) / 255.0 if x.dtype == torch.uint8 else x.to(torch.float32)

    def __getitem__(self, i: int) -> Sample:
        if not -len(self) <= i < len(self):
            raise IndexError(f"index {i} out of range for a dataset of {len(self)} samples")
        mask = None if self._masks is None else self._masks[i].to(torch.int64)
        return self._image(self._images[i]), self._labels[i].clone(), mask

    def take(self, n: int) -> RlipDataset:
        """The first `n` samples (all of them if there are fewer), with the same info."""
        if isinstance(n, bool) or not isinstance(n, int) or n < 1:
            raise RlipError(f"the number of samples must be an integer ≥ 1, got {n!r}")
        masks = None if self._masks is None else self._masks[:n]
        return RlipDataset(self.info, self._images[:n], self._labels[:n], masks)

    def subset(self, indices: Sequence[int] | torch.Tensor) -> RlipDataset:
        """The samples at `indices` (in that order), with the same info."""
        idx = torch.as_tensor(indices, dtype=torch.long)
        masks = None if self._masks is None else self._masks[idx]
        return RlipDataset(self.info, self._images[idx], self._labels[idx], masks)

    def tensors(self) -> Batch:
        """All samples: images float32 (N,C,H,W) in [0,1], labels int64 (N,), masks int64 (N,H,W) or None."""
        masks = None if self._masks is None else self._masks.to(torch.int64)
        return self._image(self._images), self._labels.clone(), masks

    def uint8_images(self) -> torch.Tensor:
        """Images as uint8 (N,C,H,W) (round(255·x) for float-stored images)."""
        if self._images.dtype == torch.uint8:
            return self._images.clone()
        return (self._images.clamp(0, 1) * 255).round().to(torch.uint8)

    def __repr__(self) -> str:
        c, h, w = self._images.shape[1:]
        masks = self.info.has_masks
        return f"RlipDataset({self.info.name!r}, n={len(self)}, image=({c},{h},{w}), masks={masks})"


def collate(batch: Sequence[Sample]) -> Batch:
    """Stack samples into (images (B,C,H,W), labels (B,), masks (B,H,W) or None)."""
    if not batch:
        raise ValueError("cannot collate an empty batch")
    images = torch.stack([b[0] for b in batch])
    labels = torch.stack([torch.as_tensor(b[1], dtype=torch.int64) for b in batch])
    if any(b[2] is None for b in batch):
        masks = None
    else:
        masks = torch.stack([b[2] for b in batch])  # type: ignore[misc]
    return images, labels, masks


def make_loader(
    ds: Dataset,
    batch_size: int,
    shuffle: bool = False,
    seed: int = 0,
    drop_last: bool = False,
    num_workers: int = 0,
) -> DataLoader:
    """A DataLoader over `ds` yielding `collate` batches; shuffling uses its own generator seeded by `seed`
    (the same seed gives the same order, the global RNG is neither used nor changed)."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise RlipError(f"batch size must be an integer ≥ 1, got {batch_size!r}")
    gen = torch.Generator()
    gen.manual_seed(int(seed))
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle,
        drop_last=drop_last,
        collate_fn=collate,
        generator=gen,
        num_workers=num_workers,
    )


def derived_seed(*parts: Any) -> int:
    """A 63-bit seed derived from `parts` by SHA-256 (stable across processes and platforms)."""
    text = ":".join(str(p) for p in parts).encode("utf-8")
    return int.from_bytes(hashlib.sha256(text).digest()[:8], "little") & ((1 << 63) - 1)


Chunk = tuple[torch.Tensor, torch.Tensor, torch.Tensor]


def generate_chunked(
    name: str,
    chunk: Callable[[int, int, torch.Generator], Chunk],
    chunk_size: int,
    n: int,
    image_size: int,
    seed: int,
    split: str,
) -> Chunk:
    """The first `n` samples of a generated dataset, built in full chunks of `chunk_size` images.

    Chunk c is drawn by `chunk(chunk_size, image_size, generator)` with a generator seeded by
    derived_seed(name, seed, split, image_size, c), so the first n samples never depend on n.
    """
    parts = []
    for c in range((n + chunk_size - 1) // chunk_size):
        g = torch.Generator(device="cpu")
        g.manual_seed(derived_seed(name, seed, split, image_size, c))
        parts.append(chunk(chunk_size, image_size, g))
    imgs, labels, masks = zip(*parts, strict=True)
    return torch.cat(imgs)[:n], torch.cat(labels)[:n], torch.cat(masks)[:n]


def check_int(name: str, value: Any, lo: int, hi: int | None = None) -> int:
    """Validate an integer option in [lo, hi]; anything else is an RlipError naming the option."""
    if isinstance(value, bool) or not isinstance(value, int):
        try:
            if isinstance(value, str) and value.strip().lstrip("-").isdigit():
                value = int(value)
            else:
                raise ValueError
        except ValueError:
            raise RlipError(f"option {name} must be an integer, got {value!r}") from None
    if value < lo or (hi is not None and value > hi):
        rng = f"≥ {lo}" if hi is None else f"between {lo} and {hi}"
        raise RlipError(f"option {name} must be {rng}, got {value}")
    return int(value)


def check_options(dataset: str, options: dict[str, Any], allowed: Sequence[str]) -> None:
    """Unknown option names are an RlipError listing the accepted ones."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise RlipError(
            f"dataset {dataset!r} has no option {', '.join(unknown)} "
            f"(accepted: {', '.join(allowed) or 'none'})"
        )
