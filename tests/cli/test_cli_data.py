"""`rlip data list | preview | export` through typer's CliRunner: outputs, round trips, bad input."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from robustbench_lip.cli.app import app
from robustbench_lip.data import get_dataset


def _runner() -> CliRunner:
    try:
        return CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        return CliRunner()


def _run(*args: str):
    return _runner().invoke(app, ["data", *args])


def _fails_one_line(result, *needles: str) -> None:
    assert result.exit_code == 1, result.output
    err = result.stderr.strip()
    assert err.startswith("error:") and "\n" not in err and "Traceback" not in err
    for needle in needles:
        assert needle in err


def test_list_shows_every_dataset(tmp_path: Path) -> None:
    r = _run("list")
    assert r.exit_code == 0, r.output
    for name in ("shapes", "lesions", "cifar10", "coco", "4000", "needs"):
        assert name in r.stdout


def test_preview_builtin_writes_png(tmp_path: Path) -> None:
    out = tmp_path / "sub" / "p.png"
    r = _run("preview", "lesions", "--n", "6", "--seed", "2", "--out", str(out))
    assert r.exit_code == 0, r.output
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size[0] > 200
    assert sorted(p.name for p in out.parent.iterdir()) == ["p.png"]  # no temporary file left


def test_export_then_preview_and_load_through_real_loaders(tmp_path: Path) -> None:
    r = _run("export", "shapes", "--format", "cifar", "--out", str(tmp_path / "c"), "--n", "5", "--seed", "4")
    assert r.exit_code == 0, r.output
    ds = get_dataset("cifar10", "test", root=str(tmp_path / "c"))
    src = get_dataset("shapes", "test", n_test=5, seed=4)
    assert torch.equal(ds.uint8_images(), src.uint8_images()) and torch.equal(
        ds.tensors()[1], src.tensors()[1]
    )
    r = _run(
        "preview", "cifar10", "--root", str(tmp_path / "c"), "--n", "3", "--out", str(tmp_path / "c.png")
    )
    assert r.exit_code == 0, r.output and (tmp_path / "c.png").is_file()

    r = _run(
        "export", "shapes", "--format", "coco", "--out", str(tmp_path / "k"), "--n", "4", "--split", "test"
    )
    assert r.exit_code == 0, r.output
    assert not (tmp_path / "k" / "train2017").exists()
    r = _run(
        "preview",
        "coco",
        "--root",
        str(tmp_path / "k"),
        "--seed",
        "1",
        "--n",
        "2",
        "--out",
        str(tmp_path / "k.png"),
    )
    assert r.exit_code == 0, r.output and (tmp_path / "k.png").is_file()


def test_bad_inputs_are_one_line_errors_without_output(tmp_path: Path) -> None:
    png = tmp_path / "x.png"
    _fails_one_line(_run("preview", "mnist", "--out", str(png)), "unknown dataset", "shapes")
    _fails_one_line(_run("preview", "shapes", "--n", "0", "--out", str(png)), "--n")
    _fails_one_line(
        _run("export", "shapes", "--format", "cifar", "--n", "0", "--out", str(tmp_path / "e")), "--n"
    )
    _fails_one_line(
        _run("preview", "cifar10", "--root", str(tmp_path / "none"), "--out", str(png)), "cifar-10-batches-py"
    )
    _fails_one_line(
        _run("preview", "coco", "--root", str(tmp_path / "none"), "--out", str(png)), "instances_val2017"
    )
    _fails_one_line(_run("preview", "shapes", "--out", str(tmp_path / "x.jpg")), ".png")
    (tmp_path / "file").write_text("not a folder")
    _fails_one_line(_run("preview", "shapes", "--n", "2", "--out", str(tmp_path / "file" / "p.png")))
    _fails_one_line(
        _run("export", "shapes", "--format", "coco", "--n", "2", "--out", str(tmp_path / "file" / "d"))
    )
    _fails_one_line(
        _run("export", "lesions", "--format", "cifar", "--image-size", "64", "--out", str(tmp_path / "g"))
    )
    # a corrupt root: truncated pickle
    assert (
        _run("export", "shapes", "--format", "cifar", "--n", "3", "--out", str(tmp_path / "c")).exit_code == 0
    )
    batch = tmp_path / "c" / "cifar-10-batches-py" / "test_batch"
    batch.write_bytes(batch.read_bytes()[:100])
    _fails_one_line(_run("preview", "cifar10", "--root", str(tmp_path / "c"), "--out", str(png)), "corrupt")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c", "file"]  # nothing else was written


@pytest.mark.parametrize("args", [["export", "shapes", "--out", "x"], ["preview", "shapes"]])
def test_missing_required_options_are_usage_errors(args: list[str]) -> None:
    assert _run(*args).exit_code == 2
