"""A configured store (name, role, open adapter), and the set of stores one run works on.

Audits and repairs are given their stores explicitly (:class:`StoreSet`): the ones that answered,
each opened with the scheme's ID versions. A :class:`~uuid_forge.forge.Forge` is a store set too
(``source`` and ``stores``), so the functions taking one take either.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from .contract import Adapter

__all__ = ["StoreHandle", "StoreSet", "Stores"]


@dataclass
class StoreHandle:
    """A configured store: its name, role and open adapter."""

    name: str
    adapter: Adapter
    source: bool = False
    required: bool = True

    @property
    def role(self) -> str:
        return "source" if self.source else "required" if self.required else "optional"


class Stores(Protocol):
    """What an audit or a repair reads its stores from: a Forge, or a :class:`StoreSet`."""

    @property
    def source(self) -> StoreHandle: ...

    @property
    def stores(self) -> list[StoreHandle]: ...


@dataclass(frozen=True)
class StoreSet:
    """The stores of one run, the source first; ``down``: the optional ones left out, and why."""

    stores: list[StoreHandle]
    down: dict[str, str]

    @property
    def source(self) -> StoreHandle:
        return self.stores[0]

    def handle(self, name: str) -> StoreHandle | None:
        return next((h for h in self.stores if h.name == name), None)
