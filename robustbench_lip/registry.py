"""`Registry[T]`: the one name → entry table behind every extension point (model families, bound
rules, datasets, attacks, tasks).

    ATTACKS: Registry[AttackSpec] = Registry("attack")
    ATTACKS.register("pgd", spec)            # a second "pgd" is an error unless replace=True
    ATTACKS.get("pgd")                       # unknown name: RlipError listing the known names
    with ATTACKS.registered("toy", spec): …  # registered for the body only (tests)

Names keep their registration order (`names()`, `items()`). Imports nothing but `errors`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Generic, TypeVar

from robustbench_lip.errors import RlipError

T = TypeVar("T")


class DuplicateName(RlipError, ValueError):
    """A name registered twice without replace=True (a ValueError too, as the rule registry raised)."""


class Registry(Generic[T]):
    """Entries of one kind (`kind` names it in errors: "unknown attack 'x'; known: …")."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T] = {}

    def register(self, name: str, entry: T, *, replace: bool = False) -> T:
        """Add `entry` under `name`; DuplicateName when the name is taken and not `replace`."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.kind} name must be a non-empty string, got {name!r}")
        if name in self._entries and not replace:
            raise DuplicateName(
                f"{self.kind} {name!r} is already registered; pass replace=True to override it"
            )
        self._entries[name] = entry
        return entry

    def unregister(self, name: str) -> T | None:
        """Remove `name` (None when it was not registered); returns the entry removed."""
        return self._entries.pop(name, None)

    @contextlib.contextmanager
    def registered(self, name: str, entry: T, *, replace: bool = False) -> Iterator[T]:
        """`entry` registered under `name` for the body; afterwards the registry is as before."""
        before = self._entries.get(name)
        had = name in self._entries
        self.register(name, entry, replace=replace)
        try:
            yield entry
        finally:
            if had:
                self._entries[name] = before  # type: ignore[assignment]
            else:
                self._entries.pop(name, None)

    def get(self, name: str) -> T:
        """The entry of `name`; RlipError naming the known names when there is none."""
        if isinstance(name, str) and name in self._entries:
            return self._entries[name]
        raise RlipError(f"unknown {self.kind} {name!r}; known: {', '.join(self._entries) or 'none'}")

    def find(self, name: str) -> T | None:
        """The entry of `name`, or None."""
        return self._entries.get(name) if isinstance(name, str) else None

    def names(self) -> list[str]:
        """Registered names, in registration order."""
        return list(self._entries)

    def items(self) -> list[tuple[str, T]]:
        """(name, entry) pairs, in registration order."""
        return list(self._entries.items())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._entries))
