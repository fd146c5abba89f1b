"""certify and attack take the dataset folder (and options) from the run: train on a folder dataset
with a relative --root, then certify and attack from elsewhere without --root; --root overrides."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from robustbench_lip.cli.app import app
from tests.helpers.folders import write_image_folder

FAST_TRAIN = ["--epochs", "1", "--batch-size", "6", "--image-size", "16", "--device", "cpu", "--optimizer",
              "adamw", "--sigma-points", "2", "--reg-subbatch", "2", "--lam", "0.1"]  # fmt: skip


def _run(*args: str) -> tuple[int, str]:
    try:
        r = CliRunner(mix_stderr=False).invoke(app, list(args))  # click < 8.2
    except TypeError:
        r = CliRunner().invoke(app, list(args))
    return r.exit_code, r.output + (r.stderr if r.stderr_bytes is not None else "")


def test_certify_and_attack_without_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write_image_folder(tmp_path / "data" / "pets")
    monkeypatch.chdir(tmp_path / "data")  # a relative --root, as typed by a user
    run = tmp_path / "run"
    code, out = _run("train", "--model", "mresnet18_tiny", "--data", "folder", "--root", "pets",
                     "--out", str(run), *FAST_TRAIN)  # fmt: skip
    assert code == 0, out
    meta = json.loads((run / "config.json").read_text())
    assert meta["training"]["settings"]["root"] == str(tmp_path / "data" / "pets")  # recorded absolute
    monkeypatch.chdir(tmp_path)  # elsewhere: "pets" would not resolve
    code, out = _run("attack", str(run), "--n", "2", "--steps", "1", "--eps", "8/255", "--batch-size", "2",
                     "--device", "cpu")  # fmt: skip
    assert code == 0, out
    (att,) = [json.loads(p.read_text()) for p in (run / "results").glob("attack-*.json")]
    assert att["dataset"] == meta["dataset"] and att["n"] == 2
    code, out = _run("certify", str(run), "--n", "2", "--steps", "0", "--target", "A", "--eps", "36/255",
                     "--device", "cpu")  # fmt: skip
    assert code == 0, out
    (cert,) = [json.loads(p.read_text()) for p in (run / "results").glob("certify-*.json")]
    assert cert["dataset"] == meta["dataset"] and cert["certified_accuracy"] is not None
    # an explicit --root wins over the saved one
    code, out = _run("attack", str(run), "--root", str(tmp_path / "nowhere"), "--n", "2", "--eps", "8/255",
                     "--device", "cpu")  # fmt: skip
    assert code == 1 and "nowhere" in out
    # the saved folder is gone: the error says where it looked and what to do
    (tmp_path / "data" / "pets").rename(tmp_path / "data" / "moved")
    code, out = _run("attack", str(run), "--n", "2", "--eps", "8/255", "--device", "cpu")
    assert code == 1 and "pets" in out and "--root" in out and "Traceback" not in out
