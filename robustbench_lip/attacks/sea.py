"""SEA, the Segmentation Ensemble Attack (Croce, Singh & Hein 2023): APGD with several losses, keeping
for every image the adversarial example of the member that hurts it most.

Members: `apgd-<loss>` for each loss (default: masked CE, masked class-balanced CE, Jensen–Shannon,
masked spherical — `apgd_seg`), optionally also `pgd`, `segpgd`, `cospgd` (`segmentation.py`, same ε,
norm and steps). Every member runs on the same images and draws its random start from its own
stream (seed, member name), so a member's result here equals the same attack run alone.

Per-image worst case (`select="accuracy"`, SEA's rule for aAcc): the member with the lowest pixel
accuracy on the image; ties go to the lower per-image mIoU, then to the earlier member.
`select="miou"` orders by per-image mIoU first. mIoU is not a sum over images, so SEA computes its
worst-case mIoU over a whole dataset greedily (authors' code, tools/worse_only.py): per image, switch
to the member that lowers the dataset mIoU while any switch does — `worst_case_miou` here, on the
per-image intersections and unions that `SEA.run` returns (start: the best single member, so the
result is never above any member's mIoU). Either rule only ever compares members on the same images.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from robustbench_lip.attacks.apgd_seg import APGD_LOSSES, APGDSegmentation, class_logits, labelled
from robustbench_lip.attacks.base import check_budget, check_norm, fast_argmax, isolated
from robustbench_lip.attacks.builtin import SEA_STEPS
from robustbench_lip.attacks.rng import stream_seed
from robustbench_lip.attacks.segmentation import IGNORE_INDEX, LogitsFn, SegmentationAttack, pixel_logits_fn
from robustbench_lip.errors import RlipError

SEA_LOSSES: tuple[str, ...] = ("mask-ce", "mask-ce-bal", "js", "mask-sph")
SEA_EXTRA: tuple[str, ...] = ("pgd", "segpgd", "cospgd")
SELECT: tuple[str, ...] = ("accuracy", "miou")
PRESETS: dict[str, dict[str, object]] = {
    # SEA as published (ECCV 2024 version; authors' README): three losses, 300 steps, 2ε → 1.5ε → ε
    "standard": {"losses": ("mask-ce-bal", "mask-ce", "js"), "extra": (), "steps": SEA_STEPS},
    # every loss here (adds the first version's masked spherical loss) and PGD, SegPGD, CosPGD
    "extended": {"losses": SEA_LOSSES, "extra": SEA_EXTRA, "steps": SEA_STEPS},
}


@dataclass
class SEAResult:
    """adv (N, C, H, W): per image the chosen member's point; chosen (N,) int64 index into names;
    names: member names in run order; per member m and image n: predictions[m, n] (H, W) int64,
    accuracy[m, n] and miou[m, n] (float64, 1 for an image without labelled pixels), inter[m, n] and
    union[m, n] (K,) int64 pixel counts (ignored pixels dropped) for `worst_case_miou`."""

    adv: torch.Tensor
    chosen: torch.Tensor
    names: tuple[str, ...]
    predictions: torch.Tensor
    accuracy: torch.Tensor
    miou: torch.Tensor
    inter: torch.Tensor
    union: torch.Tensor


def image_stats(
    pred: torch.Tensor, target: torch.Tensor, num_classes: int, ignore_index: int | None = IGNORE_INDEX
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per image: (pixel accuracy (N,), mIoU (N,), intersections (N, K), unions (N, K)).

    Conventions of metrics.ConfusionMatrix per image: ignored target pixels dropped; mIoU over classes
    present in prediction or target, an in-range ignore class excluded; an image with nothing to
    score gets accuracy and mIoU 1."""
    n, k = pred.shape[0], int(num_classes)
    tgt, valid = labelled(target, ignore_index)
    idx = (torch.arange(n, device=pred.device).view(-1, 1, 1) * k + tgt) * k + pred.clamp(0, k - 1)
    conf = torch.bincount(idx[valid], minlength=n * k * k).reshape(n, k, k).cpu()
    inter = conf.diagonal(dim1=1, dim2=2)
    union = conf.sum(1) + conf.sum(2) - inter
    total = conf.sum((1, 2))
    acc = torch.where(total > 0, inter.sum(1).double() / total.clamp_min(1), 1.0)
    keep = union > 0
    if ignore_index is not None and 0 <= ignore_index < k:
        keep[:, ignore_index] = False
    iou = torch.where(keep, inter.double() / union.clamp_min(1), 0.0)
    n_cls = keep.sum(1)
    miou = torch.where(n_cls > 0, iou.sum(1) / n_cls.clamp_min(1), 1.0)
    return acc, miou, inter.contiguous(), union


