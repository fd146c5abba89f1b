"""Batched Monte Carlo sampling under Gaussian noise for randomized smoothing.

Noise for many copies of one or several images goes through the model in one forward of up to
`batch_size` inputs; there is no Python loop per noise sample. Image m of a call draws its noise from
its own generator (on the model's device) seeded by `image_seed(seed, index_m, phase)`, so an image's
samples do not depend on which other images share its batches; the global RNG is never used.

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
    """A decision rule plus the number of classes it produces (inferred from the first output)."""

    def __init__(self, rule: Rule, num_classes: int | None) -> None:
        if isinstance(rule, str) and rule not in RULES:
            raise RlipError(f"unknown decision rule {rule!r}; expected {', '.join(RULES)} or a callable")
        self.rule = rule
        self.num_classes = num_classes

    def _labels(self, out: torch.Tensor) -> torch.Tensor:
        rule = self.rule
        if rule == "auto":
            rule = "threshold" if out.dim() >= 2 and out.shape[1] == 1 else "argmax"
        if callable(rule):
            return rule(out)
        if rule == "argmax":
            if self.num_classes is None:
                self.num_classes = int(out.shape[1])
            return out.argmax(1)
        if rule == "threshold":
            if out.dim() < 2 or out.shape[1] != 1:
                raise RlipError(f"the threshold rule needs one output channel, got shape {tuple(out.shape)}")
            if self.num_classes is None:
                self.num_classes = 2
            return (out[:, 0] > 0).long()
        return out  # "labels"

    def __call__(self, out: torch.Tensor) -> torch.Tensor:
        """Integer labels (B, ...) in [0, num_classes) (checked)."""
        labels = self._labels(out)
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


def noisy_chunks(
    images: torch.Tensor, num: int, sigma: float, gens: Sequence[torch.Generator], batch_size: int
) -> Iterator[tuple[torch.Tensor, torch.Tensor, int]]:
    """Yield (x + σ·noise (B, C, H, W), image index (B,) int64, samples done) over `num` noisy copies of
    each image, in order image 0's copies, image 1's, ..., at most `batch_size` per chunk."""
    m_total = images.shape[0]
    total = m_total * num
    buf = torch.empty((min(total, batch_size), *images.shape[1:]), device=images.device, dtype=images.dtype)
    for start in range(0, total, batch_size):
        end = min(start + batch_size, total)
        x = buf[: end - start]
        sizes = []
        for m in range(start // num, (end - 1) // num + 1):
            a, b = max(start, m * num) - start, min(end, (m + 1) * num) - start
            x[a:b].normal_(generator=gens[m]).mul_(sigma).add_(images[m])
            sizes.append(b - a)
        first = start // num
        idx = torch.repeat_interleave(
            torch.arange(first, first + len(sizes), device=images.device),
            torch.tensor(sizes, device=images.device),
        )
        yield x, idx, end


def sample_votes(
    forward: Forward,
    decision: Decision,
    images: torch.Tensor,
    num: int,
    sigma: float,
    gens: Sequence[torch.Generator],
    batch_size: int,
    progress: Progress | None = None,
) -> torch.Tensor:
    """Vote counts (M, K, *S) int64: how often each class won (per pixel for S = (H, W)) among `num`
    noisy copies of each of the M images."""
    counts: torch.Tensor | None = None
    total = images.shape[0] * num
    for x, idx, done in noisy_chunks(images, num, sigma, gens, batch_size):
        labels = decision(forward(x))
        k = int(decision.num_classes)  # type: ignore[arg-type]
        spatial = tuple(labels.shape[1:])
        p = labels[0].numel()
        if counts is None:
            counts = torch.zeros((images.shape[0], k, *spatial), dtype=torch.int64, device=images.device)
        first, last = int(idx[0]), int(idx[-1])
        flat = ((idx - first).view(-1, 1) * k + labels.reshape(len(idx), p)) * p
        flat = flat + torch.arange(p, device=flat.device)
        span = last - first + 1
        counts[first : last + 1] += torch.bincount(flat.reshape(-1), minlength=span * k * p).view(
            span, k, *spatial
        )
        if progress is not None:
            progress(done, total)
    assert counts is not None
    return counts


def sample_hits(
    forward: Forward,
    decision: Decision,
    images: torch.Tensor,
    targets: torch.Tensor,
    num: int,
    sigma: float,
    gens: Sequence[torch.Generator],
    batch_size: int,
    progress: Progress | None = None,
) -> torch.Tensor:
    """How often the label equals `targets` (M, *S) (per image, per pixel) among `num` noisy copies of
    each image: (M, *S) int64."""
    hits = torch.zeros(targets.shape, dtype=torch.int64, device=images.device)
    total = images.shape[0] * num
    for x, idx, done in noisy_chunks(images, num, sigma, gens, batch_size):
        labels = decision(forward(x))
        if labels.shape[1:] != targets.shape[1:]:
            raise RlipError(f"label shape changed between samples: {tuple(labels.shape[1:])}")
        hits.index_add_(0, idx, (labels == targets[idx]).long())
        if progress is not None:
            progress(done, total)
    return hits
