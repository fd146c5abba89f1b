"""Defaults of `rlip certify` that the CLI needs before torch is imported (one home for each)."""

from __future__ import annotations

DEFAULT_LOWER_BUDGET_S = 10.0
"""Wall-time budget (s) of the witnessed lower-bound search of one certify (A, R and the FNE test
together; `rlip certify --lower-budget`). Once spent, the searches stop proposing and keep the best
witness found so far (still a witnessed, sound lower bound). The certified upper bound and the radii
do not depend on it."""

__all__ = ["DEFAULT_LOWER_BUDGET_S"]
