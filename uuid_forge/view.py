"""What of an entity one store holds: a projection, fields it adds for itself, its time precision.

A cache may keep only ``name`` and ``email``; a search index adds ``indexed_at``; MongoDB keeps
dates to the millisecond. A :class:`FieldView` says so, and the audit compares each store with the
source *seen through that store's view*: both sides are projected the same way before they are
fingerprinted, so a projection is not "stale", while an edited field inside it still is.

Declared per store in ``forge.toml``::

    [stores.cache]
    url = "redis://127.0.0.1:6379/0?layout=data"
    projection = ["name", "email"]      # the store holds only these fields (writes send only these)
    ignore_fields = ["cached_at"]       # fields the store adds for itself: never compared
    datetime_precision = "ms"           # compare datetimes at the store's precision (BSON dates)

or in code, when the store is opened: ``open_store(url, view=FieldView(projection=("name", "email")))``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

__all__ = ["FULL", "PRECISIONS", "FieldView"]

#: datetime precisions a store may declare: microseconds (the canonical form), milliseconds, seconds
PRECISIONS = ("us", "ms", "s")

# the canonical datetime text (uuid_forge.canonical): UTC, "Z", six fraction digits when any
_CANONICAL_DATETIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{6}))?Z")


@dataclass(frozen=True)
class FieldView:
    """The part of an entity a store holds, and how precisely (see the module docstring)."""

    projection: tuple[str, ...] | None = None
    ignore_fields: tuple[str, ...] = ()
    datetime_precision: str = "us"

    def __post_init__(self) -> None:
        if self.datetime_precision not in PRECISIONS:
            raise ConfigError(f"datetime_precision {self.datetime_precision!r}: expected one of "
                              f"{', '.join(PRECISIONS)}")
        for what, names in (("projection", self.projection or ()), ("ignore_fields", self.ignore_fields)):
            for name in names:
                if not isinstance(name, str) or not name:
                    raise ConfigError(f"{what}: field names must be non-empty text, got {name!r}")
        overlap = set(self.projection or ()) & set(self.ignore_fields)
        if overlap:
            raise ConfigError(f"fields {', '.join(sorted(overlap))} are both projected and ignored: choose one")

    @classmethod
    def from_settings(cls, where: str, spec: Mapping[str, Any]) -> FieldView:
        """The view a store entry of the configuration declares (FULL when it declares none)."""
        projection = spec.get("projection")
        ignore = spec.get("ignore_fields", ())
        precision = spec.get("datetime_precision", "us")
        for key, value in (("projection", projection), ("ignore_fields", ignore)):
            if value is not None and (isinstance(value, (str, bytes)) or not isinstance(value, Iterable)):
                raise ConfigError(f"{where} {key}: expected a list of field names, got {value!r}")
        try:
            view = cls(tuple(projection) if projection is not None else None, tuple(ignore), precision)
        except ConfigError as err:
            raise ConfigError(f"{where}: {err}") from None
        return FULL if view == FULL else view

    @property
    def full(self) -> bool:
        """Whether the store holds every field, as written (the default)."""
        return self.projection is None and not self.ignore_fields and self.datetime_precision == "us"

    def apply(self, data: Any) -> Any:
        """``data`` as this store is compared: projected, ignored fields left out, datetimes cut to
        the store's precision. Applied alike to the source's data and the store's."""
        if self.full or not isinstance(data, Mapping):
            return data
        if self.projection is not None:
            data = {k: v for k, v in data.items() if k in self.projection}
        elif self.ignore_fields:
            data = {k: v for k, v in data.items() if k not in self.ignore_fields}
        if self.datetime_precision != "us":
            data = _cut_times(data, self.datetime_precision)
        return data

    def written(self, data: Mapping[str, Any]) -> Mapping[str, Any]:
        """What a write sends to the store: the projection only (ignored fields are the store's own)."""
        if self.projection is None:
            return data
        return {k: v for k, v in data.items() if k in self.projection}

    def owns(self, name: str) -> bool:
        """Whether uuid-forge owns the data field ``name`` in this store: a field of the projection
        when there is one, else any field that is not ignored. A write changes owned fields only and
        keeps the others, which another application put there (issue 18, rule 3)."""
        if self.projection is not None:
            return name in self.projection
        return name not in self.ignore_fields

    def kept(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        """The fields of a stored entry's data that a write must keep: those it does not own."""
        return {k: v for k, v in stored.items() if not self.owns(k)}

    def merged(self, stored: Mapping[str, Any] | None, data: Mapping[str, Any]) -> dict[str, Any]:
        """What a write leaves in the store: the fields it does not own as they were, then its own
        (owned fields absent from ``data`` are removed)."""
        out = self.kept(stored) if stored else {}
        out.update((k, v) for k, v in data.items() if self.owns(k))
        return out

    def describe(self) -> str:
        parts = []
        if self.projection is not None:
            parts.append(f"projection {', '.join(self.projection)}")
        if self.ignore_fields:
            parts.append(f"ignores {', '.join(self.ignore_fields)}")
        if self.datetime_precision != "us":
            parts.append(f"datetimes to the {self.datetime_precision}")
        return "; ".join(parts) or "every field"


FULL = FieldView()


def _cut_times(value: Any, precision: str) -> Any:
    if isinstance(value, str):
        match = _CANONICAL_DATETIME.fullmatch(value)
        if match is None:
            return value
        whole, fraction = match.groups()
        if precision == "s" or not fraction or fraction[:3] == "000":
            return whole + "Z"
        return f"{whole}.{fraction[:3]}000Z"
    if hasattr(value, "tzinfo") and hasattr(value, "microsecond") and getattr(value, "tzinfo", None) is not None:
        cut = value.microsecond // 1000 * 1000 if precision == "ms" else 0
        return value.replace(microsecond=cut)
    if isinstance(value, Mapping):
        return {k: _cut_times(v, precision) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_cut_times(v, precision) for v in value]
    return value
