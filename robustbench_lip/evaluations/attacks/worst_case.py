"""The worst case over the attacks of an evaluation (attack "worst"; as SEA, Croce et al. 2024): per
image, the adversarial example of the attack that hurts most is kept — for classifiers with
objective "cls" the first one that flips the label (ties: lowest pixel accuracy of the mask),
otherwise the one with the lowest per-image pixel accuracy (ties: a flipped image label)."""

from __future__ import annotations

import torch

from robustbench_lip.evaluations.attacks.plan import Plan
from robustbench_lip.metrics import per_sample_accuracy

Pred = tuple[torch.Tensor | None, torch.Tensor | None]
"""(image labels (N,) or None, masks (N, H, W) or None) predicted for a batch."""


def harm(
    plan: Plan, pred: Pred, y: torch.Tensor, m: torch.Tensor | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """(primary, tie-break) harm per image: label flip and pixel error, in the plan's order."""
    lbl, mask = pred
    wrong = (
        (lbl != y).double()
        if lbl is not None
        else torch.zeros(y.shape[0], dtype=torch.float64, device=y.device)
    )
    perr = (
        (1 - per_sample_accuracy(mask, m, plan.ignore_index))
        if mask is not None and m is not None
        else torch.zeros_like(wrong)
    )
    return (wrong, perr) if plan.image_objective else (perr, wrong)


class Worst:
    """Per image, the predictions of the most harmful attack so far (see the module docstring)."""

    def __init__(self) -> None:
        self.harm: tuple[torch.Tensor, torch.Tensor] | None = None
        self.pred: list[torch.Tensor | None] = [None, None]

    def offer(self, h: tuple[torch.Tensor, torch.Tensor], pred: Pred) -> None:
        if self.harm is None:
            self.harm, self.pred = h, list(pred)
            return
        best = self.harm
        better = (h[0] > best[0]) | ((h[0] == best[0]) & (h[1] > best[1]))
        self.harm = (torch.where(better, h[0], best[0]), torch.where(better, h[1], best[1]))
        self.pred = [
            None if p is None else torch.where(better.view(-1, *([1] * (p.dim() - 1))), p, q)
            for p, q in zip(pred, self.pred, strict=True)
        ]
