"""ColumnKey: the one encoding of dynamic column names — name ↔ parse, docs, order and groups."""

from __future__ import annotations

import pytest

from robustbench_lip.report.columns import (
    PATTERN_DOCS,
    ColumnKey,
    column_doc,
    dynamic_sort_key,
    legend,
)
from robustbench_lip.report.render.headers import column_group

NAMES = [
    "cert acc@36/255",
    "cert pixel acc@0",
    "cert mIoU@1",
    "smoothed cert acc@0.25 (σ=0.5)",
    "smoothed cert mIoU@108/255 (σ=0.25)",
    "smoothed abstain (σ=0.25)",
    "smoothed pixel abstain (σ=1)",
    "pgd_linf@8/255 [custom, n=64] acc",
    "pgd(pixel)_l2@0.5 [custom, n=16] pixel prec",
    "sea_linf@4/255 [standard, n=128, steps=20] mIoU",
    "worst_linf@8/255 [every attack, n=64] prec",
    "robust_l2@1 [standard, n=?] pixel acc",
    "fgsm_linf@2/255 acc",  # records before tags: no bracket
]


@pytest.mark.parametrize("name", NAMES)
def test_parse_is_the_inverse_of_name(name: str) -> None:
    key = ColumnKey.parse(name)
    assert key is not None and key.name() == name == str(key)
    assert key.pattern() in PATTERN_DOCS  # every column has a documented pattern
    assert column_doc(name) and column_doc(name) == key.doc()
    group, label = column_group(name)
    assert group and label and len(label) < len(name)


@pytest.mark.parametrize("name", ["run", "L(A) upper", "cert acc", "pgd_linf@8/255 [custom] accuracy", ""])
def test_other_names_do_not_parse(name: str) -> None:
    assert ColumnKey.parse(name) is None


def test_builders_and_parts() -> None:
    assert ColumnKey.smoothed("acc", "1", 0.25).name() == "smoothed cert acc@1 (σ=0.25)"
    key = ColumnKey.attacked("robust", "linf", "8/255", "mIoU", "standard, n=128, steps=20")
    assert key.kind == "robust" and key.attack is None
    assert key.parts() == {
        "attack": "robust", "norm": "linf", "eps": "8/255", "metric": "mIoU",
        "protocol": "standard", "n": 128, "steps": "20",
    }  # fmt: skip
    assert ColumnKey.attacked("pgd(cls)", "l2", "0.5", "acc").pattern().startswith("<attack>(<objective>)")


def test_order_certified_then_smoothed_then_attacks_worst_robust_by_eps() -> None:
    shuffled = [*NAMES[::-1], "zzz registered"]
    order = sorted(shuffled, key=dynamic_sort_key)
    kinds = [k.kind if (k := ColumnKey.parse(c)) else "other" for c in order]
    rank = {"cert": 0, "smoothed": 0, "attack": 1, "worst": 2, "robust": 3, "other": 4}
    assert [rank[k] for k in kinds] == sorted(rank[k] for k in kinds)
    certs = [c for c in order if c.startswith("cert ")]
    assert certs == ["cert acc@36/255", "cert pixel acc@0", "cert mIoU@1"]  # per metric, then ε
    eps_sorted = sorted(["cert acc@1", "cert acc@8/255", "cert acc@0.5"], key=dynamic_sort_key)
    assert eps_sorted == ["cert acc@8/255", "cert acc@0.5", "cert acc@1"]  # by value, not text


def test_legend_lists_each_pattern_once_in_doc_order() -> None:
    lg = legend(["run", *NAMES])
    patterns = [p for p in lg if p in PATTERN_DOCS]
    assert patterns == [p for p in PATTERN_DOCS if p in patterns]
    assert "cert acc@<ε>" in lg and "worst_<norm>@<ε> [every attack, n=<n>] <metric>" in lg
