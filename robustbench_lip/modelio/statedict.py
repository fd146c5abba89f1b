"""Strict state_dict loading with one-line errors, and key-prefix stripping."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from robustbench_lip.errors import RlipError


def _fit_state_dict(
    model: nn.Module, state: Mapping[str, Any], source: str, arch: str | None = None, assign: bool = False
) -> None:
    """Load `state` into `model` strictly (assign: take the tensors themselves, for meta-built
    models); any difference is one RlipError line."""
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise RlipError(f"{source}: the state_dict must map names to tensors")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:

        def few(keys: list[str]) -> str:
            return ", ".join(keys[:3]) + (f" (+{len(keys) - 3} more)" if len(keys) > 3 else "")

        parts = []
        if wrong:
            k = wrong[0]
            parts.append(
                f"shape mismatch for {few(wrong)}: "
                f"file {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
            )
        if missing:
            parts.append(f"missing {few(missing)}")
        if unexpected:
            parts.append(f"unexpected {few(unexpected)}")
        arch = arch or getattr(getattr(model, "config", None), "arch", type(model).__name__)
        raise RlipError(
            f"{source} does not fit {arch}: {'; '.join(parts)}; check the architecture and its options"
        )
    model.load_state_dict(state, strict=True, assign=assign)


def _strip_prefix(state: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    if state and all(k.startswith(prefix) for k in state):
        return {k[len(prefix) :]: v for k, v in state.items()}
    return dict(state)
