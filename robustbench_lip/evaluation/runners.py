"""The attack behind each (ε, attack) cell of an evaluation: per-attack RNG streams, SEA, protocols.

RNG streams: the attack `a` at budget ε draws its random starts from the stream
`stream_seed(stream_seed(seed, ε text), a)` (attacks.rng), never from a counter shared with the
other attacks — so its figure is the same whether it runs alone or beside others (`--attack all`).

`sea` (SEA, Croce, Singh & Hein 2023, attacks.sea) runs the members of sea.py's `extended` preset —
APGD with the four SEA losses, and PGD, SegPGD, CosPGD — with the cell's base stream
`stream_seed(seed, ε text)`, so each of its PGD-type members draws exactly the stream the single
attack of that name draws in the same evaluation (at the default step size, 2.5·ε/steps): SEA's
figures are then ≤ theirs. Per image it keeps the member with the lowest pixel accuracy (its
accuracy is ≤ every member's); its mIoU is the lower of that selection's and SEA's greedy worst
case of the dataset mIoU over the members (`worst_case_miou`, ≤ every member's mIoU). `restarts`
R > 1 repeats the ensemble with the streams (seed, ε, "restart", r), r = 1..R−1; the worst case
is taken over every member of every restart. All of it on the same images.

Protocol `standard` (the leaderboard's robust column): classifiers scored on image labels get
torchattacks' AutoAttack, standard version (APGD-CE, APGD-T, FAB-T: 100 iterations, 1 restart;
Square: 5000 queries); masks — segmenters, and a classifier's CAM masks when the dataset has
masks — get `sea`.
"""

from __future__ import annotations

from typing import Any

import torch

from robustbench_lip.attacks import PIXEL_ONLY
from robustbench_lip.attacks.base import default_alpha
from robustbench_lip.attacks.classification import ClassificationAttack
from robustbench_lip.attacks.eps import format_eps
from robustbench_lip.attacks.rng import stream_seed
from robustbench_lip.attacks.sea import SEA, sea_preset, select_per_image, worst_case_miou
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
    intersections and unions so that `worst_miou()` can take SEA's greedy worst case at the end."""

    def __init__(
        self, model: torch.nn.Module, eps: float, norm: str, steps: int, seed: int, restarts: int,
        ignore_index: int | None, pixel_fn: Any,
    ) -> None:  # fmt: skip
        base = cell_seed(seed, eps)
        seeds = [base] + [stream_seed(base, "restart", r) for r in range(1, int(restarts))]
        self.eps, self.ignore_index = float(eps), ignore_index
        self.seas = [
            SEA(model, eps, norm, steps, s, SEA_MEMBERS["losses"], SEA_MEMBERS["extra"],
                ignore_index=ignore_index, logits_fn=pixel_fn)
            for s in seeds
        ]  # fmt: skip
        self.names = [n if r == 0 else f"{n}#{r}" for r, s in enumerate(self.seas) for n in s.names]
        self.inter: list[torch.Tensor] = []
        self.union: list[torch.Tensor] = []

    def __call__(self, x: torch.Tensor, y: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
        if m is None:
            raise RlipError("sea needs masks to attack")
        if self.eps == 0:
            return x.detach().clone().clamp(0, 1)
        runs = [s.run(x, m) for s in self.seas]
        self.inter.append(torch.cat([r.inter for r in runs]))
        self.union.append(torch.cat([r.union for r in runs]))
        cols = torch.arange(x.shape[0])
        acc = torch.stack([r.accuracy[r.chosen, cols] for r in runs])  # each restart's own choice
        miou = torch.stack([r.miou[r.chosen, cols] for r in runs])
        pick = select_per_image(acc, miou, "accuracy").to(x.device)
        return torch.stack([r.adv for r in runs])[pick, cols.to(x.device)]

    def worst_miou(self) -> float | None:
        """SEA's greedy worst-case dataset mIoU over the members (None before any image / at ε = 0)."""
        if not self.inter:
            return None
        _, value = worst_case_miou(torch.cat(self.inter, 1), torch.cat(self.union, 1), self.ignore_index)
        return None if value != value else value


def make_runner(model: torch.nn.Module, plan: Any, name: str, eps: float, pixel_fn: Any) -> Any:
    """The runner `(x, y, m) -> adversarial x` of the cell (`name`, `eps`) of an evaluation `plan`."""
    s = attack_seed(plan.seed, eps, name)
    if name == "sea":
        return SEARunner(
            model, eps, plan.norm, plan.steps, plan.seed, plan.restarts, plan.ignore_index, pixel_fn
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


def result_fields(plan: Any, name: str, eps: float, runner: Any) -> dict[str, Any]:
    """steps, alpha, restarts, protocol (and SEA's members) of one result row; `worst` rows: None
    for what is not one attack's."""
    if name == "worst":
        return {"steps": None, "alpha": None, "restarts": None, "protocol": plan.protocol}
    alpha = plan.alpha if plan.alpha is not None else default_alpha(eps, plan.steps)
    out: dict[str, Any] = {
        "steps": {"fgsm": 1, "autoattack": AA_STEPS}.get(name, plan.steps),
        "alpha": eps if name == "fgsm" else (None if name in ("apgd", "autoattack", "sea") else alpha),
        "restarts": plan.restarts if name == "sea" else AA_RESTARTS if name == "autoattack" else 1,
        "protocol": plan.protocol,
    }
    if isinstance(runner, SEARunner):
        out["members"] = runner.names
    return out


def check_restarts(names: list[str], restarts: int) -> int:
    """`restarts` ≥ 1; more than 1 only with `sea` (the others run once; AutoAttack as standard)."""
    r = int(restarts)
    if r < 1:
        raise RlipError(f"restarts must be ≥ 1, got {restarts}")
    if r > 1 and "sea" not in names:
        raise RlipError("--restarts applies to sea only (PGD-type attacks run once; AutoAttack as standard)")
    return r
