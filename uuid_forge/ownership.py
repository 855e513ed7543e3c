"""Ours means proven ours: whether uuid-forge wrote an entry, decided from the entry itself.

A name in our exact form proves nothing: any UUID of any version fits it, and other applications
name their entries by UUIDs too (version 4, version 5 of their own namespace, random 32-hex tokens
that happen to read as version 5). So an entry is ours only when

* its ID is what the configured ID function gives for the key fields the entry itself holds (the
  declared key of its entity type in its data, else the key kept beside the data,
  :attr:`~uuid_forge.record.Record.key`), or
* it holds no key fields and carries uuid-forge's mark where the layout has one, and the mark
  names the entry (:attr:`~uuid_forge.record.Record.marked`: Elasticsearch's ``uf_id`` equal to
  ``_id``, the legacy envelope's ``id`` equal to its name). The mark never overrides contrary
  evidence: an entry whose key fields rebuild another ID is not ours, marked or not (anyone can
  copy a field).

Everything that deletes (``--delete-orphans``, ``drop``, point audits with repair, Celery repair
tasks) and everything that copies from the source asks this one :class:`Prover`, just before
acting. What it cannot prove is reported as "unproven", never deleted, rewritten or copied.
IDs are recomputed a batch at a time (``generate_many``), so proving costs one recompute per
entry proven, and only entries about to be acted on are proven.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from .record import Record
from .view import FULL, FieldView

__all__ = ["HOW_TO_PROVE", "Proof", "Prover"]

#: what an audit tells the user about entries it cannot prove
HOW_TO_PROVE = ("to make such entries provable, store the type's key fields in this store (or keep uuid-forge's "
                "mark: the envelope's id, Elasticsearch's id field); if they are another application's, leave them")


class _Generator(Protocol):
    def generate(self, entity_type: str, /, *args: Any, **kwargs: Any) -> uuid.UUID: ...

    def generate_many(self, entity_type: str, keys: list[Any]) -> list[uuid.UUID]: ...


class _Declared(Protocol):
    @property
    def key(self) -> tuple[str, ...]: ...

    @property
    def salt_missing(self) -> bool: ...


@dataclass(frozen=True)
class Proof:
    """Whether one entry is proven ours; ``reason`` says why not, ``expected`` is the ID its key
    fields give (None when it holds none, or was proven by its mark)."""

    ok: bool
    reason: str = ""
    expected: uuid.UUID | None = None


PROVEN = Proof(True)


class Prover:
    """The one rule of ownership, for one ID configuration (``generator``) and the declared
    entity types (``types``: name -> :class:`~uuid_forge.entitytypes.EntityType`)."""

    def __init__(self, generator: _Generator, types: Mapping[str, _Declared] | None = None) -> None:
        self.generator = generator
        self.types = dict(types or {})

    def key_of(self, entity_type: str, record: Record, view: FieldView = FULL) -> tuple[Any, str]:
        """(the key the entry holds, "") or (None, why it holds none)."""
        declared = self.types.get(entity_type)
        names = declared.key if declared is not None else ()
        if names:
            data = record.data
            missing = [n for n in names if data.get(n) is None]
            if not missing:
                return {n: data[n] for n in names}, ""
            if isinstance(record.key, Mapping) and set(record.key) == set(names):
                return dict(record.key), ""  # written as write(type, key, data): the key kept beside the data
            unheld = [n for n in missing if not view.owns(n)]
            if unheld:
                return None, (f"this store's projection does not hold key field(s) {', '.join(unheld)}, and it keeps "
                              "no key beside the data")
            return None, f"key field(s) {', '.join(missing)} missing or null in the data"
        if record.key is not None:
            return record.key, ""
        return None, "no key fields held here (undeclared type, and this store's layout keeps no key beside the data)"

    def prove(self, entity_type: str, records: Mapping[uuid.UUID, Record], view: FieldView = FULL
              ) -> dict[uuid.UUID, Proof]:
        """A proof (or the reason there is none) for each entry of ``records`` (ID as stored -> record)."""
        out: dict[uuid.UUID, Proof] = {}
        keyed: list[tuple[uuid.UUID, Any]] = []
        declared = self.types.get(entity_type)
        salt_missing = declared is not None and declared.salt_missing
        for ident, record in records.items():
            if record.unreadable:
                out[ident] = Proof(False, "the entry cannot be read, so it cannot be proven ours")
            elif salt_missing:
                out[ident] = PROVEN if record.marked else \
                    Proof(False, "the type's salt variable is not set: no ID can be recomputed")
            else:
                key, reason = self.key_of(entity_type, record, view)
                if key is not None:
                    keyed.append((ident, key))  # key fields held: they decide, whatever the mark says
                elif record.marked:
                    out[ident] = PROVEN  # no key fields here: the mark naming the entry is the proof
                else:
                    out[ident] = Proof(False, reason)
        for (ident, _), expected in zip(keyed, self.ids_from_keys(entity_type, [k for _, k in keyed])):
            if expected is None:
                out[ident] = Proof(False, "its key fields are not a key the ID function accepts")
            elif expected != ident:
                out[ident] = Proof(False, "its key fields give another ID", expected)
            else:
                out[ident] = Proof(True, expected=expected)
        return out

    def proven(self, entity_type: str, records: Mapping[uuid.UUID, Record], view: FieldView = FULL
               ) -> set[uuid.UUID]:
        """The IDs among ``records`` proven ours."""
        return {i for i, p in self.prove(entity_type, records, view).items() if p.ok}

    def ids_from_keys(self, entity_type: str, keys: list[Any]) -> list[uuid.UUID | None]:
        """The IDs ``keys`` give by exactly the configured ID function (None for an unusable key),
        in one batch when every key can."""
        if not keys:
            return []
        try:
            return list(self.generator.generate_many(entity_type, [_arg(k) for k in keys]))
        except (TypeError, ValueError, ArithmeticError):
            pass  # one bad key: the others one by one
        return [self._id_from_key(entity_type, k) for k in keys]

    def _id_from_key(self, entity_type: str, key: Any) -> uuid.UUID | None:
        try:
            return self.generator.generate_many(entity_type, [_arg(key)])[0]
        except (TypeError, ValueError, ArithmeticError):
            return None


def _arg(key: Any) -> Any:
    """A stored key as generate_many takes it: named values, positional values as a tuple."""
    return tuple(key) if isinstance(key, list) else key
