"""The certify pipeline around the bounder: witnesses that rounding cannot fake, the lower-bound time
budget, one-line refusals of bad input (huge shapes, unknown custom ops), fixed-batch programs with
data, and a user's .pt2 reflection A = (x + N(x))/2 keeping its identity coefficient."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from robustbench_lip.cli.app import app
from robustbench_lip.evaluations.lipschitz.certificate import certify
from robustbench_lip.lipschitz.lower import fne_test, lower_bounds
from tests.helpers.certify_models import ConvReluConv, HalfSum, PlainHead, RoundingTrap
from tests.helpers.oracle import linear_norm

runner = CliRunner()
FAST = ["--n", "6", "--steps", "1", "--device", "cpu"]
SHAPE = (2, 6, 6)


def _x(n: int = 8, shape=(1, 4, 4), seed: int = 2) -> torch.Tensor:
    return torch.rand((n, *shape), generator=torch.Generator().manual_seed(seed))


# ---------------------------------------------------------------------------------------------
# witnesses
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("target", ["A", "reflection"])
def test_rounding_cannot_fake_a_witness(target):
    """(x + c) − c is x over the reals: no witnessed quotient above its constant (1 for A and R)."""
    low = lower_bounds(RoundingTrap(), _x(), target, steps=2, iters=5)
    assert low.lower is None or low.lower <= 1.0
    assert fne_test(RoundingTrap(), _x(), steps=2)["violated"] is not True  # R = I is FNE


class _Scale(nn.Module):
    def __init__(self, c: float) -> None:
        super().__init__()
        self.c = nn.Parameter(torch.tensor(c))

    def forward(self, x):
        return self.c * torch.tanh(x) + 0.25 * x


def test_true_witnesses_still_work():
    low = lower_bounds(_Scale(1.75), _x(), "A", steps=2, iters=10)
    assert 1.5 < low.lower <= 2.0 + 1e-9  # constant 1.75 + 0.25 (tanh' = 1 at 0, not reached in [0,1])
    assert low.witness is not None and low.witness.eval_dtype == "float64"


# ---------------------------------------------------------------------------------------------
# lower-bound budget
# ---------------------------------------------------------------------------------------------


def test_a_spent_budget_stops_the_search_and_keeps_a_sound_witness():
    low = lower_bounds(_Scale(1.75), _x(), "A", steps=5, iters=10, budget_s=0.0)
    assert any("budget" in n for n in low.notes)
    assert low.sources["pairwise"] is None and low.sources["data_pairs"] is not None
    assert 0 < low.lower <= 2.0 + 1e-9


def test_certify_records_the_budget_and_the_split_timings():
    model = PlainHead().eval()
    x = _x(12)
    y = model(x).argmax(1)
    cert = certify(model, x, y, steps=2, iters=5, lower_budget=0.0)
    t = cert.timings
    assert t["lower_budget_s"] == 0.0 and {"export_upper_s", "lower_s", "radii_s"} <= set(t)
    assert any("budget" in n for n in cert.lower_A.notes)


# ---------------------------------------------------------------------------------------------
# one-line failures
# ---------------------------------------------------------------------------------------------


def _one_line_error(res) -> str:
    assert res.exit_code != 0
    text = (res.stderr if res.stderr_bytes is not None else res.output).strip()
    assert "Traceback" not in res.output and "Traceback" not in text
    lines = [ln for ln in text.splitlines() if ln.strip()]
    assert len(lines) == 1, text
    return lines[0]


def _classifier_pt2(tmp_path: Path, batch: int, shape=(3, 32, 32), k: int = 4) -> Path:
    torch.manual_seed(1)
    c = shape[0]
    net = nn.Sequential(
        nn.Conv2d(c, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * shape[1] * shape[2], k)
    ).eval()
    path = tmp_path / f"cls-b{batch}.pt2"
    torch.export.save(torch.export.export(net, (torch.rand(batch, *shape),)), path)
    return path


def test_a_huge_input_shape_is_refused_before_allocating(tmp_path):
    path = _classifier_pt2(tmp_path, 1)
    res = runner.invoke(
        app, ["certify", str(path), "--data", "none", "--input-shape", "3,90000,70000", *FAST]
    )
    assert "too large" in _one_line_error(res)


def test_an_unregistered_custom_op_is_named(tmp_path):
    path = tmp_path / "custom.pt2"
    script = textwrap.dedent(f"""
        import torch
        @torch.library.custom_op("rlipfoo::halve", mutates_args=())
        def halve(x: torch.Tensor) -> torch.Tensor:
            return x * 0.5
        @halve.register_fake
        def _(x):
            return torch.empty_like(x)
        class M(torch.nn.Module):
            def forward(self, x):
                return halve(x)
        torch.export.save(torch.export.export(M(), (torch.rand(1, 1, 4, 4),)), {str(path)!r})
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=300)
    res = runner.invoke(app, ["certify", str(path), "--data", "none", *FAST])
    line = _one_line_error(res)
    assert "no bound rule for rlipfoo.halve" in line and "truncated" not in line


