"""ε parsing: fractions, decimals, lists, range checks, canonical text."""

from __future__ import annotations

from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from robustbench_lip.attacks.eps import format_eps, parse_eps_list, parse_eps_token
from robustbench_lip.errors import RlipError


@pytest.mark.parametrize(
    ("token", "value"),
    [("8/255", 8 / 255), ("0.031", 0.031), (" 2/255 ", 2 / 255), ("0", 0.0), ("1", 1.0), ("1e-2", 0.01)],
)
def test_token_values(token: str, value: float) -> None:
    assert parse_eps_token(token) == pytest.approx(value, rel=0, abs=1e-15)


def test_list_keeps_order_and_norm_ranges() -> None:
    assert parse_eps_list("0,2/255,4/255,8/255") == [0.0, 2 / 255, 4 / 255, 8 / 255]
    assert parse_eps_list("0.5, 2", norm="l2") == [0.5, 2.0]  # ℓ2 budgets may exceed 1


@pytest.mark.parametrize(
    ("text", "norm", "bad"),
    [
        ("8/255,abc", "linf", "abc"),
        ("1.5", "linf", "1.5"),
        ("-0.1", "l2", "-0.1"),
        ("1/0", "linf", "1/0"),
        ("nan", "l2", "nan"),
        ("inf", "l2", "inf"),
        ("8//255", "linf", "8//255"),
    ],
)
def test_bad_tokens_named_in_one_line(text: str, norm: str, bad: str) -> None:
    with pytest.raises(RlipError) as e:
        parse_eps_list(text, norm=norm)
    msg = str(e.value)
    assert repr(bad) in msg and "\n" not in msg


@pytest.mark.parametrize("text", ["", " ", "8/255,", ",0.1", "0.1,,0.2"])
def test_empty_items_rejected(text: str) -> None:
    with pytest.raises(RlipError, match="eps list"):
        parse_eps_list(text)


def test_unknown_norm() -> None:
    with pytest.raises(RlipError, match="norm"):
        parse_eps_token("0.1", norm="l1")


@given(st.integers(min_value=0, max_value=255))
def test_format_round_trip_k_over_255(k: int) -> None:
    text = format_eps(k / 255)
    assert text == ("0" if k == 0 else "1" if k == 255 else f"{k}/255")  # whole numbers as %g
    assert parse_eps_token(text) == float(Fraction(k, 255))


def test_format_plain_decimals() -> None:
    assert format_eps(0.03) == "0.03"
    assert format_eps(0.5) == "0.5"
    assert format_eps(1.0) == "1" and format_eps(2.0) == "2" and format_eps(0.0) == "0"
    assert parse_eps_token(format_eps(0.25), "l2") == 0.25
