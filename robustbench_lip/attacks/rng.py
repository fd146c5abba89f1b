"""Per-attack random streams: a seed derived from (seed, name, ...) so that an attack's random start
— and hence its figure — does not depend on which other attacks ran before it or in what order.

The derivation is sha256 over a canonical text of the parts (not Python's `hash`, which is salted per
process), so it is the same on every machine, Python and torch version. Never touches the global RNG.
"""

from __future__ import annotations

import hashlib

import torch

SEED_BITS = 63  # torch.Generator.manual_seed takes a 64-bit value; 63 bits keep it positive everywhere


def stream_seed(seed: int, *names: object) -> int:
    """A seed in [0, 2**63) for the stream `names` (e.g. the attack's name, and ε) of base `seed`.

    Parts are joined as text (`str(part)`), separated by a unit separator, so ("a", "bc") and
    ("ab", "c") differ; the same parts always give the same seed."""
    text = "\x1f".join([str(int(seed)), *(str(n) for n in names)])
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") & ((1 << SEED_BITS) - 1)


def stream_generator(seed: int, *names: object) -> torch.Generator:
    """A fresh CPU generator seeded with `stream_seed(seed, *names)`."""
    g = torch.Generator()
    g.manual_seed(stream_seed(seed, *names))
    return g
