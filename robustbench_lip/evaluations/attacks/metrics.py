"""Attack a model over a dataset at several budgets: the payload of an `attack` record.

Metric levels (documented in the record under `levels`; scoring):
- classifiers (task "classification"): `accuracy` and `precision` (macro) are image-level over the
  image labels; `miou` is the mIoU of the model's mask (for mResNet-18 the CAM mask) against the
  dataset's masks, null when the dataset has no masks or the model cannot segment.
- segmenters (U-Nets: task "segmentation", or "image2image" models that segment): every metric is
  pixel-level over the masks: pixel accuracy, pixel macro precision, mIoU.
All three come from confusion matrices accumulated over the whole dataset (scoring.Scores,
torchmetrics conventions), one per (attack, ε). The record's `task` names the level as the first
records did: "classifier" or "segmenter" (records.ATTACK_TASK_NAMES).

The request is checked by `plan.plan_attacks`; the runner of each (ε, attack) cell is
`protocol.make_runner`; with several attacks and no protocol, the row "worst" is the worst case over
them per image (`worst_case`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch.utils.data import Dataset

from robustbench_lip.attacks.base import fast_argmax
from robustbench_lip.attacks.eps import format_eps
from robustbench_lip.attacks.registry import DEFAULT_STEPS
from robustbench_lip.attacks.segmentation import IGNORE_INDEX, pixel_logits_fn
from robustbench_lip.device import eval_mode, preserved_rng, resolve_device
from robustbench_lip.errors import RlipError
from robustbench_lip.evaluations.attacks.plan import Plan, plan_attacks
from robustbench_lip.evaluations.attacks.protocol import make_runner, offer, result_fields
from robustbench_lip.evaluations.attacks.settings import ATTACK, DEFAULT_ATTACK
from robustbench_lip.evaluations.attacks.worst_case import Worst, harm
from robustbench_lip.records.schema import ATTACK_TASK_NAMES
from robustbench_lip.scoring import Level, Predictor, Scores, batches
from robustbench_lip.tasks import Task

Progress = Callable[[int, int], None]
Runner = Callable[[torch.Tensor, torch.Tensor, torch.Tensor | None], torch.Tensor]


def _check_label_spaces(dataset: Dataset, task: Task, num_classes: int, num_mask: int | None) -> None:
    """One-line errors when the model's label spaces cannot hold the dataset's labels."""
    info = getattr(dataset, "info", None)
    if info is None:
        return
    name = getattr(info, "name", "the dataset")
    if task is Task.CLASSIFICATION and num_classes < int(info.num_classes):
        raise RlipError(f"the model predicts {num_classes} classes but {name} has {info.num_classes}")
    if num_mask is not None and info.num_mask_classes and num_mask < int(info.num_mask_classes):
        raise RlipError(
            f"the model predicts {num_mask} mask classes but {name} has {info.num_mask_classes}; "
            "attack it on the dataset it was trained for"
        )

class _Cells:
    """The Scores of the clean cell and of every (ε, attack) cell, made at the first batch."""

    def __init__(self, plan: Plan, model: torch.nn.Module, dataset: Dataset, pixel_fn: Any) -> None:
        self.plan, self.model, self.dataset, self.pixel_fn = plan, model, dataset, pixel_fn
        self.clean: Scores | None = None
        self.cells: dict[tuple[float, str], Scores] = {}

    def ensure(self, x: torch.Tensor) -> None:
        if self.clean is not None:
            return
        plan = self.plan
        with torch.no_grad():
            num_classes = int(self.model(x[:1]).shape[1]) if plan.task is Task.CLASSIFICATION else 0
            num_mask = int(self.pixel_fn(x[:1]).shape[1]) if self.pixel_fn is not None else None
        _check_label_spaces(self.dataset, plan.task, num_classes, num_mask)
        level = Level.IMAGE if plan.task is Task.CLASSIFICATION else Level.PIXEL
        keys = plan.cells + ([(e, "worst") for e in plan.eps] if plan.with_worst else [])
        self.clean = Scores(level, num_classes, num_mask, plan.ignore_index)
        self.cells = {k: Scores(level, num_classes, num_mask, plan.ignore_index) for k in keys}


def _results(plan: Plan, cells: _Cells, runners: dict[tuple[float, str], Any]) -> list[dict[str, Any]]:
    out = []
    for (e, a), scores in cells.cells.items():
        row = {"attack": a, "norm": plan.norm, "eps": e, "eps_text": format_eps(e)}
        out.append({**row, **result_fields(plan, a, e, runners.get((e, a)), scores.summary())})
    out.sort(key=lambda r: plan.eps.index(r["eps"]))
    return out


def _payload(plan: Plan, cells: _Cells, runners: dict[tuple[float, str], Any]) -> dict[str, Any]:
    assert cells.clean is not None
    levels = (
        {"accuracy": "image", "precision": "image", "miou": "pixel" if plan.pixel_ok else None}
        if plan.task is Task.CLASSIFICATION
        else {"accuracy": "pixel", "precision": "pixel", "miou": "pixel"}
    )
    return {
        "clean": cells.clean.summary(),
        "results": _results(plan, cells, runners),
        "n": plan.n,
        "objective": plan.objective,
        "task": ATTACK_TASK_NAMES[plan.task],
        "attacks": plan.names,
        "levels": levels,
        "ignore_index": plan.ignore_index,
        "protocol": plan.protocol,
        "steps": plan.steps,
        "restarts": plan.restarts,
    }


def evaluate_attacks(
    model: torch.nn.Module,
    dataset: Dataset,
    eps_list: Sequence[float],
    attacks: str | Sequence[str] = DEFAULT_ATTACK,
    norm: str = ATTACK.norm,
    steps: int | None = DEFAULT_STEPS,
    alpha: float | None = None,
    n: int | None = None,
    batch_size: int = ATTACK.batch_size,
    seed: int = ATTACK.seed,
    objective: str | None = None,
    device: str | torch.device = "cpu",
    progress: Progress | None = None,
    ignore_index: int | None = IGNORE_INDEX,
    preset: str | None = None,
    restarts: int = ATTACK.restarts,
) -> dict[str, Any]:
    """Clean and attacked metrics of `model` on the first `n` samples of `dataset`, per ε and attack.

    dataset items: (image (C, H, W) in [0, 1], label, mask (H, W) int64 or None). attacks: names
    registered in attacks.registry, or "all"; norm "linf" | "l2"; alpha: step size (default
    2.5·ε/steps, per ε);
    objective: "cls" (image-label CE, classifiers only) or "pixel" (pixel CE on mask_logits);
    default "cls" for classifiers, "pixel" for segmenters (segpgd/cospgd always use pixels).
    n larger than the dataset is clamped (logged). The model is moved to `device` and evaluated in
    eval mode; its modes and the global RNG are restored afterwards. progress(done, total) is
    called after every (batch, ε, attack). preset: a protocol (attacks.registry.protocols) replacing
    `attacks`; restarts: of sea; random streams and SEA: evaluations.attacks.protocol.
    Returns {"clean": {accuracy, precision, miou}, "results": [{attack, norm, eps, eps_text, steps,
    alpha, restarts, protocol, accuracy, precision, miou}, ...], "n", "objective", "task", "levels",
    "ignore_index", "protocol", "steps", "restarts"}.
    """
    plan = plan_attacks(
        model, dataset, eps_list, attacks, norm, steps, alpha, n, batch_size, seed, objective, ignore_index,
        preset, restarts,
    )  # fmt: skip
    dev = resolve_device(device)
    model.to(dev)
    pixel_fn = pixel_logits_fn(model) if plan.pixel_ok or plan.task is Task.SEGMENTATION else None
    predict = Predictor(
        labels=(lambda x: model(x).argmax(1)) if plan.task is Task.CLASSIFICATION else None,
        mask=(lambda x: fast_argmax(pixel_fn(x), 1)) if pixel_fn is not None else None,
    )
    runners = {cell: make_runner(model, plan, cell[1], cell[0], pixel_fn) for cell in plan.cells}
    cells = _Cells(plan, model, dataset, pixel_fn)
    total_units = math.ceil(plan.n / plan.batch_size) * len(plan.cells)
    done = 0
    with eval_mode(model), preserved_rng():
        for x, y, m in batches(dataset, plan.n, plan.batch_size):
            x, y = x.to(dev), y.to(dev)
            m = m.to(dev) if m is not None else None
            lbl, mask = predict(x)
            cells.ensure(x)
            cells.clean.update(lbl, y, mask, m)  # type: ignore[union-attr]
            for e in plan.eps:
                worst = Worst()
                for a in plan.names:
                    adv = runners[(e, a)](x, y, m)
                    offer(runners, e, a, adv)  # SEA runs last and takes over the points it shares
                    pred = predict(adv)
                    cells.cells[(e, a)].update(pred[0], y, pred[1], m)
                    if plan.with_worst:
                        worst.offer(harm(plan, pred, y, m), pred)
                    done += 1
                    if progress is not None:
                        progress(done, total_units)
                if plan.with_worst:
                    cells.cells[(e, "worst")].update(worst.pred[0], y, worst.pred[1], m)
    return _payload(plan, cells, runners)
