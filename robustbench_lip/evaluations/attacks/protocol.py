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

from collections.abc import Sequence
from typing import Any

import torch

from robustbench_lip.attacks.base import default_alpha
from robustbench_lip.attacks.builtin import AA_RESTARTS, AA_STEPS
from robustbench_lip.attacks.registry import ATTACKS, AttackCall, AttackSpec, protocols
from robustbench_lip.attacks.sea_runner import SEA_MEMBERS, SEARunner, attack_seed, cell_seed
from robustbench_lip.errors import RlipError
from robustbench_lip.tasks import Task

__all__ = [
    "AA_RESTARTS",
    "AA_STEPS",
    "SEA_MEMBERS",
    "SEARunner",
    "attack_seed",
    "cell_seed",
    "check_restarts",
    "make_runner",
    "misfit",
    "offer",
    "protocol_attacks",
    "result_fields",
]


def misfit(spec: AttackSpec, task: Task, pixel_ok: bool, objective: str) -> str | None:
    """Why attack `spec` cannot run on this model (None: it can): a masks-only attack needs a model
    that segments and masks; a labels-only one a classifier scored with the cls objective."""
    if spec.masks_only and task is Task.CLASSIFICATION and not pixel_ok:
        return (
            f"segmentation attack {spec.name!r} needs a model that segments and a dataset with masks; "
            "use --attack fgsm, pgd or autoattack (or --preset standard) for this classifier"
        )
    if spec.labels_only and (task is not Task.CLASSIFICATION or objective != "cls"):
        return f"attack {spec.name!r} is for classifiers with the cls objective only"
    return None


def protocol_attacks(protocol: str, task: Task, pixel_ok: bool, objective: str) -> list[str]:
    """The attacks of a protocol that fit this model (`standard`: AutoAttack on image labels for
    classifiers with objective cls, SEA on masks for models that segment)."""
    key = str(protocol).lower()
    if key not in protocols():
        raise RlipError(f"unknown preset {protocol!r}; expected one of {', '.join(protocols())}")
    return [
        name for name, spec in ATTACKS.items()
        if key in spec.protocols and misfit(spec, task, pixel_ok, objective) is None
    ]  # fmt: skip


def offer(runners: dict[tuple[float, str], Any], eps: float, name: str, adv: torch.Tensor) -> None:
    """Hand the point of attack `name` at `eps` to the cell's SEA runner, if any (it runs last)."""
    sea = runners.get((eps, "sea"))
    if isinstance(sea, SEARunner):
        sea.offer(name, adv)


def make_runner(model: torch.nn.Module, plan: Any, name: str, eps: float, pixel_fn: Any) -> Any:
    """The runner `(x, y, m) -> adversarial x` of the cell (`name`, `eps`) of an evaluation `plan`."""
    spec = ATTACKS.get(name)
    cfg = getattr(model, "config", None)
    call = AttackCall(
        model=model, eps=eps, norm=plan.norm, steps=plan.steps,
        alpha=plan.alpha if plan.alpha is not None else default_alpha(eps, plan.steps),
        alpha_given=plan.alpha is not None, seed=attack_seed(plan.seed, eps, name), eval_seed=plan.seed,
        restarts=plan.restarts, on_masks=spec.on_masks(plan.image_objective),
        image_objective=plan.image_objective, pixel_fn=pixel_fn, ignore_index=plan.ignore_index,
        num_classes=getattr(cfg, "num_classes", None), others=tuple(plan.names),
        make=lambda other: make_runner(model, plan, other, eps, pixel_fn),
    )  # fmt: skip
    return spec.build(call)


def result_fields(plan: Any, name: str, eps: float, runner: Any, metrics: dict[str, Any]) -> dict[str, Any]:
    """steps, alpha, restarts, protocol (and SEA's members) of one result row, then its `metrics`
    (SEA: mIoU the lower of its per-image selection's and its greedy worst case); `worst` rows: None
    for what is not one attack's."""
    if name == "worst":
        return {"steps": None, "alpha": None, "restarts": None, "protocol": plan.protocol, **metrics}
    alpha = plan.alpha if plan.alpha is not None else default_alpha(eps, plan.steps)
    out: dict[str, Any] = {
        **ATTACKS.get(name).recorded(plan.steps, plan.restarts, eps, alpha),
        "protocol": plan.protocol,
    }
    out.update(metrics)
    if isinstance(runner, SEARunner):
        out["members"] = runner.names
        if (w := runner.worst_miou()) is not None:
            out["miou"] = w if out["miou"] is None else min(out["miou"], w)
    return out


def check_restarts(names: Sequence[str], restarts: int) -> int:
    """`restarts` ≥ 1; more than 1 only with an attack that takes restarts (sea; the others run once,
    AutoAttack as standard)."""
    r = int(restarts)
    if r < 1:
        raise RlipError(f"restarts must be ≥ 1, got {restarts}")
    takers = [n for n, spec in ATTACKS.items() if spec.restarts is None]
    if r > 1 and not any(n in takers for n in names):
        raise RlipError(
            f"--restarts applies to {', '.join(takers)} only "
            "(PGD-type attacks run once; AutoAttack as standard)"
        )
    return r
