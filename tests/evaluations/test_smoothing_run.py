"""`rlip certify --smoothing` end to end: records of their own (certificate "smoothed", one per σ), the
"already recorded" rule, the leaderboard's separate columns, round trip, RNG / modes / determinism."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from robustbench_lip.cli.app import app
from robustbench_lip.evaluations.lipschitz.run import runs_to_certify
from robustbench_lip.evaluations.smoothing.run import (
    _smooth,
    certify_smoothed_run,
    parse_sigmas,
    planned_smoothing_settings,
)
from robustbench_lip.records import (
    CertificateKind,
    CertifyRecord,
    is_recorded,
    make_record,
    read_record,
    record_path,
    write_record,
)
from robustbench_lip.report import build_leaderboard, column_doc, legend

TINY = ["--n-train", "32", "--n-test", "8", "--image-size", "16", "--device", "cpu", "--batch-size", "16"]
FAST = ["--sigma-points", "4", "--epochs", "1", "--optimizer", "adamw", "--lr", "1e-3", "--reg-subbatch", "4"]
SMOOTH = ["--smoothing-n", "40", "--smoothing-n0", "8", "--n", "4", "--device", "cpu"]


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        return CliRunner()


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two tiny runs trained by `rlip train`: a penalised mResNet classifier (CAM masks) on shapes and
    an image-to-image U-Net on lesions."""
    root = tmp_path_factory.mktemp("runs")
    for model, data, lam in (("mresnet18_tiny", "shapes", "1e-4"), ("unet_i2i_tiny", "lesions", "0")):
        out = root / f"{data}-run"
        args = ["train", "--model", model, "--data", data, "--lam", lam, "--out", str(out)]
        res = _runner().invoke(app, args + TINY + FAST)
        assert res.exit_code == 0, res.output
    return root


def _smoothed(run: Path) -> list[dict]:
    recs = [json.loads(p.read_text()) for p in sorted((run / "results").glob("certify-*.json"))]
    return [r for r in recs if r.get("certificate") == "smoothed"]


def test_cli_writes_smoothed_records_skips_reruns_and_leaderboard_shows_them(runs: Path) -> None:
    res = _runner().invoke(app, ["certify", "--runs-dir", str(runs), "--smoothing", "0.25,0.5", *SMOOTH])
    assert res.exit_code == 0, res.output
    assert "smoothed certificate" in res.stdout and "probability ≥ 1 − α" in res.stdout
    shapes, lesions = runs / "shapes-run", runs / "lesions-run"
    for run in (shapes, lesions):
        recs = _smoothed(run)
        assert sorted(r["settings"]["sigma"] for r in recs) == [0.25, 0.5]
        for r in recs:
            s = r["settings"]
            assert (s["certificate"], s["n"], s["smoothing_n"], s["smoothing_n0"], s["alpha"]) == (
                "smoothed", 4, 40, 8, 0.001
            )
            assert r["lipschitz"] is None and r["certified_accuracy"] is None and r["clean"] is None
            sm = r["smoothing"]
            assert (sm["sigma"], sm["n"], sm["n0"], sm["alpha"]) == (s["sigma"], 40, 8, 0.001)
            seg = sm["segmentation"]
            assert set(seg["certified_miou"]) == {"36/255", "72/255", "108/255", "0.25", "0.5", "1"}
            assert set(seg["pixel_abstention_rate"]) == set(seg["certified_miou"])
    cls = _smoothed(shapes)[0]["smoothing"]["classification"]
    assert len(cls["sample_radii"]) == 4 and 0 <= cls["abstention_rate"] <= 1
    # abstentions are null radii, and certified accuracy counts exactly the correct, certified images
    pairs = zip(cls["sample_radii"], cls["predictions"], strict=True)
    assert all((r is None) == (p is None) for r, p in pairs)
    for key, r0 in (("36/255", 36 / 255), ("0.25", 0.25)):
        ok = [p == y and r is not None and r > r0 for p, y, r in
              zip(cls["predictions"], cls["labels"], cls["sample_radii"], strict=True)]  # fmt: skip
        assert cls["certified_accuracy"][key] == sum(ok) / 4
    assert _smoothed(shapes)[0]["smoothing"]["masks"]["source"].startswith("CAM")
    assert _smoothed(lesions)[0]["smoothing"]["classification"] is None

    files = sorted(p.name for p in (shapes / "results").glob("*.json"))
    again = _runner().invoke(app, ["certify", "--runs-dir", str(runs), "--smoothing", "0.5,0.25", *SMOOTH])
    assert again.exit_code == 0 and "nothing to certify" in again.stdout
    assert sorted(p.name for p in (shapes / "results").glob("*.json")) == files
    # the Lipschitz certificate of the same runs is not taken as done
    assert runs_to_certify(runs, n=4) == [lesions, shapes]

    lb = build_leaderboard(runs)
    row = lb.table.set_index("run").loc["shapes-run"]
    rec25 = next(r for r in _smoothed(shapes) if r["settings"]["sigma"] == 0.25)["smoothing"]
    assert row["smoothed cert acc@0.25 (σ=0.25)"] == rec25["classification"]["certified_accuracy"]["0.25"]
    assert row["smoothed cert mIoU@1 (σ=0.5)"] is not None
    assert row["smoothed abstain (σ=0.25)"] == rec25["classification"]["abstention_rate"]
    assert not any(c.startswith("cert ") for c in lb.columns)  # nothing in the Lipschitz columns
    assert lb.table.set_index("run").loc["shapes-run", "λ"] == 1e-4  # a penalty-trained row
    cols = [c for c in lb.columns if c.startswith("smoothed")]
    assert all(column_doc(c) for c in cols) and "smoothed cert acc@<r> (σ=<σ>)" in legend(lb.columns)


