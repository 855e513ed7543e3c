"""Where a store keeps each entity type: the user's own container, or one container per type.

SQL tables, MongoDB collections and Elasticsearch indices follow one rule, written here once:

* your own container (``table=``, ``collection=``, ``index=``) holds the one entity type you
  name, in the shape you already have; or
* each type gets its own container named ``prefix + entity_type``. No separator a type could not
  contain stands between the two (prefix ``acme_`` with type ``user`` and no prefix with type
  ``acme_user`` name the same container), so the first write records which prefix and type a
  container was made for in an owners record, and a write, scan or delete through another
  prefix or type is refused with an error naming both.

Each store keeps the owners record its own way (a table, a collection, an index's ``_meta``)
behind the small :class:`OwnersBook` protocol.

uuid-forge's own records (reserved types, ``uuid-forge.*``: the ID-configuration marker) never go
into your own container: they live in a side container of the same store, named by the store
(``side=``: a table ``uuid_forge_meta``, a collection, an index). Per-type containers hold them
as any other type.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Protocol

from .contract import RESERVED_TYPE_PREFIX
from .errors import ValidationError

__all__ = ["Containers", "OwnersBook"]


class OwnersBook(Protocol):
    """A store's record of which (prefix, entity type) each per-type container was made for."""

    def get(self, name: str) -> tuple[str, str] | None:
        """(prefix, entity type) recorded for the container ``name``, or None."""

    def claim(self, name: str, prefix: str, entity_type: str) -> None:
        """Record ``name`` as this prefix's and type's unless someone did already (atomically)."""

    def remove(self, name: str) -> None:
        """Forget ``name`` (its container was dropped)."""

    def all(self) -> dict[str, tuple[str, str]]:
        """Every recorded container: name -> (prefix, entity type)."""


class Containers:
    """The container of each entity type in one store, and the owners check that guards it."""

    def __init__(self, kind: str, *, own: str | None, own_type: str | None, prefix: str,
                 owners: OwnersBook | None, side: str | None = None) -> None:
        self.kind = kind  # "table", "collection" or "index": for messages
        self.own = own
        self.side = side  # beside your own container: where uuid-forge's reserved types live
        self.own_type = own_type
        self.prefix = prefix
        self.owners = owners
        self._checked: set[str] = set()

    @property
    def is_own(self) -> bool:
        """True when the user's own container holds the one entity type."""
        return self.own is not None

    def is_side(self, entity_type: str) -> bool:
        """True when ``entity_type`` is one of uuid-forge's own, kept in the side container."""
        return self.own is not None and self.side is not None and entity_type.startswith(RESERVED_TYPE_PREFIX)

    def name_for(self, entity_type: str) -> str:
        """The container that holds ``entity_type``."""
        if self.own is None:
            return self.prefix + entity_type
        return self.side if self.side is not None and self.is_side(entity_type) else self.own

    def accepts(self, entity_type: str) -> str | None:
        """Why ``entity_type`` is not held here (the user's container holds another), or None."""
        if self.own is not None and entity_type != self.own_type and not self.is_side(entity_type):
            return (f"its {self.kind} {self.own!r} holds only {self.own_type!r}")
        return None

    def check(self, entity_type: str, claim: bool = False) -> None:
        """Refuse a per-type container made for another prefix or type; with ``claim`` (a write),
        record it as this prefix's and type's if nobody has yet. Containers made before the owners
        record existed are claimed by their next write."""
        if self.own is not None or self.owners is None or entity_type in self._checked:
            return
        name = self.name_for(entity_type)
        owner = self.owners.get(name)
        if owner is None:
            if not claim:
                return
            self.owners.claim(name, self.prefix, entity_type)
            owner = self.owners.get(name)
        if owner is not None and owner != (self.prefix, entity_type):
            raise ValidationError(
                f"{self.kind} {name!r} belongs to entity type {owner[1]!r} with prefix {owner[0]!r}, not to "
                f"{entity_type!r} with {self.prefix!r}: refused (choose a prefix whose names cannot overlap "
                "another's)")
        if owner is not None:
            self._checked.add(entity_type)

    def release(self, entity_type: str) -> None:
        """Forget the owners record of a dropped per-type container."""
        self._checked.discard(entity_type)
        if self.own is None and self.owners is not None:
            self.owners.remove(self.name_for(entity_type))

    def ours(self, names: Iterable[str]) -> list[str]:
        """The entity types whose per-type containers are among ``names`` and are not another
        prefix's or type's (the store still checks each type's own naming rules)."""
        if self.own is not None:
            return [self.own_type] if self.own_type and self.own in set(names) else []
        owners = self.owners.all() if self.owners is not None else {}
        found = []
        for name in names:
            if not name.startswith(self.prefix) or len(name) == len(self.prefix):
                continue
            entity_type = name[len(self.prefix):]
            if name in owners and owners[name] != (self.prefix, entity_type):
                continue  # made for another prefix and type
            found.append(entity_type)
        return found
