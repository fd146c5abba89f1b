"""Device selection and RNG isolation."""

from __future__ import annotations

import contextlib
import random
from collections.abc import Iterator

import torch

from robustbench_lip.errors import RlipError


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """`auto` → CUDA when available, else CPU; `cpu`/`cuda`/`cuda:N` as given (CUDA must exist)."""
    if isinstance(name, torch.device):
        return name
    name = str(name).strip().lower()
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise RlipError(f"device {name!r} requested but CUDA is not available; use --device cpu")
        try:
            return torch.device(name)
        except RuntimeError:
            raise RlipError(f"invalid device {name!r}; expected auto, cpu, cuda or cuda:N") from None
    raise RlipError(f"invalid device {name!r}; expected auto, cpu, cuda or cuda:N")


def _numpy_state() -> object | None:
    try:
        import numpy as np
    except ImportError:  # pragma: no cover - numpy ships with torch's usual installs
        return None
    return np.random.get_state()


@contextlib.contextmanager
def preserved_rng() -> Iterator[None]:
    """Restore Python's, NumPy's, torch's (CPU and CUDA) global RNG states on exit, also on error."""
    py_state = random.getstate()
    np_state = _numpy_state()
    cpu_state = torch.get_rng_state()
    cuda_states = torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None
    try:
        yield
    finally:
        random.setstate(py_state)
        if np_state is not None:
            import numpy as np

            np.random.set_state(np_state)
        torch.set_rng_state(cpu_state)
        if cuda_states is not None:
            torch.cuda.set_rng_state_all(cuda_states)


@contextlib.contextmanager
def preserved_modes(model: torch.nn.Module) -> Iterator[None]:
    """Restore the `training` flag of `model` and every submodule on exit, also on error."""
    modes = [(m, m.training) for m in model.modules()]
    try:
        yield
    finally:
        for m, flag in modes:
            m.training = flag


def set_eval(model: torch.nn.Module) -> None:
    """model.eval(), also for modules of exported programs (whose eval() raises): set the flags."""
    try:
        model.eval()
    except NotImplementedError:
        for m in model.modules():
            m.training = False


@contextlib.contextmanager
def eval_mode(model: torch.nn.Module) -> Iterator[None]:
    """Run the body with `model` in eval mode (`set_eval`); every submodule's `training` flag is
    restored on exit, also on error. The one way library code switches a caller's model to eval."""
    with preserved_modes(model):
        set_eval(model)
        yield