def dataset_miou(inter: torch.Tensor, union: torch.Tensor, ignore_index: int | None = IGNORE_INDEX) -> float:
    """mIoU of summed counts (…, K) → K: mean over classes with a union, in-range ignore class left out."""
    i, u = (
        inter.reshape(-1, inter.shape[-1]).sum(0).double(),
        union.reshape(-1, union.shape[-1]).sum(0).double(),
    )
    keep = u > 0
    if ignore_index is not None and 0 <= ignore_index < keep.numel():
        keep[ignore_index] = False
    return float((i[keep] / u[keep]).mean()) if bool(keep.any()) else float("nan")


def select_per_image(
    accuracy: torch.Tensor, miou: torch.Tensor, select: str = "accuracy", members: Sequence[int] | None = None
) -> torch.Tensor:
    """Per image, the index (into all members) of the worst member among `members` (default: all).

    accuracy, miou: (A, N) per member and image. select `accuracy`: lowest pixel accuracy, ties to the
    lower mIoU, then to the earlier member; `miou`: the other way round. Returns (N,) int64."""
    if select not in SELECT:
        raise RlipError(f"unknown selection {select!r}; expected one of {', '.join(SELECT)}")
    idx = list(range(accuracy.shape[0])) if members is None else [int(m) for m in members]
    if not idx:
        raise RlipError("no member to select from")
    first, second = (accuracy, miou) if select == "accuracy" else (miou, accuracy)
    cols = torch.arange(accuracy.shape[1])
    chosen = torch.full((accuracy.shape[1],), idx[0], dtype=torch.int64)
    for m in idx[1:]:
        cur_f, cur_s = first[chosen, cols], second[chosen, cols]
        better = (first[m] < cur_f) | ((first[m] == cur_f) & (second[m] < cur_s))
        chosen = torch.where(better, m, chosen)
    return chosen


def worst_case_miou(
    inter: torch.Tensor, union: torch.Tensor, ignore_index: int | None = IGNORE_INDEX, max_rounds: int = 100
) -> tuple[torch.Tensor, float]:
    """Greedy worst case of the dataset mIoU over members, as SEA: (choice (N,) int64, mIoU).

    inter, union: (A, N, K) per member and image (from `SEAResult` of all batches, concatenated over
    images — the same images for every member). Starts from the member with the lowest mIoU (first on
    ties); sweeps the images in order, moving each to the member that lowers the mIoU most, until a
    sweep changes nothing (or `max_rounds`). The result is ≤ every member's own mIoU."""
    if inter.shape != union.shape or inter.dim() != 3:
        raise RlipError(f"inter and union must both be (members, images, classes), got {tuple(inter.shape)}")
    a, n, k = inter.shape
    own = [dataset_miou(inter[m], union[m], ignore_index) for m in range(a)]
    start = min(range(a), key=lambda m: own[m])
    choice = torch.full((n,), start, dtype=torch.int64)
    cur_i, cur_u = inter[start].sum(0).double(), union[start].sum(0).double()
    keep_cls = torch.ones(k, dtype=torch.bool)
    if ignore_index is not None and 0 <= ignore_index < k:
        keep_cls[ignore_index] = False
    best = own[start]
    for _ in range(int(max_rounds)):
        changed = False
        for img in range(n):
            c = int(choice[img])
            cand_i = cur_i - inter[c, img] + inter[:, img].double()  # (A, K)
            cand_u = cur_u - union[c, img] + union[:, img].double()
            keep = (cand_u > 0) & keep_cls
            vals = torch.where(keep, cand_i / cand_u.clamp_min(1), 0.0).sum(1) / keep.sum(1).clamp_min(1)
            m = int(vals.argmin())
            if float(vals[m]) < best - 1e-12:
                choice[img], cur_i, cur_u, best, changed = m, cand_i[m], cand_u[m], float(vals[m]), True
        if not changed:
            break
    return choice, dataset_miou(cur_i, cur_u, ignore_index)


def sea_preset(name: str) -> dict[str, object]:
    """Keyword arguments of `SEA` for a named preset (`standard`, `extended`); explicit ones override."""
    key = str(name).lower()
    if key not in PRESETS:
        raise RlipError(f"unknown SEA preset {name!r}; expected one of {', '.join(PRESETS)}")
    return dict(PRESETS[key])