def test_a_program_with_a_fixed_batch_of_two_certifies_with_data(tmp_path):
    path = _classifier_pt2(tmp_path, 2, k=10)  # shapes has 10 classes (a 4-class model is refused)
    out = tmp_path / "r.json"
    res = runner.invoke(
        app,
        [
            "certify",
            str(path),
            "--data",
            "shapes",
            "--n",
            "7",
            "--steps",
            "1",
            "--lower-budget",
            "3",
            "--json",
            str(out),
        ],
    )
    assert res.exit_code == 0, res.output
    rec = json.loads(out.read_text())
    assert rec["radius_rules"]["head"]["structure"] == "linear"
    assert rec["settings"]["lower_budget_s"] == 3.0 and rec["timings"]["lower_budget_s"] == 3.0
    for e, acc in rec["certified_accuracy"].items():
        assert acc <= rec["certified_accuracy_estimate"][e] <= rec["clean"]["accuracy"]


# ---------------------------------------------------------------------------------------------
# .pt2 reflections
# ---------------------------------------------------------------------------------------------


def _half_sum_pt2(tmp_path: Path, net: nn.Module, spelling: int) -> Path:
    path = tmp_path / f"halfsum{spelling}.pt2"
    model = HalfSum(net, spelling).eval()
    torch.export.save(torch.export.export(model, (torch.rand(1, *SHAPE),)), path)
    return path


def _certify_json(tmp_path: Path, path: Path) -> dict:
    out = tmp_path / f"{path.stem}.json"
    res = runner.invoke(
        app, ["certify", str(path), "--data", "none", "--target", "both", *FAST, "--json", str(out)]
    )
    assert res.exit_code == 0, res.output
    return json.loads(out.read_text())


@pytest.mark.parametrize("spelling", [0, 1, 2, 3])
def test_a_user_half_sum_with_a_contraction_is_certified_fne(tmp_path, spelling):
    net = ConvReluConv(2, 3, (0.8, 0.8), SHAPE).eval()  # L(N) ≤ 0.64
    rec = _certify_json(tmp_path, _half_sum_pt2(tmp_path, net, spelling))
    r, a = rec["lipschitz"]["R"], rec["lipschitz"]["A"]
    assert r["upper"] < 1 < 2 * a["upper"] + 1  # from the identity coefficient, not 2·U(A) + 1
    assert rec["fne"]["verdict"] == "certified"


