"""The built-in attacks, one `AttackSpec` each (registered on import of attacks.registry).

- fgsm, pgd: image labels through torchattacks (classification.ClassificationAttack) under the
  image objective, else the masks (segmentation.SegmentationAttack); in `--attack all`.
- segpgd, cospgd: masks only (segmentation.SegmentationAttack); in `all` where the model segments.
- apgd, autoattack: image labels only, torchattacks (AutoAttack: standard version, its own steps).
- sea: masks only, SEA's ensemble with restarts (sea_runner.SEARunner); runs last in its cell.
Protocol `standard`: autoattack on image labels, sea on masks, at the protocol's steps.

Engines are imported when an attack is built: this module imports no torch.
"""

from __future__ import annotations

from robustbench_lip.attacks.registry import (
    ALPHA_EPS,
    ALPHA_OWN,
    ATTACKS,
    LABELS,
    MASKS,
    AttackCall,
    AttackSpec,
    Runner,
    register_attack,
)

#: torchattacks AutoAttack(version="standard"): iterations of APGD-CE / APGD-T / FAB-T, restarts.
AA_STEPS, AA_RESTARTS = 100, 1
#: SEA's iterations per member in the authors' evaluation (tools/infer.py, --n_iter default).
SEA_STEPS = 300


def engine(call: AttackCall, name: str) -> Runner:
    """The runner of the single attack `name`: torchattacks on the image labels, or the pixel engine
    on the masks (`call.on_masks`)."""
    if not call.on_masks:
        from robustbench_lip.attacks.classification import ClassificationAttack

        atk = ClassificationAttack(
            call.model, name, call.eps, call.norm, call.steps, call.alpha, True, call.seed,
            num_classes=call.num_classes,
        )  # fmt: skip
        return lambda x, y, m: atk(x, y)
    from robustbench_lip.attacks.segmentation import SegmentationAttack

    seg = SegmentationAttack(
        call.model, name, call.eps, call.norm, call.steps, call.alpha, True, call.seed, call.ignore_index,
        call.pixel_fn,
    )  # fmt: skip
    return lambda x, y, m: seg(x, m)


def _sea(call: AttackCall) -> Runner:
    """SEA: the evaluation's own PGD-type points on the masks are its members when they are the same
    attacks (same streams and default step size); under the image objective the image-label PGD
    joins as `pgd(cls)`."""
    from robustbench_lip.attacks.sea_runner import SEA_MEMBERS, SEARunner

    same = [
        a for a in call.others
        if a in SEA_MEMBERS["extra"] and ATTACKS.get(a).on_masks(call.image_objective)
    ]  # fmt: skip
    outside = {"pgd(cls)": call.make("pgd")} if call.image_objective else {}
    return SEARunner(
        call.model, call.eps, call.norm, call.steps, call.eval_seed, call.restarts, call.ignore_index,
        call.pixel_fn, () if call.alpha_given else tuple(same), outside,
    )  # fmt: skip


def _single(name: str) -> object:
    return lambda call: engine(call, name)


for _spec in (
    AttackSpec("fgsm", _single("fgsm"), steps=1, alpha=ALPHA_EPS, in_all=True,
               summary="one signed-gradient step of size ε (Goodfellow et al. 2015)"),
    AttackSpec("pgd", _single("pgd"), in_all=True, summary="projected gradient descent (Madry et al. 2018)"),
    AttackSpec("segpgd", _single("segpgd"), targets=(MASKS,), in_all=True, summary="SegPGD (Gu et al. 2022)"),
    AttackSpec("cospgd", _single("cospgd"), targets=(MASKS,), in_all=True, summary="CosPGD (Agnihotri 2024)"),
    AttackSpec("apgd", _single("apgd"), targets=(LABELS,), alpha=ALPHA_OWN,
               summary="APGD-CE, one restart (Croce & Hein 2020)"),
    AttackSpec("autoattack", _single("autoattack"), targets=(LABELS,), steps=AA_STEPS, alpha=ALPHA_OWN,
               restarts=AA_RESTARTS, protocols={"standard": AA_STEPS}, summary="AutoAttack, standard"),
    AttackSpec("sea", _sea, targets=(MASKS,), alpha=ALPHA_OWN, restarts=None,
               protocols={"standard": SEA_STEPS}, last=True, summary="SEA ensemble (Croce et al. 2024)"),
):  # fmt: skip
    register_attack(_spec)
