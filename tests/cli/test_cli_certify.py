"""`rlip certify` end to end: zoo models, an i2i U-Net (R defined), a torchvision .pt2, bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from robustbench_lip.cli.app import app
from robustbench_lip.cli.certify import parse_shape
from robustbench_lip.errors import RlipError

runner = CliRunner()
FAST = ["--n", "6", "--steps", "1", "--device", "cpu"]


def _save(tmp_path: Path, arch: str, data: str, name: str) -> Path:
    from robustbench_lip.data import dataset_info
    from robustbench_lip.modelio import save_model
    from robustbench_lip.models import create_model_for

    info = dataset_info(data, n_train=8, n_test=8)
    torch.manual_seed(0)
    model = create_model_for(arch, info)
    out = tmp_path / name
    save_model(model, out, dataset=info)
    return out


def _records(run: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((run / "results").glob("certify-*.json"))]


def test_certify_shapes_classifier_writes_a_record(tmp_path):
    run = _save(tmp_path, "mresnet18_tiny", "shapes", "shapes-run")
    out = tmp_path / "c.json"
    res = runner.invoke(app, ["certify", str(run), *FAST, "--json", str(out), "--layers"])
    assert res.exit_code == 0, res.output
    assert "gap" in res.output
    (rec,) = _records(run)
    assert json.loads(out.read_text()) == rec
    assert rec["kind"] == "certify" and rec["dataset"]["name"] == "shapes" and rec["wall_s"] > 0
    a = rec["lipschitz"]["A"]
    assert a["upper"] is not None and 0 < a["lower"] <= a["upper"] and isinstance(a["converged"], bool)
    assert rec["lipschitz"]["R"] is None and rec["fne"]["violated"] is None
    assert set(rec["certified_accuracy"]) == {"36/255", "72/255", "108/255"}
    assert rec["certified_miou"] is None and rec["unsupported_ops"] == [] and rec["layers"]
    assert rec["settings"]["n"] == 6


def test_certify_lesions_i2i_unet_has_reflection_and_certified_miou(tmp_path):
    run = _save(tmp_path, "unet_i2i_tiny", "lesions", "lesions-run")
    res = runner.invoke(app, ["certify", str(run), *FAST, "--eps", "0,36/255"])
    assert res.exit_code == 0, res.output
    (rec,) = _records(run)
    r = rec["lipschitz"]["R"]
    assert r is not None and r["upper_kind"] == "certified"
    assert r["upper"] == pytest.approx(2 * rec["lipschitz"]["A"]["upper"] + 1)
    assert rec["fne"]["violated"] in (True, False)
    assert set(rec["certified_miou"]) == {"0", "36/255"}
    assert rec["certified_accuracy"] is None


def test_certify_torchvision_resnet18_pt2_without_data(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    net = torchvision.models.resnet18(num_classes=4).eval()
    path = tmp_path / "rn18.pt2"
    torch.export.save(torch.export.export(net, (torch.rand(1, 3, 32, 32),)), path)
    out = tmp_path / "rn.json"
    res = runner.invoke(
        app,
        [
            "certify",
            str(path),
            "--data",
            "none",
            "--input-shape",
            "3,32,32",
            "--n",
            "2",
            "--steps",
            "0",
            "--json",
            str(out),
            "--device",
            "cpu",
        ],
    )
    assert res.exit_code == 0, res.output
    rec = json.loads(out.read_text())
    assert rec["lipschitz"]["A"]["upper"] >= rec["lipschitz"]["A"]["lower"] > 0
    assert rec["unsupported_ops"] == [] and rec["certified_accuracy"] is None


def test_unknown_operator_warns_and_exits_zero(tmp_path):
    class Sq(nn.Module):
        def forward(self, x):
            return (x * x).mean(dim=(2, 3))

    path = tmp_path / "sq.pt2"
    torch.export.save(torch.export.export(Sq(), (torch.rand(1, 1, 4, 4),)), path)
    out = tmp_path / "sq.json"
    res = runner.invoke(
        app, ["certify", str(path), "--data", "none", "--input-shape", "1,4,4", *FAST, "--json", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "no certified upper bound" in res.output and "not globally Lipschitz" in res.output
    rec = json.loads(out.read_text())
    assert rec["lipschitz"]["A"]["upper"] is None and rec["unsupported_ops"] == ["aten.mul.Tensor"]
    assert rec["bound_problems"][0]["non_lipschitz"]


def test_no_model_certifies_finished_runs_once_per_settings(tmp_path):
    runs = tmp_path / "runs"
    run = _save(runs, "unet_i2i_tiny", "lesions", "r1")
    (run / "results").mkdir(exist_ok=True)
    (run / "results" / "train.json").write_text(json.dumps({"kind": "train", "status": "finished"}))
    res = runner.invoke(app, ["certify", "--runs-dir", str(runs), *FAST, "--target", "A"])
    assert res.exit_code == 0, res.output
    assert len(_records(run)) == 1
    res = runner.invoke(app, ["certify", "--runs-dir", str(runs), *FAST, "--target", "A"])
    assert res.exit_code == 0 and "nothing to certify" in res.output
    # other settings are another evaluation (the "already recorded" rule compares settings keys)
    res = runner.invoke(app, ["certify", "--runs-dir", str(runs), *FAST, "--target", "A", "--steps", "0"])
    assert res.exit_code == 0, res.output
    assert len(_records(run)) == 2


@pytest.mark.parametrize(
    "args",
    [
        ["certify", "/nonexistent/model", "--n", "2"],
        ["certify", "/nonexistent/model", "--input-shape", "3,32"],
        ["certify", "/nonexistent/model", "--input-shape", "a,b,c"],
        ["certify", "/nonexistent/model", "--eps", "abc"],
        ["certify", "/nonexistent/model", "--eps", "1/0"],
    ],
)
def test_bad_input_is_one_line_and_exit_1(args):
    res = runner.invoke(app, args)
    assert res.exit_code == 1
    assert "error" in res.output and "Traceback" not in res.output
    assert len([line for line in res.output.strip().splitlines() if line.strip()]) == 1


def test_reflection_on_a_classifier_is_an_error(tmp_path):
    run = _save(tmp_path, "mresnet18_tiny", "shapes", "cls")
    res = runner.invoke(app, ["certify", str(run), *FAST, "--target", "reflection"])
    assert res.exit_code == 1 and "reflection" in res.output and "Traceback" not in res.output


def test_parse_shape():
    assert parse_shape("3,32,32") == (3, 32, 32)
    for bad in ("3,32", "0,4,4", "x"):
        with pytest.raises(RlipError):
            parse_shape(bad)


def test_list_rules_prints_every_family():
    res = runner.invoke(app, ["certify", "--list-rules"])
    assert res.exit_code == 0, res.output
    for word in (
        "linear",
        "activations",
        "spatial",
        "structural",
        "non-Lipschitz",
        "aten.convolution.default",
    ):
        assert word in res.output


class _InstanceNormNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(1, 2, 3, padding=1)
        self.n = nn.InstanceNorm2d(2, affine=True)

    def forward(self, x):
        return self.n(self.c(x)).mean(dim=(2, 3))


class _DoubleInplaceRelu(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.c = nn.Conv2d(1, 1, 3, padding=1)
        self.r = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.r(self.r(self.c(x)))


def _odd_models():
    return {
        "hardsigmoid": (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.Hardsigmoid()).eval(), False),
        "instancenorm": (_InstanceNormNet().eval(), False),
        "double-relu": (_DoubleInplaceRelu().eval(), False),
        "train-mode-bn": (nn.Sequential(nn.Conv2d(1, 2, 3, padding=1), nn.BatchNorm2d(2)).train(), True),
        "strided-features": (nn.Conv2d(1, 3, 3, stride=2).eval(), False),
    }


@pytest.mark.parametrize("name", list(_odd_models()))
def test_odd_models_give_a_value_or_null_with_a_reason_never_a_traceback(tmp_path, name):
    model, train = _odd_models()[name]
    path = tmp_path / f"{name}.pt2"
    torch.export.save(torch.export.export(model, (torch.rand(1, 1, 6, 6),), strict=False), path)
    out = tmp_path / "r.json"
    res = runner.invoke(
        app, ["certify", str(path), "--data", "none", "--input-shape", "1,6,6", *FAST, "--json", str(out)]
    )
    assert "Traceback" not in res.output
    assert res.exit_code == 0, res.output
    rec = json.loads(out.read_text())
    a = rec["lipschitz"]["A"]
    if a["upper"] is None:
        assert rec["bound_problems"] and all(p["reason"] for p in rec["bound_problems"])
        assert "no certified upper bound" in res.output
    else:
        assert a["upper_kind"] == "certified" and a["upper"] == a["upper"]  # finite, not NaN
        assert a["lower"] is None or a["lower"] <= a["upper"]
    if train:
        assert a["upper"] is None and "batch statistics" in json.dumps(rec["bound_problems"])


def test_nan_weight_is_refused_in_one_line(tmp_path):
    conv = nn.Conv2d(1, 1, 3, padding=1).eval()
    path = tmp_path / "nan.pt2"
    torch.export.save(torch.export.export(conv, (torch.rand(1, 1, 6, 6),)), path)
    ep = torch.export.load(path)
    with torch.no_grad():
        for v in ep.state_dict.values():
            v.fill_(float("nan"))
    torch.export.save(ep, path)
    res = runner.invoke(app, ["certify", str(path), "--data", "none", "--input-shape", "1,6,6", *FAST])
    assert res.exit_code != 0
    assert "non-finite" in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) <= 3
