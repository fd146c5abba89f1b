"""The README's route for outside models, end to end through the CLI (issue 26): a torchvision
resnet18 state_dict certified at 3×32×32 with --arch / --input-shape, `rlip models export
--input-shape`, and a net built with orthogonium's layers exported to .pt2 (bound ≤ 1.05)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from robustbench_lip.cli.app import app
from robustbench_lip.modelio import load_model
from robustbench_lip.modelio.hints import FREEZE_HINT, with_hint

FAST = ["--data", "none", "--n", "2", "--steps", "0", "--target", "A", "--device", "cpu"]


def _run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(app, list(args))
    return r.exit_code, r.output


def test_torchvision_state_dict_at_32(tmp_path: Path) -> None:
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(1)
    net = torchvision.models.resnet18(num_classes=7).eval()
    weights = tmp_path / "r18.pth"
    torch.save(net.state_dict(), weights)
    out = tmp_path / "cert.json"
    code, text = _run("certify", str(weights), "--arch", "torchvision:resnet18", "--input-shape", "3,32,32",
                      *FAST, "--json", str(out))  # fmt: skip
    assert code == 0, text
    rec = json.loads(out.read_text())
    assert rec["model"]["num_classes"] == 7 and rec["settings"]["input_shape"] == [3, 32, 32]
    up, lo = rec["lipschitz"]["A"]["upper"], rec["lipschitz"]["A"]["lower"]
    assert up is not None and lo is not None and up >= lo > 0
    # the same weights as a .pt2 traced at 32×32 run on 32×32 data
    code, text = _run("models", "export", str(weights), "--arch", "torchvision:resnet18", "--input-shape",
                      "3,32,32", "--out", str(tmp_path / "r18.pt2"))  # fmt: skip
    assert code == 0, text
    exported = load_model(tmp_path / "r18.pt2")
    assert exported.config.input_size == (3, 32, 32)
    x = torch.rand(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(exported(x), net(x), atol=1e-4)


def test_input_shape_errors_name_the_flag(tmp_path: Path) -> None:
    torchvision = pytest.importorskip("torchvision")
    weights = tmp_path / "r18.pt"
    torch.save(torchvision.models.resnet18(num_classes=3).state_dict(), weights)
    code, text = _run("certify", str(weights), "--arch", "torchvision:resnet18", "--input-shape", "1,32,32",
                      *FAST)  # fmt: skip
    assert code == 1 and "--input-shape" in text and "Traceback" not in text
    code, text = _run("certify", str(weights), *FAST, "--input-shape", "3,32,32")
    assert code == 1 and "--arch" in text


def _ortho_net() -> nn.Module:
    from orthogonium.layers import AdaptiveOrthoConv2d, MaxMin, OrthoLinear

    torch.manual_seed(3)
    return nn.Sequential(
        AdaptiveOrthoConv2d(1, 8, 3, padding=1, padding_mode="zeros"), MaxMin(),
        AdaptiveOrthoConv2d(8, 16, 3, stride=2, padding=1, padding_mode="zeros"), MaxMin(),
        nn.Flatten(), OrthoLinear(16 * 8 * 8, 5),
    ).eval()  # fmt: skip


def test_orthogonium_net_certifies_tightly(tmp_path: Path) -> None:
    pytest.importorskip("orthogonium")
    from torch.nn.utils import parametrize

    net = _ortho_net()
    for m in net.modules():  # the README's route: freeze the parametrized weights, then export
        if parametrize.is_parametrized(m):
            for name in list(m.parametrizations):
                parametrize.remove_parametrizations(m, name, leave_parametrized=True)
    path = tmp_path / "ortho.pt2"
    torch.export.save(torch.export.export(net, (torch.rand(2, 1, 16, 16),)), path)
    out = tmp_path / "cert.json"
    code, text = _run("certify", str(path), *FAST, "--json", str(out))
    assert code == 0, text
    a = json.loads(out.read_text())["lipschitz"]["A"]
    assert a["upper"] is not None and a["lower"] <= a["upper"] <= 1.05


def test_known_export_failures_get_the_freeze_hint() -> None:
    msg = "the model's graph cannot be decomposed to core ATen (Encountered a set_ on a graph input)"
    assert with_hint(msg).endswith(FREEZE_HINT) and "leave_parametrized=True" in with_hint(msg)
    assert with_hint("some other failure") == "some other failure"


def test_attack_takes_arch_too(tmp_path: Path) -> None:
    torchvision = pytest.importorskip("torchvision")
    weights = tmp_path / "r18.pt"
    torch.save(torchvision.models.resnet18(num_classes=10).state_dict(), weights)
    code, text = _run("attack", str(weights), "--arch", "torchvision:resnet18", "--data", "shapes", "--eps",
                      "8/255", "--n", "2", "--steps", "1", "--attack", "fgsm", "--device", "cpu")  # fmt: skip
    assert code == 0, text
    (rec,) = [json.loads(p.read_text()) for p in (tmp_path / "results").glob("attack-*.json")]
    assert rec["model"]["arch"] == "torchvision:resnet18" and rec["model"]["input_size"] == [3, 32, 32]
