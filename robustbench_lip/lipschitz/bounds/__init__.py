"""Certified ℓ2 upper bounds on Lipschitz constants (transition: re-exports the old fx bounder)."""

from robustbench_lip.lipschitz._bounds_fx_old import *  # noqa: F403
from robustbench_lip.lipschitz._bounds_fx_old import Mode, UpperBound, conv2d_bound, upper_bound  # noqa: F401
