"""The weights fingerprint of a model directory: sha256 over the tensors alone.

`weights_sha256` in config.json is `weights_fingerprint(state_dict)`: sha256 over the tensors
sorted by name, each as (name, dtype, shape, raw bytes in C order). It does not depend on how the
file is laid out (safetensors header, metadata, insertion order), so two runs with bit-identical
weights — e.g. a resumed and an uninterrupted one — have the same fingerprint. Model directories
written before this rule hold the sha256 of the file's bytes; `matches` accepts either.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

import torch

#: what `weights_sha256` is the hash of (written beside it in config.json)
FINGERPRINT_KIND = "tensors: sha256 over (name, dtype, shape, bytes), sorted by name"


def tensor_bytes(t: torch.Tensor) -> bytes:
    """The raw bytes of `t` (CPU, C order) in its own dtype."""
    flat = t.detach().to("cpu").contiguous().reshape(-1)
    if flat.dtype == torch.bool:
        flat = flat.to(torch.uint8)
    return flat.view(torch.uint8).numpy().tobytes()


def weights_fingerprint(state: Mapping[str, torch.Tensor]) -> str:
    """sha256 (hex) over the tensors of `state` sorted by name: name, dtype, shape, raw bytes."""
    h = hashlib.sha256()
    for name in sorted(state):
        t = state[name]
        data = tensor_bytes(t)
        head = f"{name}\0{str(t.dtype).removeprefix('torch.')}\0{tuple(t.shape)}\0{len(data)}\0"
        h.update(head.encode("utf-8"))
        h.update(data)
    return h.hexdigest()


def matches(expected: str, file_bytes: bytes, state: Mapping[str, torch.Tensor] | None) -> bool:
    """Whether `expected` is the fingerprint of `state` or (older model folders) the file's sha256."""
    if hashlib.sha256(file_bytes).hexdigest() == expected:
        return True
    return state is not None and weights_fingerprint(state) == expected
