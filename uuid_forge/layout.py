"""Layouts: how one store shapes a record, as strategy objects chosen from a table.

Each adapter declares ``LAYOUTS = {"data": DataLayout, "envelope": EnvelopeLayout, ...}`` and
keeps one instance, so a new store shape is one new class, not a branch in every method (the
model is cachelib's serializers injected into its backends, and SQLAlchemy's dialect classes).
A layout encodes a record for writing, decodes what was read, fingerprints it, and says which
fields of the stored entry it owns: a write changes only those and keeps every other field
another application added.
"""

from __future__ import annotations

import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from .options import Option
from .record import Record

__all__ = ["Layout", "layout_option"]


class Layout(ABC):
    """One shape of a store's entries; the adapter calls it and never tests which one it has."""

    #: the value of the adapter's ``layout`` option that selects this class
    name: ClassVar[str]
    #: one line for the generated option docs
    doc: ClassVar[str] = ""

    @abstractmethod
    def encode(self, record: Record) -> Any:
        """What the store keeps for ``record`` (bytes, a document, a row: the adapter's choice)."""

    @abstractmethod
    def decode(self, entity_type: str, ident: uuid.UUID, stored: Any) -> Record:
        """The record ``stored`` holds; TypeError or ValueError when it holds none."""

    @abstractmethod
    def fingerprint(self, stored: Any) -> str | None:
        """The fingerprint of the data ``stored`` holds, computed from it (never a stored one)."""

    @abstractmethod
    def owned_fields(self, record: Record) -> frozenset[str]:
        """The top-level fields of the stored entry that this layout writes for ``record``."""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} layout={self.name!r}>"


def layout_option(layouts: Mapping[str, type[Layout]], default: str, doc: str, *,
                  deprecated: tuple[str, ...] = (), deprecated_values: tuple[tuple[str, str], ...] = ()) -> Option:
    """The adapter's declared ``layout`` option: one choice per class in ``layouts``, each documented."""
    described = "; ".join(f"{name}: {cls.doc}" for name, cls in layouts.items() if cls.doc)
    return Option("layout", str, default, f"{doc} {described}".strip() if described else doc,
                  choices=tuple(layouts), deprecated=deprecated, deprecated_values=deprecated_values)
