"""`rlip models list | info | export` through the Typer app."""

from __future__ import annotations

import builtins
import io
from pathlib import Path

import torch
from typer.testing import CliRunner

from robustbench_lip.cli.app import app
from robustbench_lip.modelio import load_model, save_model
from robustbench_lip.models import create_model, list_models

runner = CliRunner()


def _err(res: object) -> str:
    return getattr(res, "stderr", "") or getattr(res, "output", "")


def test_models_list_shows_every_model() -> None:
    res = runner.invoke(app, ["models", "list"])
    assert res.exit_code == 0, res.output
    for name in list_models():
        assert name in res.stdout
    row = next(line for line in res.stdout.splitlines() if "unet_i2i_tiny" in line)
    assert "image2image" in row and "1×16×16" in row and "yes" in row and "7.0k" in row
    row = next(line for line in res.stdout.splitlines() if "│mresnet18_tiny " in line)
    assert "classification" in row and "3×16×16" in row and " no " in row


def test_models_list_pattern_and_no_match() -> None:
    res = runner.invoke(app, ["models", "list", "*tiny*"])
    assert res.exit_code == 0
    assert "unet_tiny" in res.stdout and "mresnet18_w16" not in res.stdout
    res = runner.invoke(app, ["models", "list", "nothing*"])
    assert res.exit_code == 1
    assert "no registered model" in _err(res) and "Traceback" not in _err(res)


def test_models_export_and_info(tmp_path: Path) -> None:
    # a saved model directory exports with its weights
    src = create_model("unet_i2i_tiny").eval()
    save_model(src, tmp_path / "run")
    res = runner.invoke(app, ["models", "info", str(tmp_path / "run")])
    assert res.exit_code == 0 and "unet_i2i_tiny" in res.stdout and "2 mask classes" in res.stdout
    out = tmp_path / "m.pt2"
    res = runner.invoke(app, ["models", "export", str(tmp_path / "run"), "-o", str(out)])
    assert res.exit_code == 0, _err(res)
    assert "wrote" in res.stdout and out.is_file()
    x = torch.rand(3, 1, 16, 16)
    model = load_model(out)
    assert model.config.task == "image2image"
    torch.testing.assert_close(model(x), src(x), atol=1e-5, rtol=1e-5)


def test_models_export_errors(tmp_path: Path) -> None:
    res = runner.invoke(app, ["models", "export", "no_such_model", "--out", str(tmp_path / "x.pt2")])
    assert res.exit_code == 1 and "neither a file nor a registered model" in _err(res)
    res = runner.invoke(app, ["models", "export", "unet_tiny", "--out", str(tmp_path / "x.pt")])
    assert res.exit_code == 1 and ".pt2" in _err(res)
    assert not (tmp_path / "x.pt2").exists()


class _Evil:
    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[object, tuple[str, str]]:
        return (builtins.open, (self.marker, "w"))


def test_models_info_refuses_code(tmp_path: Path) -> None:
    marker = tmp_path / "MARKER"
    buf = io.BytesIO()
    torch.save({"payload": _Evil(marker)}, buf)
    (tmp_path / "evil.pt").write_bytes(buf.getvalue())
    res = runner.invoke(app, ["models", "info", str(tmp_path / "evil.pt")])
    assert res.exit_code == 1
    assert "refuses" in _err(res) and "Traceback" not in _err(res)
    assert not marker.exists()
