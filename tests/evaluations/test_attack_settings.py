"""evaluations.attacks.settings: `AttackSettings` holds `rlip attack`'s defaults once, its options are
made from it with the historical flags, order and defaults, and the record settings it derives keep
their keys, order and values — so the record file names of existing runs stay valid (the Makefile's
demo record `attack-749af3861d.json`)."""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Annotated

import pytest
import typer

from robustbench_lip.attacks.registry import DEFAULT_STEPS, protocol_default_steps
from robustbench_lip.cli.app import app
from robustbench_lip.errors import RlipError
from robustbench_lip.evaluations.attacks.settings import AttackSettings
from robustbench_lip.evaluations.base import Before, Inputs, split_options, with_settings
from robustbench_lip.records import record_path

OPTIONS = [  # `rlip attack --help` before AttackSettings, in its order
    "--eps", "--attack", "--preset", "--norm", "--steps", "--restarts", "--alpha", "--objective",
    "--data", "--root", "--n", "--batch-size", "--seed", "--device", "--json", "--runs-dir",
    "--other-data", "--arch",
]  # fmt: skip


def _attack_params() -> list:
    cmd = typer.main.get_command(app).commands["attack"]  # type: ignore[attr-defined]
    return [p for p in cmd.params if p.param_type_name == "option"]


def test_options_keep_the_flags_order_and_defaults() -> None:
    params = _attack_params()
    assert [p.opts[0] for p in params] == OPTIONS
    by = {p.opts[0]: p for p in params}
    assert by["--eps"].required and by["--steps"].default is None and by["--batch-size"].default == 64
    assert by["--runs-dir"].default == Path("zoo/runs") and by["--norm"].default.value == "linf"
    assert f"[{DEFAULT_STEPS}; --preset: {protocol_default_steps('standard')}]" in by["--steps"].help


def test_demo_record_settings_name_the_same_file(tmp_path: Path) -> None:
    s = AttackSettings(eps="4/255,8/255", attack="all,sea", n=64)
    rec = s.record("lesions")
    assert rec == {
        "eps": ["4/255", "8/255"], "attack": ["all", "sea"], "norm": "linf", "steps": 10, "alpha": None,
        "objective": "auto", "data": "lesions", "n": 64, "seed": 0, "batch_size": 64,
    }  # fmt: skip
    keys = ["eps", "attack", "norm", "steps", "alpha", "objective", "data", "n", "seed", "batch_size"]
    assert list(rec) == keys
    assert record_path(tmp_path, "attack", rec).name == "attack-749af3861d.json"


def test_optional_keys_come_last_in_their_order() -> None:
    s = AttackSettings(eps=(0.5,), norm="l2", preset="STANDARD", restarts=3, other_data=True, alpha=0.1)
    rec = s.record("shapes", model_file="m.pt2")
    assert list(rec)[-4:] == ["model_file", "preset", "restarts", "other_data"]
    assert rec["attack"] == [] and rec["preset"] == "standard" and rec["steps"] is None  # the preset's own
    assert rec["eps"] == ["0.5"] and rec["alpha"] == 0.1 and rec["objective"] == "auto"
    plain = AttackSettings(eps=(8 / 255,)).record("shapes")
    assert plain["attack"] == ["pgd"] and plain["steps"] == DEFAULT_STEPS
    assert not {"model_file", "preset", "restarts", "other_data"} & set(plain)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"eps": "8/255", "preset": "standard", "attack": "pgd"}, "exclude each other"),
        ({"eps": "8/255", "preset": "strong"}, "unknown --preset 'strong'"),
        ({"eps": "8/255", "attack": "pgd,deepfool"}, "unknown attack 'deepfool'"),
        ({"eps": "1.5"}, "bad eps value '1.5'"),  # ℓ∞ budgets are in [0, 1] ...
        ({"eps": "8/255", "alpha": "0"}, "bad --alpha '0'"),
    ],
)
def test_bad_settings_are_one_line_errors(options: dict, message: str) -> None:
    with pytest.raises(RlipError, match=message):
        split_options(options, AttackSettings)


def test_eps_text_is_read_with_the_norm() -> None:
    assert AttackSettings(eps="1.5", norm="l2").eps == (1.5,)  # ... ℓ2 budgets only ≥ 0
    assert AttackSettings(eps="0,8/255").record("x")["eps"] == ["0", "8/255"]


def test_other_data_help_is_said_once() -> None:
    (inp,) = [f for f in Inputs.__dataclass_fields__.values() if f.name == "other_data"]
    (att,) = [f for f in AttackSettings.__dataclass_fields__.values() if f.name == "other_data"]
    assert att.metadata["help"] == inp.metadata["help"]


def test_generated_options_stand_where_their_group_is_and_before_moves_an_option() -> None:
    def cmd(
        first: int = 0,
        *,
        inputs: Inputs,
        last: Annotated[int, typer.Option("--last")] = 1,
        moved: Annotated[int, typer.Option("--moved"), Before("seed")] = 2,
    ) -> None: ...

    names = list(inspect.signature(with_settings(cmd)).parameters)
    fields = list(Inputs.__dataclass_fields__)
    at = fields.index("seed")
    assert names == ["first", *fields[:at], "moved", *fields[at:], "last"]
