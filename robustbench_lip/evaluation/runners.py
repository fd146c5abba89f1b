"""The attack behind each (ε, attack) cell of an evaluation: per-attack RNG streams, SEA, protocols.

RNG streams: the attack `a` at budget ε draws its random starts from the stream
`stream_seed(stream_seed(seed, ε text), a)` (attacks.rng), never from a counter shared with the
other attacks — so its figure is the same whether it runs alone or beside others (`--attack all`).

`sea` (SEA, Croce, Singh & Hein 2023, attacks.sea) runs the members of sea.py's `extended` preset —
APGD with the four SEA losses, and PGD, SegPGD, CosPGD — with the cell's base stream
`stream_seed(seed, ε text)`, so each of its PGD-type members draws exactly the stream the single
attack of that name draws in the same evaluation (at the default step size, 2.5·ε/steps): SEA's
figures are then ≤ theirs. When they run in the same evaluation (`--attack all,sea`), SEA runs last
and takes over their points instead of computing them again. On a classifier scored on image
labels SEA also has the evaluation's image-label PGD as a member, `pgd(cls)` (same stream). Per
image it keeps the member with the lowest pixel accuracy (its accuracy is ≤ every member's); its
mIoU is the lower of that selection's and SEA's greedy worst case of the dataset mIoU over the
members (`worst_case_miou`, ≤ every member's mIoU). `restarts` R > 1 repeats the ensemble with the
streams (seed, ε, "restart", r), r = 1..R−1; the worst case is taken over every member of every
restart. All of it on the same images.

Protocol `standard` (the leaderboard's robust column): classifiers scored on image labels get
torchattacks' AutoAttack, standard version (APGD-CE, APGD-T, FAB-T: 100 iterations, 1 restart;
Square: 5000 queries); masks — segmenters, and a classifier's CAM masks when the dataset has
masks — get `sea`.
"""

from __future__ import annotations

from typing import Any

import torch

from robustbench_lip.attacks import PIXEL_ONLY
from robustbench_lip.attacks.base import default_alpha, fast_argmax
from robustbench_lip.attacks.classification import ClassificationAttack
from robustbench_lip.attacks.eps import format_eps
from robustbench_lip.attacks.rng import stream_seed
from robustbench_lip.attacks.sea import SEA, image_stats, sea_preset, select_per_image, worst_case_miou
from robustbench_lip.attacks.segmentation import SegmentationAttack
from robustbench_lip.errors import RlipError
from robustbench_lip.records.schema import Task

#: Attack protocols of `--preset`.
PROTOCOLS: tuple[str, ...] = ("standard",)
#: Attacks that run on the masks (pixel logits) of a model: SegPGD, CosPGD and SEA.
MASK_ONLY: tuple[str, ...] = (*PIXEL_ONLY, "sea")
#: torchattacks AutoAttack(version="standard"): iterations of APGD-CE / APGD-T / FAB-T, restarts.
AA_STEPS, AA_RESTARTS = 100, 1
#: SEA's members in the pipeline (sea.py's `extended` preset: every loss, and PGD, SegPGD, CosPGD).
SEA_MEMBERS: dict[str, Any] = sea_preset("extended")


def cell_seed(seed: int, eps: float) -> int:
    """Base stream of every attack at budget `eps` (an attack adds its name: `attack_seed`)."""
    return stream_seed(seed, format_eps(eps))


def attack_seed(seed: int, eps: float, name: str) -> int:
    """The seed of attack `name` at `eps`: independent of which other attacks run."""
    return stream_seed(cell_seed(seed, eps), name)


def protocol_attacks(protocol: str, task: Task, pixel_ok: bool, objective: str) -> list[str]:
    """The attacks of a protocol for this model: AutoAttack on image labels (classifiers, objective
    cls), SEA on masks (segmenters; classifiers whose dataset has masks and that segment)."""
    key = str(protocol).lower()
    if key not in PROTOCOLS:
        raise RlipError(f"unknown preset {protocol!r}; expected one of {', '.join(PROTOCOLS)}")
    names = ["autoattack"] if task is Task.CLASSIFICATION and objective == "cls" else []
    if pixel_ok or task is Task.SEGMENTATION:
        names.append("sea")
    return names


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


def offer(runners: dict[tuple[float, str], Any], eps: float, name: str, adv: torch.Tensor) -> None:
    """Hand the point of attack `name` at `eps` to the cell's SEA runner, if any (it runs last)."""
    sea = runners.get((eps, "sea"))
    if isinstance(sea, SEARunner):
        sea.offer(name, adv)


def make_runner(model: torch.nn.Module, plan: Any, name: str, eps: float, pixel_fn: Any) -> Any:
    """The runner `(x, y, m) -> adversarial x` of the cell (`name`, `eps`) of an evaluation `plan`."""
    s = attack_seed(plan.seed, eps, name)
    if name == "sea":
        # the evaluation's own PGD-type points are SEA's members when they are the same attacks
        same = [a for a in plan.names if a in PIXEL_ONLY or (a == "pgd" and not plan.image_objective)]
        outside = {"pgd(cls)": make_runner(model, plan, "pgd", eps, pixel_fn)} if plan.image_objective else {}
        return SEARunner(
            model, eps, plan.norm, plan.steps, plan.seed, plan.restarts, plan.ignore_index, pixel_fn,
            tuple(same) if plan.alpha is None else (), outside,
        )
    a = plan.alpha if plan.alpha is not None else default_alpha(eps, plan.steps)
    if plan.image_objective and name not in PIXEL_ONLY:
        cfg = getattr(model, "config", None)
        atk = ClassificationAttack(
            model, name, eps, plan.norm, plan.steps, a, True, s, num_classes=getattr(cfg, "num_classes", None)
        )
        return lambda x, y, m: atk(x, y)
    seg = SegmentationAttack(model, name, eps, plan.norm, plan.steps, a, True, s, plan.ignore_index, pixel_fn)
    return lambda x, y, m: seg(x, m)


def result_fields(plan: Any, name: str, eps: float, runner: Any, metrics: dict[str, Any]) -> dict[str, Any]:
    """steps, alpha, restarts, protocol (and SEA's members) of one result row, then its `metrics`
    (SEA: mIoU the lower of its per-image selection's and its greedy worst case); `worst` rows: None
    for what is not one attack's."""
    if name == "worst":
        return {"steps": None, "alpha": None, "restarts": None, "protocol": plan.protocol, **metrics}
    alpha = plan.alpha if plan.alpha is not None else default_alpha(eps, plan.steps)
    out: dict[str, Any] = {
        "steps": {"fgsm": 1, "autoattack": AA_STEPS}.get(name, plan.steps),
        "alpha": eps if name == "fgsm" else (None if name in ("apgd", "autoattack", "sea") else alpha),
        "restarts": plan.restarts if name == "sea" else AA_RESTARTS if name == "autoattack" else 1,
        "protocol": plan.protocol,
    }
    out.update(metrics)
    if isinstance(runner, SEARunner):
        out["members"] = runner.names
        if (w := runner.worst_miou()) is not None:
            out["miou"] = w if out["miou"] is None else min(out["miou"], w)
    return out


def check_restarts(names: list[str], restarts: int) -> int:
    """`restarts` ≥ 1; more than 1 only with `sea` (the others run once; AutoAttack as standard)."""
    r = int(restarts)
    if r < 1:
        raise RlipError(f"restarts must be ≥ 1, got {restarts}")
    if r > 1 and "sea" not in names:
        raise RlipError("--restarts applies to sea only (PGD-type attacks run once; AutoAttack as standard)")
    return r
