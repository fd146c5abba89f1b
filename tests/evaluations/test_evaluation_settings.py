"""evaluations.base: each kind's Settings hold its defaults once and `rlip certify`'s options are
made from them — same flags as before the change (the Makefile's and README's commands), same
defaults, parsed to the field's type; unknown or clashing names are errors."""

from __future__ import annotations

import dataclasses
import inspect
from enum import Enum

import pytest

from robustbench_lip.cli.certify import certify_cmd
from robustbench_lip.evaluations.base import Inputs, flag, split_options, with_settings
from robustbench_lip.evaluations.lipschitz.settings import CertifySettings
from robustbench_lip.evaluations.smoothing.settings import SmoothingSettings

FLAGS = {  # the options of `rlip certify` that existed before the settings classes
    "--data", "--root", "--n", "--input-shape", "--seed", "--device", "--other-data", "--target", "--eps",
    "--steps", "--mode", "--lower-budget", "--smoothing-n", "--smoothing-n0", "--smoothing-alpha",
}  # fmt: skip


def _generated() -> dict[str, tuple[type, inspect.Parameter]]:
    sig = inspect.signature(certify_cmd)
    out = {}
    for cls in (Inputs, CertifySettings, SmoothingSettings):
        for f in dataclasses.fields(cls):
            if f.name in sig.parameters:
                out[f.name] = (cls, sig.parameters[f.name])
    return out


def test_options_are_the_settings_fields_with_the_old_flags() -> None:
    gen = _generated()
    flags = {p.annotation.__metadata__[0].default for _, p in gen.values()}
    assert flags == FLAGS
    assert {flag(cls, name) for name, (cls, _) in gen.items()} == FLAGS
    # fields without a help text are settings the CLI does not expose
    assert "batch_size" not in gen and "correction" not in gen


def test_option_defaults_parse_to_the_settings_defaults() -> None:
    for name, (cls, p) in _generated().items():
        (built,) = split_options({name: p.default}, cls)
        want = next(f.default for f in dataclasses.fields(cls) if f.name == name)
        got = getattr(built, name)
        assert (got.value if isinstance(got, Enum) else got) == want, name
    assert CertifySettings().steps == 10 and SmoothingSettings().alpha == 0.001
    assert SmoothingSettings().batch_size == 250  # the value the records have always held


def test_record_settings_keep_the_keys_and_their_order() -> None:
    rec = CertifySettings(eps=(8 / 255,)).record(Inputs(n=5), "shapes", (3, 16, 16))
    assert list(rec) == [
        "lower_budget_s", "data", "n", "target", "eps", "seed", "steps", "mode", "input_shape",
    ]  # fmt: skip
    assert rec["eps"] == ["8/255"] and rec["target"] == "both" and rec["input_shape"] == [3, 16, 16]
    sm = SmoothingSettings(smoothing_n=7).record(Inputs(other_data=True), "lesions", 0.5, (1, 8, 8))
    assert list(sm)[:1] == ["certificate"] and sm["smoothing_n"] == 7 and sm["other_data"] is True


def test_unknown_and_clashing_names_are_errors() -> None:
    with pytest.raises(TypeError, match="samples"):
        split_options({"samples": 3}, Inputs, SmoothingSettings)

    def cmd(n: int = 1, *, inputs: Inputs) -> None: ...

    with pytest.raises(TypeError, match="also another option"):
        with_settings(cmd)
