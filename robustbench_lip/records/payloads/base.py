"""The Payload base: a nested dataclass that round-trips its JSON object exactly.

`from_dict(d)` checks the structure (an object is an object, a list is a list, required keys are
there) and keeps leaf values as stored (numbers are checked by whoever reads them); `to_dict()`
gives back the same object: the keys in their stored order, keys the record did not have left
out, unknown keys kept in `extra`. A payload built in code writes every field (in field order),
except the OPTIONAL ones that are None.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, ClassVar, TypeVar

from robustbench_lip.errors import RlipError

P = TypeVar("P", bound="Payload")

_INTERNAL = ("extra", "stored_keys")


@dataclass(kw_only=True)
class Payload:
    """Base of every typed payload (see the module docstring).

    Subclasses declare NESTED (field → Payload type of an object value), LISTS (field → Payload type
    of each item of a list value), REQUIRED (keys that must be present) and OPTIONAL (keys a
    payload built in code leaves out when None)."""

    NESTED: ClassVar[dict[str, type[Payload]]] = {}
    LISTS: ClassVar[dict[str, type[Payload]]] = {}
    REQUIRED: ClassVar[tuple[str, ...]] = ()
    OPTIONAL: ClassVar[tuple[str, ...]] = ()
    extra: dict[str, Any] = field(default_factory=dict, repr=False)
    stored_keys: tuple[str, ...] | None = field(default=None, repr=False, compare=False)

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """The payload's own keys, in the order a payload built in code writes them."""
        return tuple(f.name for f in dataclasses.fields(cls) if f.name not in _INTERNAL)

    @classmethod
    def from_dict(cls: type[P], d: Any, where: str = "") -> P:
        """Load from a JSON object; RlipError naming `where` when the structure is wrong."""
        where = where or cls.__name__
        if not isinstance(d, dict):
            raise RlipError(f"{where} is not an object")
        missing = [k for k in cls.REQUIRED if k not in d]
        if missing:
            raise RlipError(f"{where} without key(s) {', '.join(missing)}")
        names = cls.field_names()
        kwargs = {name: cls._load_field(name, d.get(name), where) for name in names}
        extra = {k: v for k, v in d.items() if k not in names}
        obj = cls(**kwargs, extra=extra, stored_keys=tuple(d))
        obj.check(where)
        return obj

    @classmethod
    def _load_field(cls, name: str, value: Any, where: str) -> Any:
        if value is None:
            return None
        if name in cls.NESTED:
            return cls.NESTED[name].from_dict(value, f"{where}.{name}")
        if name in cls.LISTS:
            if not isinstance(value, list):
                raise RlipError(f"{where}.{name} is not a list")
            item = cls.LISTS[name]
            return [item.from_dict(v, f"{where}.{name}[{i}]") for i, v in enumerate(value)]
        return value

    def check(self, where: str) -> None:
        """Checks across fields (subclasses); RlipError naming `where`."""

    def to_dict(self) -> dict[str, Any]:
        """The JSON-ready object (see the module docstring)."""
        names = self.field_names()
        values = {n: _dump(getattr(self, n)) for n in names}
        if self.stored_keys is None:
            out = {n: v for n, v in values.items() if not (v is None and n in self.OPTIONAL)}
        else:  # as loaded: stored keys in order, then fields set since
            out = {
                k: values[k] if k in values else self.extra[k]
                for k in self.stored_keys
                if k in values or k in self.extra
            }
            out.update({n: v for n, v in values.items() if n not in out and v is not None})
        out.update({k: v for k, v in self.extra.items() if k not in out})
        return out


def _dump(v: Any) -> Any:
    if isinstance(v, Payload):
        return v.to_dict()
    if isinstance(v, list):
        return [_dump(x) for x in v]
    if isinstance(v, Enum):
        return v.value
    return v
