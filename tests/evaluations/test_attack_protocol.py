"""The attack pipeline's SEA, `--preset standard` and per-attack RNG streams (evaluations.attacks.protocol).

Truths: a figure of one attack must not depend on which other attacks ran (same model, images,
seed); SEA (extended members, same streams as the singles) is ≤ PGD / SegPGD / CosPGD in pixel
accuracy (per-image minimum) and mIoU (greedy worst case) on the same images; every SEA point lies
within ε and in [0, 1]; a protocol record names its protocol, n, steps and restarts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from robustbench_lip.attacks.segmentation import pixel_logits_fn
from robustbench_lip.cli.app import app
from robustbench_lip.data import dataset_info, get_dataset
from robustbench_lip.errors import RlipError
from robustbench_lip.evaluations.attacks.metrics import evaluate_attacks
from robustbench_lip.evaluations.attacks.plan import resolve_attacks
from robustbench_lip.evaluations.attacks.protocol import AA_STEPS, SEARunner, attack_seed
from robustbench_lip.modelio import save_model
from robustbench_lip.models import create_model_for
from robustbench_lip.records import AttackRecord
from robustbench_lip.records.schema import Task
from tests.helpers.seg_models import lesions_unet, shapes_cam

EPS = [4 / 255, 8 / 255]
SINGLES = ("pgd", "segpgd", "cospgd")


def _lesions():
    model, _, _ = lesions_unet()
    return model, get_dataset("lesions", "test", n_test=24, image_size=16)


def _shapes():
    model, _, _ = shapes_cam()
    return model, get_dataset("shapes", "test", n_test=24, image_size=16)


def _by(out: dict) -> dict[tuple[str, str], dict]:
    return {(r["eps_text"], r["attack"]): r for r in out["results"]}


@pytest.mark.parametrize("make, objective", [(_shapes, None), (_shapes, "pixel"), (_lesions, None)])
def test_one_attack_same_alone_and_inside_all(make, objective) -> None:
    model, ds = make()
    kw = dict(steps=3, n=16, batch_size=6, seed=5, objective=objective)
    alone = _by(evaluate_attacks(model, ds, EPS, "pgd", **kw))
    inside = _by(evaluate_attacks(model, ds, EPS, ["all"], **kw))
    assert len(inside) > len(alone)  # really ran beside others (fgsm, segpgd, cospgd, worst)
    for key, row in alone.items():
        for metric in ("accuracy", "precision", "miou"):
            assert inside[key][metric] == row[metric], (key, metric)


def test_sea_same_alone_and_sharing_the_points_of_all() -> None:
    model, ds = _lesions()
    kw = dict(steps=2, n=12, batch_size=5, seed=3)
    alone = _by(evaluate_attacks(model, ds, [8 / 255], "sea", **kw))
    inside = _by(evaluate_attacks(model, ds, [8 / 255], ["sea", "all"], **kw))  # sea runs last, shares
    assert [r for (_, r) in inside][-2:] == ["sea", "worst"]
    for metric in ("accuracy", "precision", "miou"):
        assert inside[("8/255", "sea")][metric] == alone[("8/255", "sea")][metric], metric


def test_streams_depend_on_seed_eps_and_name_only() -> None:
    s = attack_seed(0, 8 / 255, "pgd")
    assert s == attack_seed(0, 8 / 255, "pgd")
    others = {attack_seed(1, 8 / 255, "pgd"), attack_seed(0, 4 / 255, "pgd"), attack_seed(0, 8 / 255, "fgsm")}
    assert len({s, *others}) == 4


@pytest.mark.parametrize("make, objective", [(_lesions, None), (_shapes, "pixel"), (_shapes, None)])
def test_sea_at_most_every_single_attack(make, objective) -> None:
    """Shapes with objective None (cls): PGD attacks the image label; SEA has that PGD as a member."""
    model, ds = make()
    out = _by(
        evaluate_attacks(model, ds, EPS, [*SINGLES, "sea"], steps=3, n=16, batch_size=6, objective=objective)
    )
    for eps in ("4/255", "8/255"):
        sea = out[(eps, "sea")]
        assert set(SINGLES) <= {m.replace("(cls)", "") for m in sea["members"]}
        for a in SINGLES:
            assert sea["miou"] <= out[(eps, a)]["miou"] + 1e-12, (eps, a)
            if out[(eps, a)]["accuracy"] is not None and sea["accuracy"] is not None:
                # pixel accuracy for the segmenter; for the classifier the image labels are not
                # what SEA attacks, so only its mask metric is bound
                if make is _lesions:
                    assert sea["accuracy"] <= out[(eps, a)]["accuracy"] + 1e-12, (eps, a)


def test_sea_points_within_eps_and_box() -> None:
    model, x, m = lesions_unet()
    for eps in EPS:
        run = SEARunner(model, eps, "linf", 3, 0, 2, 255, pixel_logits_fn(model))
        adv = run(x[:8], None, m[:8])
        assert adv.shape == x[:8].shape and float(adv.min()) >= 0 and float(adv.max()) <= 1
        assert float((adv - x[:8]).abs().max()) <= eps + 1e-6
        assert len(run.names) == 14 and run.worst_miou() is not None  # 7 members × 2 restarts


def test_preset_standard_records_protocol_n_steps_restarts() -> None:
    model, ds = _lesions()
    out = evaluate_attacks(model, ds, [8 / 255], preset="standard", steps=2, n=8, batch_size=8, restarts=2)
    assert out["protocol"] == "standard" and out["n"] == 8 and out["steps"] == 2 and out["restarts"] == 2
    assert [r["attack"] for r in out["results"]] == ["sea"]  # no "worst" row: the protocol's own figure
    r = out["results"][0]
    assert (r["protocol"], r["steps"], r["restarts"]) == ("standard", 2, 2)
    rec = AttackRecord.from_dict({"kind": "attack", "settings": {}, "model": None, "dataset": None, **out})
    assert rec.protocol == "standard" and rec.restarts == 2


def test_restarts_only_for_sea_and_sea_needs_masks() -> None:
    model, ds = _lesions()
    with pytest.raises(RlipError, match="restarts"):
        evaluate_attacks(model, ds, [8 / 255], "pgd", steps=1, n=2, restarts=2)
    with pytest.raises(RlipError, match="segmentation attack 'sea'"):
        resolve_attacks(["sea"], Task.CLASSIFICATION, False, "cls")  # a classifier without masks


def test_cli_preset_standard_on_a_classifier(tmp_path: Path) -> None:
    info = dataset_info("shapes", n_train=8, n_test=4, image_size=16, seed=0)
    torch.manual_seed(0)
    run = save_model(create_model_for("mresnet18_tiny", info), tmp_path / "r", dataset=info)
    out = tmp_path / "rec.json"
    args = ["attack", str(run), "--eps", "8/255", "--n", "2", "--device", "cpu", "--json", str(out)]
    res = CliRunner().invoke(app, [*args, "--preset", "standard", "--steps", "2"])
    assert res.exit_code == 0, res.output
    rec = json.loads(out.read_text())
    assert rec["protocol"] == "standard" and rec["settings"]["preset"] == "standard"
    by = {r["attack"]: r for r in rec["results"]}
    assert set(by) == {"autoattack", "sea"} and by["autoattack"]["steps"] == AA_STEPS
    assert by["sea"]["steps"] == 2 and by["sea"]["miou"] is not None
    bad = CliRunner().invoke(app, [*args, "--preset", "standard", "--attack", "pgd"])
    assert bad.exit_code == 1 and "exclude" in bad.output


def _attack_rec(run: Path, name: str, created: str, n: int, results: list[dict], protocol=None) -> None:
    from robustbench_lip.records import make_record, write_record

    payload = {
        "clean": {"accuracy": 0.9, "precision": 0.9, "miou": 0.5}, "results": results, "n": n,
        "task": "segmenter", "objective": "pixel", "protocol": protocol,
        "levels": {"accuracy": "pixel", "precision": "pixel", "miou": "pixel"},
    }  # fmt: skip
    rec = make_record(
        "attack", model={"arch": "unet"}, dataset={"name": "lesions"}, settings={"k": name},
        payload=payload, wall_s=0.0,
    )  # fmt: skip
    rec["created"] = created
    write_record(run / "results" / f"{name}.json", rec)


def _r(attack: str, miou: float, steps: int = 10, protocol: str | None = None) -> dict:
    return {"attack": attack, "norm": "linf", "eps": 8 / 255, "steps": steps, "accuracy": 0.8,
            "precision": 0.7, "miou": miou, "protocol": protocol}  # fmt: skip


def test_leaderboard_never_mixes_sample_sets_and_names_protocol_and_n(tmp_path: Path) -> None:
    from robustbench_lip.report import build_leaderboard
    from robustbench_lip.report.columns import column_parts

    run = tmp_path / "runs" / "r"
    # an old PGD on 297 images, a newer SegPGD on 64 images (lower mIoU), a standard SEA on 128
    _attack_rec(run, "a", "2026-01-01T00:00:00+00:00", 297, [_r("pgd", 0.40)])
    _attack_rec(run, "b", "2026-01-02T00:00:00+00:00", 64, [_r("segpgd", 0.10)])
    _attack_rec(run, "c", "2026-01-03T00:00:00+00:00", 128, [_r("sea", 0.30, 20, "standard")], "standard")
    lb = build_leaderboard(tmp_path / "runs")
    row = lb.table.iloc[0]
    # only the 297-image set: 0.10 is not mixed in
    assert row["worst_linf@8/255 [every attack, n=297] mIoU"] == pytest.approx(0.40)
    assert row["segpgd_linf@8/255 [custom, n=64] mIoU"] == pytest.approx(0.10)
    assert row["sea_linf@8/255 [standard, n=128, steps=20] mIoU"] == pytest.approx(0.30)
    attack_cols = [c for c in lb.table.columns if column_parts(c) is not None]
    assert len(attack_cols) == (3 + 1 + 1) * 3  # 3 attacks, worst, robust × 3 metrics
    assert all(column_parts(c)["protocol"] and column_parts(c)["n"] for c in attack_cols)  # all named
    col = "robust_linf@8/255 [standard, n=128, steps=20] mIoU"
    assert row[col] == pytest.approx(0.30)
    assert column_parts(col) == {
        "attack": "robust", "norm": "linf", "eps": "8/255", "metric": "mIoU",
        "protocol": "standard", "n": 128, "steps": "20",
    }  # fmt: skip
    long = lb.attacks.set_index("attack")
    assert long.loc["sea", "n"] == 128 and long.loc["sea", "protocol"] == "standard"
    assert long.loc["pgd", "n"] == 297
