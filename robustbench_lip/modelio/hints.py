"""What to do about known torch.export failures of models built with parametrized layers.

orthogonium (and `torch.nn.utils.parametrize` in general) computes a layer's weight from its raw
parameters at every forward. Exported with autograd on, such a model reloads with "wrap_with_set_grad_enabled
is missing val field"; exported under `torch.no_grad()`, the parametrization's in-place writes can
stop the decomposition to core ATen ("set_ on a graph input"). The fix in both cases: freeze the
weights first, `torch.nn.utils.parametrize.remove_parametrizations(module, name,
leave_parametrized=True)` on every parametrized module, then `torch.export.export` + `torch.export.save`
(README, "Models and model files").
"""

from __future__ import annotations

FREEZE_HINT = (
    "if the model has parametrized layers (orthogonium, torch.nn.utils.parametrize), fix their weights "
    "in place first: torch.nn.utils.parametrize.remove_parametrizations(module, name, "
    "leave_parametrized=True) on each parametrized module (in eval mode), then certify or export that "
    "model (README: Models and model files)"
)
#: Substrings of torch errors that the freeze fixes.
KNOWN: tuple[str, ...] = ("wrap_with_set_grad_enabled", "set_ on a graph input", "set_grad_enabled")


def with_hint(message: str) -> str:
    """`message`, plus FREEZE_HINT when it is a known failure of a parametrized model."""
    if any(k in message for k in KNOWN) and FREEZE_HINT not in message:
        return f"{message}; {FREEZE_HINT}"
    return message
