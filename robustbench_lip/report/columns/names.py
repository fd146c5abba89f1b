"""Leaderboard column names and their docs: the fixed columns, the dynamic column patterns (their
names are built and parsed by `key.ColumnKey` only), the seed-aggregate columns."""

from __future__ import annotations

from robustbench_lip.report.metrics import (
    ATTACK_COLUMNS,
    CERTIFY_COLUMNS,
    LA_LO,
    LA_UP,
    LIPSCHITZ_COLUMNS,
    LR_LO,
)
from robustbench_lip.report.metrics import LA_GAP as LA_GAP  # re-exported: every fixed column's name here
from robustbench_lip.report.metrics import LR_UP as LR_UP

LAM = "λ"
ACC, PREC, MIOU = "acc", "precision", "mIoU"
FNE = "FNE"
TRAIN_S = "train s"
FAMILY = "family"

#: The fixed columns, always present, in order, with a one-line explanation each.
FIXED_COLUMNS: dict[str, str] = {
    "run": "Run folder, relative to the runs folder.",
    "arch": "Model architecture (registry name).",
    "dataset": "Dataset the model was trained on.",
    LAM: "Lipschitz-penalty weight λ used in training (0 = no penalty).",
    FAMILY: "Model family from the model registry: 'penalty' = an unconstrained network whose constant the "
    "penalty λ pushes down (λ = 0: none), 'constrained' = 1-Lipschitz by construction (orthogonal layers, "
    "MaxMin; certified bounds ≈ 1); empty for foreign models.",
    "target": "What the penalty acted on: A (the model) or R = 2A − I (its reflection).",
    "seed": "Training seed.",
    "epochs": "Training epochs asked for.",
    "status": "Training status from the train record (finished / running / failed).",
    ACC: "Clean accuracy on the test split (image labels).",
    PREC: "Clean macro precision on the test split (mean over classes of TP / (TP + FP)).",
    MIOU: "Clean mean IoU of the predicted masks on the test split (datasets with masks only).",
    **{c.name: c.doc for c in LIPSCHITZ_COLUMNS},
    FNE: "Firm non-expansiveness test of A on pairs (v = ⟨Ax − Ay, x − y⟩ − ‖Ax − Ay‖², FNE ⇔ v ≥ 0): "
    "'violated' = a pair with v < 0 was found (proof A is not FNE); 'no violation found' = none on the "
    "tested pairs (not a certificate); 'certified' = L(R) upper ≤ 1; 'undefined' = output shape ≠ input.",
    TRAIN_S: "Training wall time in seconds (train record).",
}

_ATTACK = "<attack>_<norm>@<ε> [<protocol>, n=<n>]"

#: Documentation of the dynamic (per-attack / per-ε) column patterns.
PATTERN_DOCS: dict[str, str] = {
    **{f"{_ATTACK} {c.metric}": c.doc for c in ATTACK_COLUMNS if c.pixel_doc},
    **{f"{_ATTACK} pixel {c.metric}": c.pixel_doc for c in ATTACK_COLUMNS if c.pixel_doc},
    **{f"{_ATTACK} {c.metric}": c.doc for c in ATTACK_COLUMNS if not c.pixel_doc},
    "<attack>(<objective>)_<norm>@<ε> [<protocol>, n=<n>] <metric>": "As above, for an attack run with "
    "a loss other than the model's default (cls = image-label cross-entropy for classifiers, pixel = "
    "pixel cross-entropy).",
    "worst_<norm>@<ε> [every attack, n=<n>] <metric>": "Smallest value of the metric over every attack "
    "and protocol run at that norm and ε on one sample set, the first n test images with n the largest "
    "attacked (includes the attack record's per-image worst case when present); results on fewer images "
    "are left out, never mixed in.",
    "robust_<norm>@<ε> [<protocol>, n=<n>] <metric>": "The robust figure of an attack protocol "
    "(`rlip attack --preset standard`: AutoAttack standard version on image labels, SEA on masks) on the "
    "first n test images: smallest value over the protocol's attacks; `steps=` is named when an attack "
    "ran with fewer steps than the protocol's own. An empirical upper estimate of the robust metric.",
    **{f"cert {c.metric}@<ε>": c.doc for c in CERTIFY_COLUMNS},
    "smoothed cert acc@<r> (σ=<σ>)": "Randomized smoothing (probabilistic, not a Lipschitz certificate): "
    "fraction of test images the noise-σ smoothed classifier g classifies correctly with certified ℓ2 radius "
    "> r; each image's certificate holds with probability ≥ 1 − α over the Monte Carlo draw; abstentions "
    "count as wrong.",
    "smoothed cert mIoU@<r> (σ=<σ>)": "Randomized smoothing (probabilistic): mIoU of the smoothed "
    "segmentation (U-Net output or CAM masks) with every pixel not certified at ℓ2 radius r counted as wrong "
    "(SegCertify, Holm over each image's pixels at level α).",
    "smoothed abstain (σ=<σ>)": "Fraction of test images on which the smoothed classifier abstains.",
    "smoothed pixel abstain (σ=<σ>)": "Fraction of pixels on which the smoothed segmentation abstains "
    "(r = 0).",
}

#: Columns of the seed-aggregated table (report.seeds): runs that differ only in their seed, one row.
SEEDS_N = "n seeds"
STD_SUFFIX, N_SUFFIX = " std", " n"
AGGREGATE_DOCS: dict[str, str] = {
    SEEDS_N: "Runs aggregated in this row: same settings, different training seeds (listed in `seed`); "
    "every number is then the mean over them.",
    "<column> std": "Sample standard deviation (ddof = 1) of the column over the row's seeds; empty with "
    "fewer than 2 values.",
    "<column> n": "How many of the row's seeds have a value in the column (shown where some seeds lack it).",
}

#: Every column name or pattern → one-line explanation (for the README).
COLUMN_DOCS: dict[str, str] = {**FIXED_COLUMNS, **PATTERN_DOCS, **AGGREGATE_DOCS}

#: The main certified radius (ℓ2, pixel units; `rlip certify`'s first default): the summary's cert columns.
MAIN_RADIUS = "36/255"
#: Columns shown in narrow views (terminal), when present.
KEY_COLUMNS: tuple[str, ...] = (
    "run",
    "arch",
    "dataset",
    LAM,
    FAMILY,
    "target",
    ACC,
    PREC,
    MIOU,
    LA_UP,
    LA_LO,
    LR_LO,
    FNE,
)

NUMERIC_FIXED: tuple[str, ...] = (LAM, ACC, PREC, MIOU, *(c.name for c in LIPSCHITZ_COLUMNS), TRAIN_S)
INT_FIXED: tuple[str, ...] = ("seed", "epochs")
SORT_ALIASES: dict[str, str] = {"lam": LAM, "lambda": LAM, "accuracy": ACC, "miou": MIOU, "prec": PREC}

#: HTML header group of the fixed columns that are not identity ("Run") columns.
FIXED_GROUPS: dict[str, str] = {
    **{c: "Lipschitz" for c in (*(c.name for c in LIPSCHITZ_COLUMNS), FNE)},
    **{c: "Clean" for c in (ACC, PREC, MIOU)},
    TRAIN_S: "Cost",
}
