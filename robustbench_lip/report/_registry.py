"""A minimal name → item registry (register / get / names; a second registration of a name is an
error unless replace=True). Private to report/ until the shared `robustbench_lip.registry` lands."""

from __future__ import annotations

from typing import Generic, TypeVar

from robustbench_lip.errors import RlipError

T = TypeVar("T")


class Registry(Generic[T]):
    """Items by name, in registration order; `what` names the items in error messages."""

    def __init__(self, what: str) -> None:
        self._what = what
        self._items: dict[str, T] = {}

    def register(self, name: str, item: T, *, replace: bool = False) -> T:
        """Add `item` under `name`; RlipError when the name is taken and replace is False."""
        if name in self._items and not replace:
            raise RlipError(f"{self._what} {name!r} is already registered (pass replace=True to replace it)")
        self._items[name] = item
        return item

    def unregister(self, name: str) -> None:
        """Remove `name` (RlipError when unknown)."""
        self.get(name)
        del self._items[name]

    def get(self, name: str) -> T:
        """The item of `name`; RlipError listing the known names when unknown."""
        try:
            return self._items[name]
        except KeyError:
            known = ", ".join(self._items) or "none"
            raise RlipError(f"unknown {self._what} {name!r}; registered: {known}") from None

    def names(self) -> tuple[str, ...]:
        """The registered names, in registration order."""
        return tuple(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items
