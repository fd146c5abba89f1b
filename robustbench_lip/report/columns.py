"""Leaderboard columns: names, one-line docs, the legend, the order of dynamic columns, cell formatting.

Fixed columns are always present (FIXED_COLUMNS, in order). Dynamic columns follow the patterns of
PATTERN_DOCS: `cert <metric>@<ε>`, `<attack>_<norm>@<ε> [<protocol>, n=<n>] <metric>`,
`worst_<norm>@<ε> [every attack, n=<n>] <metric>`, `robust_<norm>@<ε> [<protocol>, n=<n>] <metric>`
(the bracket: comma-separated, `key=value` after the protocol name; `parse_tag`).
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from robustbench_lip.attacks.eps import parse_eps_token
from robustbench_lip.errors import RlipError

LAM = "λ"
ACC, PREC, MIOU = "acc", "precision", "mIoU"
LA_UP, LA_LO, LA_GAP = "L(A) upper", "L(A) lower", "L(A) gap"
LR_LO, LR_UP = "L(R) lower", "L(R) upper"
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
    LA_UP: "Certified upper bound on the Lipschitz constant of A (ℓ2 → ℓ2); provably ≥ the true L(A).",
    LA_LO: "Measured lower bound on L(A): the best local Jacobian norm / Lipschitz quotient found (power "
    "iteration, search, pairs) on sampled inputs; an estimate, ≤ the true L(A) on [0, 1]^d.",
    LA_GAP: "L(A) upper / L(A) lower: how far apart the two bounds are (1 = tight).",
    LR_LO: "Measured lower bound on L(R), R = 2A − I (only when A's output has its input's shape).",
    LR_UP: "Certified upper bound on L(R), R = 2A − I: |2α − 1| + 2·Lip(g) for A = α·x + g(x), the identity "
    "coefficient α carried through the graph (α = 0 gives the triangle bound 2·L(A) upper + 1).",
    FNE: "Firm non-expansiveness test of A on pairs (v = ⟨Ax − Ay, x − y⟩ − ‖Ax − Ay‖², FNE ⇔ v ≥ 0): "
    "'violated' = a pair with v < 0 was found (proof A is not FNE); 'no violation found' = none on the "
    "tested pairs (not a certificate); 'certified' = L(R) upper ≤ 1; 'undefined' = output shape ≠ input.",
    TRAIN_S: "Training wall time in seconds (train record).",
}

#: Documentation of the dynamic (per-attack / per-ε) column patterns.
PATTERN_DOCS: dict[str, str] = {
    "<attack>_<norm>@<ε> [<protocol>, n=<n>] acc": "Image-label accuracy under that attack at budget ε "
    "(pixel units, ℓ∞ or ℓ2) on the first n test images: an empirical upper estimate of robust accuracy. "
    "Protocol `custom`: the attack was chosen with `rlip attack --attack` (its steps in the long attack "
    "table); a preset's name (`--preset`): run as one of that protocol's attacks.",
    "<attack>_<norm>@<ε> [<protocol>, n=<n>] prec": "Image-label macro precision under that attack at "
    "budget ε.",
    "<attack>_<norm>@<ε> [<protocol>, n=<n>] pixel acc": "Pixel accuracy of the predicted mask under that "
    "attack (segmenters: their attack records score pixels, so they get pixel columns).",
    "<attack>_<norm>@<ε> [<protocol>, n=<n>] pixel prec": "Pixel macro precision of the predicted mask under "
    "that attack.",
    "<attack>_<norm>@<ε> [<protocol>, n=<n>] mIoU": "mIoU of the predicted masks under that attack at "
    "budget ε.",
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
    "cert acc@<ε>": "Certified accuracy at ℓ2 radius ε (pixel units): fraction of test images classified "
    "correctly with certified radius margin / (√2·L(A) upper) > ε (provable), or, where the model ends in a "
    "linear layer, the larger min_j (z_i − z_j) / (‖W_i − W_j‖·U(features)).",
    "cert pixel acc@<ε>": "Certified pixel accuracy at ℓ2 radius ε: pixels correct and provably stable "
    "within ε (segmenters, from L(A) upper; the constrained mResNet's thresholded CAM masks, from the "
    "head's rows and U(features)).",
    "cert mIoU@<ε>": "Certified mIoU at ℓ2 radius ε: mIoU with every pixel that is not provably stable "
    "counted as wrong (segmenters; from L(A) upper).",
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

NUMERIC_FIXED: tuple[str, ...] = (LAM, ACC, PREC, MIOU, LA_UP, LA_LO, LA_GAP, LR_LO, LR_UP, TRAIN_S)
INT_FIXED: tuple[str, ...] = ("seed", "epochs")
SORT_ALIASES: dict[str, str] = {"lam": LAM, "lambda": LAM, "accuracy": ACC, "miou": MIOU, "prec": PREC}

_METRIC_ORDER: tuple[str, ...] = ("acc", "prec", "pixel acc", "pixel prec", "mIoU")
_METRIC_WHAT = {
    "acc": "Accuracy",
    "prec": "Macro precision",
    "pixel acc": "Pixel accuracy",
    "pixel prec": "Pixel macro precision",
    "mIoU": "mIoU",
}
_ATTACK_COL = re.compile(
    r"^(?P<attack>[^@\s]+)_(?P<norm>linf|l2|[a-z0-9]+)@(?P<eps>\S+) (?:\[(?P<tag>[^\]]*)\] )?"
    r"(?P<metric>acc|prec|pixel acc|pixel prec|mIoU)$"
)
_CERT_COL = re.compile(r"^cert (?P<metric>acc|pixel acc|mIoU)@(?P<eps>\S+)$")
_SMOOTH_COL = re.compile(
    r"^smoothed (?:cert (?P<metric>acc|mIoU)@(?P<eps>\S+)|(?P<abstain>abstain|pixel abstain))"
    r" \(σ=(?P<sigma>[^)]+)\)$"
)
ATTACK_COL, CERT_COL, SMOOTH_COL = _ATTACK_COL, _CERT_COL, _SMOOTH_COL


def attack_column(attack: str, norm: str, eps: str, metric: str, tag: str | None = None) -> str:
    """`<attack>_<norm>@<ε> [<tag>] <metric>` (tag `custom, n=64`, `standard, n=128`; attack "worst"
    gives the worst-case column, "robust" a protocol's); without a tag `<attack>_<norm>@<ε> <metric>`
    (records written before attack columns named their protocol and n)."""
    return f"{attack}_{norm}@{eps} {metric}" if tag is None else f"{attack}_{norm}@{eps} [{tag}] {metric}"


def parse_tag(tag: str) -> dict[str, str]:
    """`standard, n=128, steps=20` → {"protocol": "standard", "n": "128", "steps": "20"}."""
    parts = [p.strip() for p in tag.split(",") if p.strip()]
    out = {"protocol": parts[0]} if parts and "=" not in parts[0] else {}
    out.update(dict(p.split("=", 1) for p in parts if "=" in p))
    return out


def column_parts(name: str) -> dict[str, Any] | None:
    """The parts of an attack column — attack, norm, eps (text), metric, and for a tagged (robust)
    column protocol, n (int or None), steps — or None for any other column."""
    m = _ATTACK_COL.match(name)
    if not m:
        return None
    out: dict[str, Any] = {k: m[k] for k in ("attack", "norm", "eps", "metric")}
    if m["tag"] is not None:
        tag = parse_tag(m["tag"])
        n = tag.get("n", "")
        out.update(protocol=tag.get("protocol"), n=int(n) if n.isdigit() else None, steps=tag.get("steps"))
    return out


def cert_column(metric: str, eps: str) -> str:
    """`cert <metric>@<ε>`."""
    return f"cert {metric}@{eps}"


def smoothed_column(metric: str, eps: str | None, sigma: float) -> str:
    """`smoothed cert <metric>@<r> (σ=<σ>)` (metric acc / mIoU), or with eps None
    `smoothed <metric> (σ=<σ>)` (metric abstain / pixel abstain)."""
    what = metric if eps is None else f"cert {metric}@{eps}"
    return f"smoothed {what} (σ={sigma:g})"


def _smoothed_pattern(name: str) -> str | None:
    m = _SMOOTH_COL.match(name)
    if not m:
        return None
    return f"smoothed {m['abstain']} (σ=<σ>)" if m["abstain"] else f"smoothed cert {m['metric']}@<r> (σ=<σ>)"


def metric_name(short: str, level: str | None) -> str:
    """Column metric of an attack value: `acc` / `prec` become `pixel acc` / `pixel prec` at level pixel."""
    return f"pixel {short}" if level == "pixel" and short in ("acc", "prec") else short


def eps_value(text: str) -> float:
    """ε as a number from its canonical text (`8/255` → 0.0314); inf when unparseable (sorts last)."""
    try:
        return parse_eps_token(text, "l2")
    except RlipError:
        return math.inf


def column_doc(name: str) -> str:
    """One-line explanation of a column (fixed or dynamic); empty for an unknown name."""
    if name in FIXED_COLUMNS or name == SEEDS_N:
        return {**FIXED_COLUMNS, SEEDS_N: AGGREGATE_DOCS[SEEDS_N]}[name]
    for suffix, what in ((STD_SUFFIX, "Sample std (ddof = 1) over seeds of"), (N_SUFFIX, "Seeds with")):
        if name.endswith(suffix) and (base := column_doc(name[: -len(suffix)])):
            return f"{what}: {base}"
    m = _ATTACK_COL.match(name)
    if m:
        what = _METRIC_WHAT[m["metric"]]
        eps = f"{m['norm']} budget ε = {m['eps']}"
        tag = f" [{m['tag']}]" if m["tag"] is not None else ""
        if m["attack"] == "worst":
            return f"{what} under the worst attack{tag} at {eps} (smallest value over all attacks run)."
        if m["attack"] == "robust":
            return f"{what} under attack protocol{tag} at {eps} (empirical, first n test images)."
        return f"{what} under {m['attack']}{tag} at {eps} (empirical, on the attacked test images)."
    m = _CERT_COL.match(name)
    if m:
        what = {"acc": "accuracy", "pixel acc": "pixel accuracy", "mIoU": "mIoU"}[m["metric"]]
        return (
            f"Certified {what} at ℓ2 radius ε = {m['eps']} (provable, from the certified L(A) upper bound)."
        )
    pattern = _smoothed_pattern(name)
    return PATTERN_DOCS[pattern] if pattern else ""


def column_docs(columns: Iterable[str]) -> dict[str, str]:
    """`{column: one-line explanation}` for the given columns."""
    return {c: column_doc(c) for c in columns}


def _pattern_of(name: str) -> str | None:
    if name.startswith("smoothed "):
        return _smoothed_pattern(name)
    m = _CERT_COL.match(name)
    if m:
        return f"cert {m['metric']}@<ε>"
    m = _ATTACK_COL.match(name)
    if not m:
        return None
    if m["attack"] == "worst":
        return "worst_<norm>@<ε> [every attack, n=<n>] <metric>"
    if m["attack"] == "robust":
        return "robust_<norm>@<ε> [<protocol>, n=<n>] <metric>"
    if "(" in m["attack"]:
        return "<attack>(<objective>)_<norm>@<ε> [<protocol>, n=<n>] <metric>"
    return f"<attack>_<norm>@<ε> [<protocol>, n=<n>] {m['metric']}"


def legend(columns: Iterable[str]) -> dict[str, str]:
    """Compact docs for a report: each fixed column present, then each dynamic column pattern present
    (e.g. `<attack>_<norm>@<ε> acc`) once, in the order of PATTERN_DOCS."""
    cols = list(columns)
    out = {c: FIXED_COLUMNS[c] for c in cols if c in FIXED_COLUMNS}
    present = {_pattern_of(c) for c in cols}
    out.update({p: d for p, d in PATTERN_DOCS.items() if p in present})
    agg = {SEEDS_N: SEEDS_N in cols, "<column> std": any(c.endswith(STD_SUFFIX) for c in cols)}
    agg["<column> n"] = any(c.endswith(N_SUFFIX) and c[: -len(N_SUFFIX)] in cols for c in cols)
    out.update({k: AGGREGATE_DOCS[k] for k, shown in agg.items() if shown})
    return out


def dynamic_sort_key(col: str) -> tuple[Any, ...]:
    """Order of the dynamic columns: certified per metric and ε, then attacks per norm, attack, ε,
    metric, then the worst-case columns, then anything else by name."""
    m = _CERT_COL.match(col)
    if m:
        return (0, "cert", ("acc", "pixel acc", "mIoU").index(m["metric"]), eps_value(m["eps"]), 0)
    m = _SMOOTH_COL.match(col)
    if m:  # after the Lipschitz certificates: per σ, accuracy, mIoU, abstentions, each by radius
        order = ("acc", "mIoU", "abstain", "pixel abstain").index(m["metric"] or m["abstain"])
        return (0, "smoothed", eps_value(m["sigma"]), order, eps_value(m["eps"] or "0"))
    m = _ATTACK_COL.match(col)
    if m:
        group = 3 if m["attack"] == "robust" else 1 + (m["attack"] == "worst")
        return (
            group,
            m["norm"],
            f"{m['attack']} {m['tag'] or ''}",
            eps_value(m["eps"]),
            _METRIC_ORDER.index(m["metric"]),
        )
    return (4, col, "", 0.0, 0)


def worst_column(columns: Iterable[str], metric: str, attack: str = "worst") -> str | None:
    """The `worst_<norm>@<ε> <metric>` column with the largest ε, ℓ∞ preferred over ℓ2; None if none
    (attack "robust": the same for the protocols' robust columns)."""
    for norm in ("linf", "l2"):
        cands = [
            (eps_value(m["eps"]), c)
            for c in columns
            if (m := _ATTACK_COL.match(c))
            and m["attack"] == attack
            and m["norm"] == norm
            and m["metric"] == metric
        ]
        if cands:
            return max(cands)[1]
    return None


def main_cert_column(columns: Iterable[str], metric: str) -> str | None:
    """`cert <metric>@MAIN_RADIUS`, else the `cert <metric>@<ε>` of smallest ε present, else None."""
    cands = sorted((eps_value(m["eps"]), c) for c in columns if (m := _CERT_COL.match(c)) and m[1] == metric)
    main = cert_column(metric, MAIN_RADIUS)
    return main if any(c == main for _, c in cands) else (cands[0][1] if cands else None)


def key_columns(table: pd.DataFrame) -> list[str]:
    """A narrow selection, when present: identity and clean KEY_COLUMNS, attacked accuracy and mIoU
    (worst case, then the protocol's robust, at the largest ℓ∞ (else ℓ2) budget), certified accuracy
    and mIoU (`main_cert_column`), then L(A) upper / lower, L(R) lower, FNE."""
    end = KEY_COLUMNS.index(MIOU) + 1
    cols = [c for c in KEY_COLUMNS[:end] if c in table.columns]
    attacked = [worst_column(table.columns, m, a) for a in ("worst", "robust") for m in ("acc", "mIoU")]
    cols += [c for c in attacked + [main_cert_column(table.columns, m) for m in ("acc", "mIoU")] if c]
    return cols + [c for c in KEY_COLUMNS[end:] if c in table.columns]


# ---------------------------------------------------------------------------------------------------
# Cells
# ---------------------------------------------------------------------------------------------------


def is_missing(v: Any) -> bool:
    """True for None, pd.NA and NaN (an empty cell)."""
    if v is None or v is pd.NA:
        return True
    try:
        return bool(isinstance(v, (float, np.floating)) and math.isnan(v))
    except TypeError:
        return False


def to_py(v: Any) -> Any:
    """A JSON-friendly Python value: missing → None, numpy scalars → int/float/bool."""
    if is_missing(v):
        return None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    if isinstance(v, np.bool_):
        return bool(v)
    return v


def format_cell(column: str, v: Any) -> str:
    """Text of one cell for Markdown / HTML / terminal: empty when missing, λ as `1e-06`, seconds with
    one decimal, other numbers to 4 significant digits."""
    v = to_py(v)
    if v is None:
        return ""
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if column == LAM:
            return "0" if v == 0 else f"{v:.3g}"
        if column == TRAIN_S:
            return f"{v:.1f}"
        return f"{v:.4g}"
    return str(v)


def table_rows(table: pd.DataFrame, columns: Sequence[str] | None = None) -> list[list[str]]:
    """Formatted cell texts, row by row (see `format_cell`)."""
    cols = list(columns) if columns is not None else list(table.columns)
    return [[format_cell(c, table.at[i, c]) for c in cols] for i in table.index]


def raw_rows(table: pd.DataFrame) -> list[list[str]]:
    """Unformatted cell texts (full precision, empty when missing), row by row: the HTML sort keys."""
    cols = list(table.columns)
    return [["" if is_missing(v := table.at[i, c]) else str(to_py(v)) for c in cols] for i in table.index]