def test_a_user_half_sum_with_an_expansion_is_not_certified(tmp_path):
    net = ConvReluConv(2, 3, (1.0, 1.0), SHAPE, bias=100.0).eval()
    with torch.no_grad():  # on [0,1]^d the ReLU is the identity: N = c2∘c1, scaled to norm 1.2
        lin = linear_norm(lambda z: net.c2.double()(net.c1.double()(z)), SHAPE)
        net.c2.weight.mul_(1.2 / lin)
    net = net.float()
    rec = _certify_json(tmp_path, _half_sum_pt2(tmp_path, net, 1))
    assert rec["lipschitz"]["R"]["upper"] >= 1.2 * (1 - 1e-6)  # L(R) = L(N) ≥ 1.2: sound
    assert rec["fne"]["verdict"] != "certified"


def test_the_identity_through_a_foreign_wrapper_keeps_its_coefficient(tmp_path):
    class Ident(nn.Module):
        def forward(self, x):
            return x * 1.0

    path = tmp_path / "ident.pt2"
    torch.export.save(torch.export.export(Ident(), (torch.rand(1, 3, 4, 4),)), path)
    rec = _certify_json(tmp_path, path)
    assert rec["lipschitz"]["R"]["upper"] == pytest.approx(1.0)


def test_a_wrapper_with_one_std_for_every_channel_keeps_the_identity_coefficient():
    """A(x) = H((x − m)/s), H = (z + N(z))/2: α = 0.5/s, Lip(g) ≤ 0.5·U(N)/s."""
    from robustbench_lip.config import ModelConfig
    from robustbench_lip.lipschitz.bounds import upper_bound
    from robustbench_lip.modelio.foreign import ForeignModel

    shape = (3, 5, 5)
    net = ConvReluConv(3, 4, (0.7, 0.7), shape).eval()
    cfg = ModelConfig("pt2", "image2image", 3, 3, shape, mean=(0.1, 0.2, 0.3), std=(0.5, 0.5, 0.5))
    ub = upper_bound(ForeignModel(HalfSum(net, 1), cfg), shape)
    u_n = upper_bound(net, shape).upper
    assert ub.alpha == pytest.approx(1.0)
    assert ub.reflection == pytest.approx(abs(2 * ub.alpha - 1) + 2 * 0.5 * u_n / 0.5, rel=1e-6)
    assert ub.reflection < 2 * ub.upper + 1


class _Shift(nn.Module):
    """x over the reals; in floating point (x + 2^41) − 2^41 rounds x to a coarse grid."""

    def forward(self, x):
        return (x + 2.0**41) - 2.0**41


class _Stack(nn.Module):
    """Two copies of x on a new leading axis: the output's first axis is not the batch."""

    def forward(self, x):
        return torch.stack([x, 0.5 * x], 0)


def test_a_loaded_pt2_that_rounds_gets_no_lower_bound_above_the_truth(tmp_path):
    from robustbench_lip.modelio import load_model

    path = tmp_path / "shift.pt2"
    torch.export.save(torch.export.export(_Shift().eval(), (torch.rand(1, 1, 4, 4),)), path)
    low = lower_bounds(load_model(path, input_size=(1, 4, 4)), torch.rand(12, 1, 4, 4), "A", budget_s=2.0)
    assert low.lower is None or low.lower <= 1.0 + 1e-9


def test_a_fixed_batch_program_whose_output_drops_the_batch_axis_is_refused(tmp_path):
    path = tmp_path / "stack.pt2"
    torch.export.save(torch.export.export(_Stack().eval(), (torch.rand(1, 1, 4, 4),)), path)
    res = runner.invoke(app, ["certify", str(path), "--data", "none", "--input-shape", "1,4,4", *FAST])
    assert res.exit_code == 1
    assert "batch on its first axis" in res.output and "Traceback" not in res.output


def test_json_into_a_directory_is_one_line(tmp_path):
    path = _classifier_pt2(tmp_path, 1)
    (tmp_path / "d").mkdir()
    res = runner.invoke(
        app, ["certify", str(path), "--data", "none", *FAST, "--json", str(tmp_path / "d")]
    )
    assert res.exit_code == 1
    assert "is a directory" in res.output and "Traceback" not in res.output