class SEA:
    """`atk(images, masks) -> adversarial images`: the per-image worst case over the members (module doc).

    losses: APGD losses (default SEA_LOSSES); extra: any of `pgd`, `segpgd`, `cospgd` to add as
    members; eps, norm, steps: shared by all members (steps per member; PGD-type members use the
    default step 2.5·ε/steps); seed: base of every member's stream; select: `accuracy` | `miou`;
    shrink_eps, class_weights: for the APGD members (see `APGDSegmentation`). The model runs in eval
    mode; its modes and the global RNG are restored afterwards, also on error.
    images (N, C, H, W) in [0, 1], masks (N, H, W) int64 → adversarial (N, C, H, W) in [0, 1].
    """

    def __init__(
        self,
        model: torch.nn.Module,
        eps: float = 8 / 255,
        norm: str = "linf",
        steps: int = 100,
        seed: int = 0,
        losses: Sequence[str] = SEA_LOSSES,
        extra: Sequence[str] = (),
        select: str = "accuracy",
        shrink_eps: bool = True,
        ignore_index: int | None = IGNORE_INDEX,
        logits_fn: LogitsFn | None = None,
        class_weights: torch.Tensor | None = None,
    ) -> None:
        self.norm = check_norm(norm)
        self.eps = check_budget(eps, self.norm)
        self.select = str(select).lower()
        if self.select not in SELECT:
            raise RlipError(f"unknown selection {select!r}; expected one of {', '.join(SELECT)}")
        losses, extra = [str(s).lower() for s in losses], [str(s).lower() for s in extra]
        bad = [s for s in losses if s not in APGD_LOSSES] + [s for s in extra if s not in SEA_EXTRA]
        if bad or not (losses or extra) or len(set(losses)) < len(losses) or len(set(extra)) < len(extra):
            raise RlipError(
                f"bad SEA members {[*losses, *extra]}: losses from {', '.join(APGD_LOSSES)}, "
                f"extra from {', '.join(SEA_EXTRA)}, each at most once, at least one in all"
            )
        self.model, self.steps, self.seed, self.ignore_index = model, int(steps), int(seed), ignore_index
        raw = logits_fn if logits_fn is not None else pixel_logits_fn(model)
        self.logits_fn: LogitsFn = lambda x: class_logits(raw(x))
        common = {"eps": self.eps, "norm": self.norm, "steps": self.steps, "ignore_index": ignore_index}
        self.members: list[APGDSegmentation | SegmentationAttack] = [
            APGDSegmentation(
                model, s, seed=self.seed, shrink_eps=shrink_eps, logits_fn=self.logits_fn,
                class_weights=class_weights, **common,
            )
            for s in losses
        ]  # fmt: skip
        self.members += [
            SegmentationAttack(model, s, seed=stream_seed(self.seed, s), logits_fn=self.logits_fn, **common)
            for s in extra
        ]
        self.names: tuple[str, ...] = (*(f"apgd-{s}" for s in losses), *extra)

    def __call__(self, images: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if self.eps == 0:
            return images.detach().clone().clamp(0, 1)
        return self.run(images, target).adv

    def _member(
        self, i: int, x: torch.Tensor, target: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, int]:
        atk = self.members[i]
        if isinstance(atk, APGDSegmentation):
            res = atk.run(x, target)
            return res.adv, res.prediction, res.num_classes
        adv = atk(x, target)
        with torch.no_grad():
            logits = self.logits_fn(adv)
        return adv, fast_argmax(logits, 1), int(logits.shape[1])

    def run(self, images: torch.Tensor, target: torch.Tensor) -> SEAResult:
        """Every member on the same images, the per-image choice, and each member's per-image figures."""
        x, target = images.detach(), target.to(images.device)
        advs, preds, stats = [], [], []
        with isolated(self.model):
            for i in range(len(self.members)):
                adv, pred, k = self._member(i, x, target)
                advs.append(adv)
                preds.append(pred)
                stats.append(image_stats(pred, target, k, self.ignore_index))
        acc, miou, inter, union = (torch.stack([s[j] for s in stats]) for j in range(4))
        chosen = select_per_image(acc, miou, self.select)
        stacked = torch.stack(advs)  # (A, N, C, H, W)
        pick = chosen.to(stacked.device)
        adv = stacked[pick, torch.arange(x.shape[0], device=stacked.device)]
        return SEAResult(adv, chosen, self.names, torch.stack(preds), acc, miou, inter, union)

    def __repr__(self) -> str:
        return (
            f"SEA({', '.join(self.names)}; norm={self.norm}, eps={self.eps:g}, steps={self.steps}, "
            f"select={self.select}, ignore_index={self.ignore_index})"
        )