def test_other_settings_are_another_record_and_json_option(runs: Path, tmp_path: Path) -> None:
    run = runs / "lesions-run"
    before = len(_smoothed(run))
    out = tmp_path / "s.json"
    args = ["certify", str(run), "--smoothing", "0.25", *SMOOTH, "--seed", "3", "--json", str(out)]
    res = _runner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert len(_smoothed(run)) == before + 1
    rec = json.loads(out.read_text())
    assert rec["settings"]["seed"] == 3 and rec["certificate"] == "smoothed"
    planned = planned_smoothing_settings(run, sigma=0.25, n=4, smoothing_n=40, smoothing_n0=8, seed=3)
    assert is_recorded(run, "certify", planned)


def test_record_round_trip_and_not_confused_with_lipschitz(runs: Path) -> None:
    run = runs / "lesions-run"
    path = next(p for p in sorted((run / "results").glob("certify-*.json"))
                if json.loads(p.read_text()).get("certificate") == "smoothed")  # fmt: skip
    rec = read_record(path)
    assert isinstance(rec, CertifyRecord) and rec.certificate is CertificateKind.SMOOTHED
    assert CertifyRecord.from_dict(rec.to_dict()).to_dict() == rec.to_dict() == json.loads(path.read_text())
    assert path == record_path(run, "certify", rec.settings)
    lip = CertifyRecord(model=None, dataset=None, settings={"n": 1}, lipschitz={"A": None})
    assert "smoothing" not in lip.to_dict() and lip.certificate is CertificateKind.LIPSCHITZ


def test_leaderboard_keeps_lipschitz_and_smoothed_columns_apart(tmp_path: Path) -> None:
    run = tmp_path / "r"
    common = {"model": {"arch": "m"}, "dataset": {"name": "shapes"}, "wall_s": 1.0}
    lip = make_record("certify", settings={"n": 4}, payload={
        "certificate": "lipschitz", "lipschitz": {"A": {"upper": 2.0}}, "certified_accuracy": {"36/255": 0.1},
        "clean": {"accuracy": 0.9}}, **common)  # fmt: skip
    sm = make_record("certify", settings={"certificate": "smoothed", "sigma": 0.5}, payload={
        "certificate": "smoothed", "lipschitz": None, "certified_accuracy": None, "clean": None,
        "smoothing": {"sigma": 0.5, "classification": {
            "certified_accuracy": {"36/255": 0.7, "1": 0.2}, "abstention_rate": 0.25,
            "clean": {"accuracy": 0.3}},
            "segmentation": None}}, **common)  # fmt: skip
    write_record(record_path(run, "certify", lip["settings"]), lip)
    write_record(record_path(run, "certify", sm["settings"]), sm)
    row = build_leaderboard(tmp_path).table.iloc[0]
    assert row["cert acc@36/255"] == 0.1 and row["acc"] == 0.9 and row["L(A) upper"] == 2.0
    assert row["smoothed cert acc@36/255 (σ=0.5)"] == 0.7 and row["smoothed cert acc@1 (σ=0.5)"] == 0.2
    assert row["smoothed abstain (σ=0.5)"] == 0.25


