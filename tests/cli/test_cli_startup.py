"""CLI start-up: help texts and argument errors answer without importing torch (lazy imports)."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.helpers.paths import REPO as ROOT

# Runs the app in a fresh interpreter on each argument list, then reports what got imported.
PROBE = r"""
import json, sys
from robustbench_lip.cli.app import main
codes = []
for args in json.loads(sys.argv[1]):
    sys.argv = ["rlip", *args]
    try:
        main()
        codes.append(0)
    except SystemExit as e:
        codes.append(e.code if isinstance(e.code, int) else 1)
heavy = [m for m in ("torch", "numpy", "pandas", "torchvision", "matplotlib") if m in sys.modules]
print(json.dumps({"codes": codes, "heavy": heavy}))
"""

COMMANDS = ["data", "models", "train", "zoo", "certify", "attack", "leaderboard"]


def _probe(arg_lists: list[list[str]]) -> dict:
    env = {"PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(arg_lists)],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120, check=True,
    )  # fmt: skip
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_help_and_argument_errors_do_not_import_torch() -> None:
    cases = [
        ["--help"],
        *[[c, "--help"] for c in COMMANDS],
        ["attack", "X", "--eps", "8"],  # ℓ∞ budget > 1: parsed before anything heavy
        ["certify", "X", "--eps", "abc"],
        ["certify", "X", "--n", "0"],  # click's own range check
        ["train", "--model", "m", "--data", "d", "--out", "o", "--optimizer", "nope"],
    ]
    res = _probe(cases)
    assert res["heavy"] == [], res
    assert res["codes"][: 1 + len(COMMANDS)] == [0] * (1 + len(COMMANDS))
    assert all(c != 0 for c in res["codes"][1 + len(COMMANDS) :]), res


def test_leaderboard_help_names_every_format() -> None:
    from typer.testing import CliRunner

    from robustbench_lip.cli.app import app
    from robustbench_lip.report import FORMATS

    out = CliRunner().invoke(app, ["leaderboard", "--help"], terminal_width=200).output
    assert ",".join(FORMATS) in out
