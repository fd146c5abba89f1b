"""`SEARunner`: SEA as one cell of an evaluation — every member of sea.py's `extended` preset on the
cell's base stream, plus the evaluation's own PGD-type points handed over (see evaluations.attacks.protocol).

Seeds: the attack `a` at budget ε draws from `attack_seed(seed, ε, a)` =
`stream_seed(cell_seed(seed, ε), a)`; SEA's members from the cell's base stream `cell_seed(seed, ε)`
(each member adds its own name, so it draws the same stream as the single attack of that name).
"""

from __future__ import annotations

from typing import Any

import torch

from robustbench_lip.attacks.base import fast_argmax
from robustbench_lip.attacks.eps import format_eps
from robustbench_lip.attacks.rng import stream_seed
from robustbench_lip.attacks.sea import SEA, image_stats, sea_preset, select_per_image, worst_case_miou
from robustbench_lip.errors import RlipError

#: SEA's members in the pipeline (sea.py's `extended` preset: every loss, and PGD, SegPGD, CosPGD).
SEA_MEMBERS: dict[str, Any] = sea_preset("extended")


def cell_seed(seed: int, eps: float) -> int:
    """Base stream of every attack at budget `eps` (an attack adds its name: `attack_seed`)."""
    return stream_seed(seed, format_eps(eps))


def attack_seed(seed: int, eps: float, name: str) -> int:
    """The seed of attack `name` at `eps`: independent of which other attacks run."""
    return stream_seed(cell_seed(seed, eps), name)


class SEARunner:
    """`runner(x, y, m) -> adversarial x` for the cell (`sea`, ε); keeps every member's per-image
    intersections and unions so that `worst_miou()` can take SEA's greedy worst case at the end.

    shared: PGD-type members that the evaluation runs anyway on the same masks with the same streams
    and step size; their points are handed over with `offer(name, adv)` before the call instead of
    being computed twice (identical points, see the module docstring). outside: further members
    {name: runner (x, y, m) -> adv} — on a classifier scored on labels, `pgd(cls)`, the image-label
    PGD of the evaluation (its point also moves the CAM mask); an offered point replaces the call."""

    def __init__(
        self, model: torch.nn.Module, eps: float, norm: str, steps: int, seed: int, restarts: int,
        ignore_index: int | None, pixel_fn: Any, shared: tuple[str, ...] = (),
        outside: dict[str, Any] | None = None,
    ) -> None:  # fmt: skip
        base = cell_seed(seed, eps)
        seeds = [base] + [stream_seed(base, "restart", r) for r in range(1, int(restarts))]
        self.eps, self.ignore_index = float(eps), ignore_index
        self.shared = tuple(e for e in SEA_MEMBERS["extra"] if e in shared)
        own = tuple(e for e in SEA_MEMBERS["extra"] if e not in self.shared)
        self.seas = [
            SEA(model, eps, norm, steps, s, SEA_MEMBERS["losses"], own if r == 0 else SEA_MEMBERS["extra"],
                ignore_index=ignore_index, logits_fn=pixel_fn)
            for r, s in enumerate(seeds)
        ]  # fmt: skip
        self.names = [n if r == 0 else f"{n}#{r}" for r, s in enumerate(self.seas) for n in s.names]
        self.outside = dict(outside or {})
        self.names += [*self.shared, *self.outside]
        self.offered: dict[str, torch.Tensor] = {}
        self.inter: list[torch.Tensor] = []
        self.union: list[torch.Tensor] = []

    def offer(self, name: str, adv: torch.Tensor) -> None:
        """The evaluation's own point of a shared member for the coming call (ignored otherwise)."""
        if name in self.shared or name in self.outside:
            self.offered[name] = adv
        elif f"{name}(cls)" in self.outside:
            self.offered[f"{name}(cls)"] = adv

    def _shared_stats(
        self, x: torch.Tensor, y: torch.Tensor, m: torch.Tensor
    ) -> list[tuple[torch.Tensor, ...]]:
        """(adv, accuracy, mIoU, inter, union) of each shared / outside member (offered, or run)."""
        out = []
        for name in (*self.shared, *self.outside):
            if name not in self.offered and name not in self.outside:
                raise RlipError(f"sea: the point of {name} was not handed over")  # an evaluation bug
            adv = self.offered.pop(name) if name in self.offered else self.outside[name](x, y, m)
            with torch.no_grad():
                logits = self.seas[0].logits_fn(adv)
            stats = image_stats(fast_argmax(logits, 1), m, logits.shape[1], self.ignore_index)
            out.append((adv, *stats))
        return out

    def __call__(self, x: torch.Tensor, y: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
        if m is None:
            raise RlipError("sea needs masks to attack")
        if self.eps == 0:
            self.offered.clear()
            return x.detach().clone().clamp(0, 1)
        runs = [s.run(x, m) for s in self.seas]
        shared = self._shared_stats(x, y, m)
        self.inter.append(torch.cat([r.inter for r in runs] + [sh[3].unsqueeze(0) for sh in shared]))
        self.union.append(torch.cat([r.union for r in runs] + [sh[4].unsqueeze(0) for sh in shared]))
        cols = torch.arange(x.shape[0])
        # candidates: each SEA run's own per-image choice, and each shared member
        acc = torch.stack([r.accuracy[r.chosen, cols] for r in runs] + [sh[1] for sh in shared])
        miou = torch.stack([r.miou[r.chosen, cols] for r in runs] + [sh[2] for sh in shared])
        pick = select_per_image(acc, miou, "accuracy").to(x.device)
        advs = torch.stack([r.adv for r in runs] + [sh[0].to(x.dtype) for sh in shared])
        return advs[pick, cols.to(x.device)]

    def worst_miou(self) -> float | None:
        """SEA's greedy worst-case dataset mIoU over the members (None before any image / at ε = 0)."""
        if not self.inter:
            return None
        _, value = worst_case_miou(torch.cat(self.inter, 1), torch.cat(self.union, 1), self.ignore_index)
        return None if value != value else value
