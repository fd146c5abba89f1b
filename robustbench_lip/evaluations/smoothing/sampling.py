"""Batched Monte Carlo sampling under Gaussian noise for randomized smoothing.

Noise for many copies of one or several images goes through the model in one forward of up to
`batch_size` inputs; there is no Python loop per noise sample, and the sampling phases (CERTIFY's
n0 selection and n estimation samples) share batches, so only the very last batch is partial. Image m
of a call draws each phase's noise from its own generator (on the model's device) seeded by
`image_seed(seed, index_m, phase)`; the global RNG is never used. Same seed, batch size, device and
grouping of images → the same result.

A *decision rule* turns the output of `forward` on a batch (B, ...) into integer labels: (B,) for a
classifier, (B, H, W) for a segmenter. Built-in rules (or pass a callable out → labels):
- "argmax": out.argmax(1) — logits (B, K) or (B, K, H, W); K = out.shape[1];
- "threshold": out[:, 0] > 0 — a one-channel (B, 1, H, W) image-to-image output; K = 2;
- "auto": "threshold" for one output channel, else "argmax";
- "labels": the output already holds integer labels (e.g. forward = a model's predict_mask).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import nn

from robustbench_lip.data.base import derived_seed
from robustbench_lip.device import preserved_modes, preserved_rng, set_eval
from robustbench_lip.errors import RlipError

Rule = str | Callable[[torch.Tensor], torch.Tensor]
Forward = Callable[[torch.Tensor], torch.Tensor]
Progress = Callable[[int, int], None]
RULES: tuple[str, ...] = ("auto", "argmax", "threshold", "labels")


def image_seed(seed: int, index: int, phase: str) -> int:
    """Seed of the generator of image `index` (its position in the dataset) in one sampling phase."""
    return derived_seed("smoothing", int(seed), int(index), phase)


def check_positive_int(name: str, value: int) -> int:
    """An integer ≥ 1, else an RlipError naming the option."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise RlipError(f"{name} must be an integer ≥ 1, got {value!r}")
    return value


def check_sigma(sigma: float) -> float:
    """The noise level σ must be a finite positive number (pixel units)."""
    s = float(sigma)
    if not (s > 0 and s < float("inf")):
        raise RlipError(f"sigma must be a positive number (noise std in [0, 1] pixel units), got {sigma!r}")
    return s


class Decision:
    """A decision rule plus the number of classes K it produces (inferred from the first output).

    Calling it gives labels (B, ...) in [0, K): int64, or bool for the threshold rule (K = 2)."""

    def __init__(self, rule: Rule, num_classes: int | None) -> None:
        if isinstance(rule, str) and rule not in RULES:
            raise RlipError(f"unknown decision rule {rule!r}; expected {', '.join(RULES)} or a callable")
        self.rule = rule
        self.num_classes = num_classes

    def _classes(self, k: int, why: str) -> None:
        if self.num_classes is None:
            self.num_classes = k
        elif self.num_classes != k:
            raise RlipError(f"num_classes={self.num_classes} but the {why} gives {k} classes")

    def __call__(self, out: torch.Tensor) -> torch.Tensor:
        rule = self.rule
        if rule == "auto":
            rule = "threshold" if out.dim() >= 2 and out.shape[1] == 1 else "argmax"
        if rule == "argmax":
            self._classes(int(out.shape[1]), f"argmax over {out.shape[1]} output channels")
            return out.argmax(1)
        if rule == "threshold":
            if out.dim() < 2 or out.shape[1] != 1:
                raise RlipError(f"the threshold rule needs one output channel, got shape {tuple(out.shape)}")
            self._classes(2, "threshold rule")
            return out[:, 0] > 0
        labels = rule(out) if callable(rule) else out
        if labels.dtype == torch.bool:
            labels = labels.long()
        if labels.dtype.is_floating_point or labels.dtype.is_complex or labels.shape[:1] != out.shape[:1]:
            raise RlipError(
                "the decision rule must return integer labels (B, ...), got "
                f"{labels.dtype} of shape {tuple(labels.shape)}"
            )
        if self.num_classes is None:
            raise RlipError("pass num_classes: it cannot be inferred for this decision rule")
        if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= self.num_classes):
            raise RlipError(f"the decision rule returned labels outside [0, {self.num_classes})")
        return labels.long()