def test_deterministic_rng_and_modes_untouched(runs: Path) -> None:
    run = runs / "shapes-run"
    torch.manual_seed(11)
    random.seed(2)
    np.random.seed(2)
    states = (torch.get_rng_state(), random.getstate(), np.random.get_state()[1].copy())
    seen: list[tuple[int, int]] = []
    opts = {"sigma": 0.25, "n": 3, "smoothing_n": 30, "smoothing_n0": 6, "device": "cpu", "write": False}
    a = certify_smoothed_run(run, seed=1, progress=lambda d, t: seen.append((d, t)), **opts)
    assert torch.equal(torch.get_rng_state(), states[0]) and random.getstate() == states[1]
    assert np.array_equal(np.random.get_state()[1], states[2])
    torch.manual_seed(999)  # another global state must not matter
    b = certify_smoothed_run(run, seed=1, **opts)
    c = certify_smoothed_run(run, seed=2, **opts)
    strip = ("wall_s",)
    for part in ("classification", "segmentation"):
        pa, pb = ({k: v for k, v in r.smoothing[part].items() if k not in strip} for r in (a, b))
        assert pa == pb
    assert (c.settings["seed"], c.smoothing["seed"], a.settings["seed"]) == (2, 2, 1)  # seed → new record
    # progress: two passes (classification, CAM masks) of 3 images, monotone, ends at the total
    assert seen[-1] == (6, 6) and all(x[0] <= y[0] for x, y in itertools.pairwise(seen))
    # the model's modes come back as they were (a mixed state included)
    from robustbench_lip.data import get_dataset
    from robustbench_lip.modelio import load_model

    model = load_model(run, device="cpu").train()
    next(m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)).eval()
    before = [m.training for m in model.modules()]
    ds = get_dataset("shapes", split="test", n_train=32, n_test=8, image_size=16)
    opts2 = {"n_images": 2, "n0": 4, "n": 8, "alpha": 0.001, "seed": 0, "batch_size": 16}
    _smooth(model, ds, 0.25, opts2, None)
    assert [m.training for m in model.modules()] == before


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--smoothing", "abc"], "bad --smoothing value"),
        (["--smoothing", "0"], "sigma must be a positive"),
        (["--smoothing", "0.25", "--data", "none"], "labelled data"),
        (["--smoothing", "0.25,0.5", "--json", "x.json"], "--json needs a single"),
        (["--smoothing", "0.25", "--smoothing-alpha", "2"], "alpha"),
        (["--smoothing", "0.25", "--layers"], "--layers"),
    ],
)
def test_bad_input_is_one_line_error(runs: Path, extra: list[str], message: str) -> None:
    res = _runner().invoke(app, ["certify", str(runs / "lesions-run"), *SMOOTH, *extra])
    assert res.exit_code == 1
    err = res.stderr if hasattr(res, "stderr") else res.output
    assert message in err and "Traceback" not in err and len(err.strip().splitlines()) <= 2


def test_parse_sigmas() -> None:
    assert parse_sigmas("0.25, 64/255,0.25") == [0.25, 64 / 255]


def test_a_classifier_without_masks_is_smoothed_on_labels_only(tmp_path: Path) -> None:
    """A dense-head classifier (no mask classes) on data with masks: the image certificate, and a
    record saying why no masks are certified (it used to stop at 'no class maps')."""
    out = tmp_path / "dense"
    args = ["train", "--model", "sllnet_tiny", "--data", "shapes", "--lam", "0", "--out", str(out)]
    res = _runner().invoke(app, [*args, *TINY, *FAST])
    assert res.exit_code == 0, res.output
    res = _runner().invoke(app, ["certify", str(out), "--smoothing", "0.25", *SMOOTH])
    assert res.exit_code == 0, res.output
    (rec,) = _smoothed(out)
    assert "no mask" in json.dumps(rec["smoothing"]).lower()
