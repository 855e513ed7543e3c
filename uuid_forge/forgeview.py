"""What the modules a Forge calls need of it, as a Protocol.

``Forge`` hands itself to the ID-configuration markers, the tombstones and the audit (its
comparison, partitions and repair). Naming the ``Forge`` class there, even for type hints only,
would tie those modules back to ``uuid_forge.forge``, which imports them: an import circle. They
name this view instead; ``Forge`` matches it by its shape, and mypy checks that it does wherever a
Forge is passed in.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Protocol

from .entitytypes import EntityType, TypedGenerator
from .handles import StoreHandle
from .ids import IDConfig, UUIDGenerator
from .ownership import Prover
from .record import Record
from .report import WriteReport
from .settings import WriteSettings

__all__ = ["ForgeView"]


class ForgeView(Protocol):
    """The stores (the source first), the ID scheme and the writes of a ``uuid_forge.Forge``."""

    stores: list[StoreHandle]
    source: StoreHandle
    types: dict[str, EntityType]
    ids: IDConfig
    generator: UUIDGenerator | TypedGenerator
    prover: Prover
    settings: WriteSettings

    def records(self, entities: Iterable[Any], start: int = 0) -> list[Record]:
        """Records with IDs for ``(entity_type, key, data)`` items."""
        ...

    def write_many(self, entities: Iterable[Any], progress: Callable[[int], None] | None = None, *,
                   recreate: bool = False) -> WriteReport:
        """Write many entities to every store, in batches."""
        ...