def model_device(model: nn.Module, device: str | torch.device | None) -> torch.device:
    """`device` if given, else the device of the model's first parameter or buffer (CPU if none)."""
    if device is not None:
        return torch.device(device)
    for t in (*model.parameters(), *model.buffers()):
        return t.device
    return torch.device("cpu")


@contextlib.contextmanager
def isolated(model: nn.Module) -> Iterator[None]:
    """Eval mode and no grad inside; the model's train/eval flags and the global RNGs restored on exit."""
    with preserved_modes(model), preserved_rng(), torch.no_grad():
        set_eval(model)
        yield


def as_batch(images: torch.Tensor, device: torch.device) -> torch.Tensor:
    """(C, H, W) or (M, C, H, W) images → float32 (M, C, H, W) on `device`."""
    if images.dim() == 3:
        images = images.unsqueeze(0)
    if images.dim() < 2:
        raise RlipError(f"images must be (C, H, W) or (M, C, H, W), got shape {tuple(images.shape)}")
    return images.to(device=device, dtype=torch.float32)


def generators(seed: int, indices: Sequence[int], phase: str, device: torch.device) -> list[torch.Generator]:
    """One generator per image, on `device`, seeded by image_seed(seed, index, phase)."""
    return [torch.Generator(device=device).manual_seed(image_seed(seed, i, phase)) for i in indices]


Phase = tuple[int, Sequence[torch.Generator]]  # (samples per image, one generator per image)
Segment = tuple[int, int, int, int]  # (image, phase, first row, end row) within a chunk


def noisy_chunks(
    images: torch.Tensor, phases: Sequence[Phase], sigma: float, batch_size: int
) -> Iterator[tuple[torch.Tensor, list[Segment], int]]:
    """Yield (x + σ·noise (B, C, H, W), its segments, samples done so far).

    Image m's stream is phase 0's samples (drawn from phase 0's generator m), then phase 1's, ...;
    the streams of images 0, 1, ... follow each other and are cut into chunks of `batch_size`, so
    the phases and images share forward batches. A segment names the rows of one (image, phase)."""
    bounds = [0]
    for count, _ in phases:
        bounds.append(bounds[-1] + count)
    num, total = bounds[-1], images.shape[0] * bounds[-1]
    buf = torch.empty((min(total, batch_size), *images.shape[1:]), device=images.device, dtype=images.dtype)
    for start in range(0, total, batch_size):
        end = min(start + batch_size, total)
        x = buf[: end - start]
        segs: list[Segment] = []
        for m in range(start // num, (end - 1) // num + 1):
            for ph, (_, gens) in enumerate(phases):
                lo, hi = max(start, m * num + bounds[ph]) - start, min(end, m * num + bounds[ph + 1]) - start
                if hi > lo:
                    x[lo:hi].normal_(0.0, sigma, generator=gens[m]).add_(images[m])
                    segs.append((m, ph, lo, hi))
        yield x, segs, end


def _histogram(labels: torch.Tensor, k: int) -> torch.Tensor:
    """Per-position class counts over the rows of labels (R, *S): (K, *S) int64."""
    if k == 2:
        ones = labels.sum(0, dtype=torch.int64)
        return torch.stack([labels.shape[0] - ones, ones])
    p = labels[0].numel()
    flat = labels.reshape(labels.shape[0], p) * p + torch.arange(p, device=labels.device)
    return torch.bincount(flat.reshape(-1), minlength=k * p).view(k, *labels.shape[1:])


def sample_votes(
    forward: Forward,
    decision: Decision,
    images: torch.Tensor,
    phases: Sequence[Phase],
    sigma: float,
    batch_size: int,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Vote counts (M, n_phases, K, *S) int64: how often each class won (per pixel for S = (H, W))
    among each phase's noisy copies of each of the M images."""
    counts: torch.Tensor | None = None
    total = images.shape[0] * sum(c for c, _ in phases)
    for x, segs, done in noisy_chunks(images, phases, sigma, batch_size):
        labels = decision(forward(x))
        k = int(decision.num_classes)  # type: ignore[arg-type]
        if counts is None:
            shape = (images.shape[0], len(phases), k, *labels.shape[1:])
            counts = torch.zeros(shape, dtype=torch.int64, device=images.device)
        elif counts.shape[3:] != labels.shape[1:]:
            raise RlipError(f"label shape changed between samples: {tuple(labels.shape[1:])}")
        for m, ph, lo, hi in segs:
            counts[m, ph] += _histogram(labels[lo:hi], k)
        if progress is not None:
            progress(done, total)
    assert counts is not None
    return counts
