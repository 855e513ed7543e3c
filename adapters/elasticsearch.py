"""``elasticsearch+http://`` / ``elasticsearch+https://``: the entity's fields as indexed, searchable fields.

**Layout** (``layout=data``, the only one: :class:`DataLayout`): each entity is one document whose top-level fields are the
entity's own fields, indexed like any document you write yourself, so ``match``, ``term`` and
``range`` queries find what uuid-forge wrote::

    _id       the 36-char UUID string (or, with id_format=base64url, its 22-char base64url form)
    uf_id     keyword, the 36-char UUID string (option id_field): Elasticsearch 8 forbids sort
              and range on _id, and an audit reads ID ranges (partitions). "" writes no such field.
    name, email, total, created_at, ...   the entity's data, as is

There is no fingerprint, business key or envelope in the document: an audit fingerprints the data
it reads (the document without ``id_field``), and a Record read back has ``key=None``.

**Where** (:mod:`uuid_forge.containers`): one index per entity type, ``{prefix}{entity_type}``
(default prefix ``uf-``; ``index_prefix`` is the option's former name),
or your own index: ``index=orders&entity_type=order`` (the one type it holds). An index that
exists is used as it is: uuid-forge never changes a mapping in it, and only adds ``id_field`` as a
``keyword`` before its first write when your index does not map it yet (dynamic mapping would
make it ``text`` for good). An index uuid-forge has to
create gets ``id_field`` as a ``keyword`` and leaves every other field to dynamic mapping (a
per-type index also gets its owners record, ``_meta.uuid_forge = {index_prefix, entity_type}``
naming its prefix and type, so that ``uf-`` + ``a-b`` and ``uf-a-`` + ``b`` never share an index). ``drop()`` deletes a per-type index that
uuid-forge made and that holds nothing else; from your own index, or from one holding other
applications' documents, it deletes only uuid-forge's documents.

**One data model**: ``_source`` keeps the JSON text as sent. Responses are parsed with
:func:`uuid_forge.record.load_json` (fractions as Decimal, every digit kept), and strings come back as the
text sent, in fields the index maps as ``date`` too: text is text (docs/data-model.md), so a
source's datetime, written as its UTC text ``...Z``, reads back equal, and ``...+02:00`` written by
another program is another value (stale, repaired to the source's). JSON layers outside Python (Java and JavaScript clients, ingest pipelines,
the noida-db stand-in) turn integers beyond 64 bits and decimals beyond a double's 17 digits into
doubles; such numbers are written as their exact text, and the document lists where they are in
``uf_numbers`` (option ``numbers_field``, JSON Pointers such as ``/total``), read back as numbers.

**Seed-era indices**: documents with a UUID ``_id`` and the entity's fields but no ``id_field``
(the seed's order index) are read, audited and repaired as they are; ``id_field=`` (empty) keeps
that shape on rewrite. Without an id field a scan cannot read one ID range alone: each partition
reads the whole index. A document whose ``_id`` is no ID of ours is another application's
(:class:`~uuid_forge.record.ForeignEntry`): reported, never rewritten or deleted.

**Writes own only their fields** (``FieldView.owns``, :mod:`uuid_forge.view`; issue 18): a store
that owns every field writes whole documents with bulk ``index`` (the fast path); any other view
(``projection``, ``ignore_fields``) a bulk ``update`` whose script sets the owned fields, removes the
owned ones the record lacks (``uf_numbers`` too when no longer needed), and keeps the rest.
``filter`` (an Elasticsearch query in JSON) narrows your own index to this store's documents. An
existing index that maps ``id_field`` as anything but ``keyword`` is refused.

Indices written by earlier versions in the envelope layout (``id``, ``fp``, ``key``, ``data``
with ``dynamic: strict``) are refused with a message saying so: reindex them into this layout.
"""

from __future__ import annotations

import contextlib
import decimal
import json
import logging
import re
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any, ClassVar, cast
from urllib.parse import unquote, urlsplit, urlunsplit

import elasticsearch
from elasticsearch import helpers
from elasticsearch.serializer import JsonSerializer

from uuid_forge.canonical import canonical, format_decimal, format_float
from uuid_forge.classify import classify, classify_uuid, exact_id, parse_id
from uuid_forge.containers import Containers
from uuid_forge.contract import BATCH_SIZE, Adapter, Check, Option, ScanItem
from uuid_forge.encodings import check_target, encode
from uuid_forge.errors import (
    ConfigError,
    StoreConfigError,
    StoreError,
    StoreRejectedError,
    StoreUnavailableError,
    TargetError,
    UUIDForgeError,
    ValidationError,
)
from uuid_forge.layout import Layout, layout_option
from uuid_forge.record import ForeignEntry, MalformedID, Partition, RawEntry, Record, load_json
from uuid_forge.urls import mask_text

log = logging.getLogger("uuid_forge.adapters.elasticsearch")

#: beside your own index (index=): uuid-forge's own records (the ID-configuration marker)
META = "uuid-forge.meta"

__all__ = ["ID_FORMATS", "LAYOUTS", "DataLayout", "ElasticsearchAdapter", "Hit", "IndexOwners"]

#: fields Elasticsearch keeps for itself: a document may not have them at top level
META_FIELDS = frozenset({"_id", "_index", "_source", "_routing", "_seq_no", "_primary_term", "_version",
                         "_field_names", "_ignored", "_doc_count", "_tier", "_data_stream_timestamp",
                         "_nested_path", "_feature", "_ignored_source", "_size"})
# per-item bulk errors that are the document's own fault (split out and dead-lettered) or the store's
_RECORD_REFUSALS = {"mapper_parsing_exception", "document_parsing_exception", "illegal_argument_exception",
                    "strict_dynamic_mapping_exception", "version_conflict_engine_exception",
                    "x_content_parse_exception", "parse_exception"}
_STORE_REFUSALS = {"security_exception", "index_closed_exception", "invalid_index_name_exception"}
_RETRYABLE = {"es_rejected_execution_exception", "unavailable_shards_exception", "cluster_block_exception"}
# 16+ characters of digits and points: a number that may not survive a double (see _exact_text)
_LONG_NUMBER = re.compile(r"\d[\d.]{15}")
_INT64 = range(-(2**63), 2**63)


class _ExactJson(JsonSerializer):
    """Responses parsed without losing digits: ``_source`` fractions become Decimals."""

    def json_loads(self, data: bytes) -> Any:
        return load_json(data)


def _lossy(value: Any) -> bool:
    """Whether a JSON layer holding numbers as int64/double would change ``value``."""
    if type(value) is int:
        return value not in _INT64
    if isinstance(value, decimal.Decimal):
        text = format_decimal(value)
        try:
            return format_float(float(text)) != text
        except (UUIDForgeError, ValueError, OverflowError):
            return True  # beyond a double's range
    return False


def _pointer_part(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _exact_text(value: Any, pointer: str, found: list[str]) -> Any:
    """``value`` with every lossy number replaced by its canonical text; their JSON Pointers go to ``found``."""
    if isinstance(value, dict):
        return {k: _exact_text(v, f"{pointer}/{_pointer_part(k)}", found) for k, v in value.items()}
    if isinstance(value, list):
        return [_exact_text(v, f"{pointer}/{i}", found) for i, v in enumerate(value)]
    if _lossy(value):
        found.append(pointer)
        return canonical(value)
    return value


def _restore_numbers(data: dict[str, Any], pointers: Any) -> None:
    """Turn the texts at ``pointers`` back into numbers (in place); a path an edit removed is skipped."""
    for pointer in pointers if isinstance(pointers, list) else [pointers]:
        if not isinstance(pointer, str) or not pointer.startswith("/"):
            continue
        parts = [p.replace("~1", "/").replace("~0", "~") for p in pointer[1:].split("/")]
        try:
            parent: Any = data
            for part in parts[:-1]:
                parent = parent[int(part)] if isinstance(parent, list) else parent[part]
            last: Any = int(parts[-1]) if isinstance(parent, list) else parts[-1]
            text = parent[last]
            if isinstance(text, str):
                number = load_json(text)
                if isinstance(number, (int, decimal.Decimal, float)) and not isinstance(number, bool):
                    parent[last] = number
        except (KeyError, IndexError, ValueError, TypeError):
            continue


#: the partial update of DataLayout.update (JSON text): plain Painless that the stand-in runs too
_MERGE_SCRIPT = json.dumps(
    "for (k in params.unset) { ctx._source.remove(k); } "
    "if (params.rest) { List drop = new ArrayList(); for (k in ctx._source.keySet()) { "
    "if (!params.keep.contains(k) && !params.doc.containsKey(k)) { drop.add(k); } } "
    "for (k in drop) { ctx._source.remove(k); } } "
    "for (k in params.doc.keySet()) { ctx._source[k] = params.doc[k]; }")


def _base64url(ident: uuid.UUID) -> str:
    return encode(ident, "base64url")  # type: ignore[return-value]


#: ``id_format=`` values: the ``_id`` of an ID (``id_field`` keeps the 36-char string either way)
ID_FORMATS: dict[str, Callable[[uuid.UUID], str]] = {"string": str, "base64url": _base64url}


@dataclass(frozen=True)
class Hit:
    """A document as read: its ``_source`` (date-mapped fields too come back as the text sent)."""

    source: dict[str, Any]


class DataLayout(Layout):
    """The entity's fields at the top level, plus the ID in ``id_field`` (a keyword: ES 8 forbids
    range queries on ``_id``) and, on documents that need it, ``numbers_field`` (see the module doc).

    It fingerprints through its adapter, whose view decides what is compared, and holds what the
    shape decides: the document text, the data in a ``_source``, the mapping of a new index, which
    old indices it refuses, and the scan query of a partition.
    """

    name = "data"
    doc = "the entity's fields at the top level, with the ID in id_field (the only layout)."

    def __init__(self, adapter: ElasticsearchAdapter, id_field: str, numbers_field: str) -> None:
        for option, value in (("id_field", id_field), ("numbers_field", numbers_field)):
            if value and (value in META_FIELDS or value.startswith("_") or "." in value):
                raise ConfigError(f"elasticsearch: {option}={value!r} cannot be a document field: it may not start "
                                  "with '_' nor contain '.'")
        if id_field and id_field == numbers_field:
            raise ConfigError(f"elasticsearch: id_field and numbers_field are both {id_field!r}: choose two names")
        self.store = adapter
        self.id_field = id_field
        self.numbers_field = numbers_field


    # -- the Layout operations ---------------------------------------------------------------------
    def encode(self, record: Record) -> str:
        """The document's JSON: the canonical data, lossy numbers as text, plus the id field."""
        text, found = self._exact(record)
        extra = []
        if found:
            extra.append(f"{json.dumps(self.numbers_field)}:{canonical(found)}")
        if self.id_field:
            extra.insert(0, f'{json.dumps(self.id_field)}:"{record.id}"')
        if not extra:
            return text
        return ("{" if text == "{}" else text[:-1] + ",") + ",".join(extra) + "}"

    def decode(self, entity_type: str, ident: uuid.UUID, stored: Hit) -> Record:
        data = self.data(stored)
        record = Record(entity_type, ident, data, None, fingerprint=self.store.fingerprint_data(data))
        record.marked = bool(self.id_field) and stored.source.get(self.id_field) == str(ident)  # our mark
        return record

    def fingerprint(self, stored: Hit) -> str | None:
        return self.store.fingerprint_data(self.data(stored))

    def owned_fields(self, record: Record) -> frozenset[str]:
        """The id field (uuid-forge's mark), the numbers field where the record needs it, and the
        record's fields the store's view owns (FieldView.owns)."""
        ours = [self.id_field] if self.id_field else []
        if self._exact(record)[1]:
            ours.append(self.numbers_field)
        owns = self.store.view.owns
        return frozenset((*(k for k in record.data if owns(k)), *ours))

    def update(self, record: Record) -> str:
        """The body of a bulk ``update`` that writes only the fields this store owns: a script
        sets the owned fields of ``record`` and removes the owned ones it lacks, every other field
        of the stored document stays as it is; a new document is the owned fields (``upsert``)."""
        view = self.store.view
        if any(not view.owns(k) for k in record.data):
            record = Record(record.entity_type, record.id, {k: v for k, v in record.data.items() if view.owns(k)},
                            record.key)
        doc = self.encode(record)
        marks = [n for n in (self.id_field, self.numbers_field) if n]
        if view.projection is not None:  # the owned names are known: remove those the record lacks
            unset = [n for n in view.projection if n not in record.data and n not in marks]
            rest, keep = False, []
        else:  # every field but ignore_fields is owned: remove whatever else the record lacks
            unset, rest, keep = [], True, [n for n in view.ignore_fields if n not in marks]
        if self.numbers_field and self.numbers_field not in unset and not self._exact(record)[1]:
            unset.append(self.numbers_field)
        params = f'{{"doc":{doc},"unset":{json.dumps(unset)},"rest":{json.dumps(rest)},"keep":{json.dumps(keep)}}}'
        return f'{{"script":{{"source":{_MERGE_SCRIPT},"lang":"painless","params":{params}}},"upsert":{doc}}}'

    def _exact(self, record: Record) -> tuple[str, list[str]]:
        """The data's JSON with every number a double or int64 would change as text, and where they are."""
        text = record.data_json
        if not self.numbers_field or not _LONG_NUMBER.search(text):
            return text, []
        found: list[str] = []
        value = _exact_text(load_json(text), "", found)
        return (canonical(value), found) if found else (text, [])

    # -- what else the shape decides ---------------------------------------------------------------
    def data(self, stored: Hit) -> dict[str, Any]:
        """The entity's data in a ``_source``: without our fields, exact numbers and dates restored."""
        data = dict(stored.source)
        if self.id_field:
            data.pop(self.id_field, None)
        pointers = data.pop(self.numbers_field, None) if self.numbers_field else None
        if pointers:
            _restore_numbers(data, pointers)
        return data  # text as sent, date-mapped or not: text is text (docs/data-model.md)

    def validate(self, entity_type: str, index: str, records: list[Record]) -> None:
        """Refuse data whose top-level fields Elasticsearch or this layout keep for themselves."""
        reserved = META_FIELDS | {name for name in (self.id_field, self.numbers_field) if name}
        for record in records:
            clash = reserved.intersection(record.data)
            if clash:
                field = min(clash)
                why = ("Elasticsearch's own metadata field" if field in META_FIELDS
                       else f"this store's {'id_field' if field == self.id_field else 'numbers_field'}")
                raise ValidationError(f"{entity_type} {record.id}: data field {field!r} collides with {why} in index "
                                      f"{index!r}: rename the field, or choose another id_field / numbers_field; "
                                      "nothing was written")

    def mappings(self) -> dict[str, Any]:
        """The mapping of an index uuid-forge creates: ``id_field`` as keyword, the rest dynamic."""
        return {"properties": {self.id_field: {"type": "keyword"}} if self.id_field else {}}

    def refusal(self, mapping: dict[str, Any]) -> str | None:
        """Why an existing index cannot hold this layout: it holds the former envelope layout, or
        it maps ``id_field`` as something other than a keyword (a text field is split into terms:
        the ID ranges an audit reads would be wrong)."""
        props = mapping.get("properties") or {}
        kind = (props.get(self.id_field) or {}).get("type") if self.id_field else None
        if kind is not None and kind != "keyword":
            return (f"it maps {self.id_field!r} as {kind!r}: uuid-forge keeps the ID there and reads ID ranges, which "
                    f"needs a keyword; map {self.id_field} as {{\"type\": \"keyword\"}} (reindex), or choose another "
                    "id_field")
        if "fp" in props and (props.get("data") or {}).get("enabled") is False:
            return ("it holds uuid-forge's former envelope layout (id, fp, key, data; dynamic: strict): reindex its "
                    "documents' data as top-level fields into a new index, then point this store at it")
        return None

    def unmapped(self, mapping: dict[str, Any]) -> str | None:
        """Why an existing index of the user's that does not map ``id_field`` yet will not hold it
        as needed: dynamic mapping would make it ``text`` on the first write (a ``strict`` index
        would refuse the write, one with ``dynamic: false`` would not index it)."""
        if not self.id_field or self.id_field in (mapping.get("properties") or {}):
            return None
        dynamic = str(mapping.get("dynamic", "true")).lower()
        what = {"strict": "a strict index refuses every write that carries it",
                "false": "it would not be indexed, so no ID range could be read"}.get(
            dynamic, "the first write would map it by dynamic mapping as 'text', and the audit's ID ranges need a keyword")
        return (f"it does not map {self.id_field!r}: {what}; map it first: PUT <index>/_mapping "
                f"{{\"properties\": {{\"{self.id_field}\": {{\"type\": \"keyword\"}}}}}}")

    def check_mapping(self, index: str, entity_type: str, mapping: dict[str, Any] | None, own: bool
                      ) -> tuple[str, str]:
        """("ok" or "failed", why) for ``index`` as it is (None: it does not exist), for validate."""
        if mapping is None:
            return "ok", ("does not exist yet: created on the first write, with "
                          + (f"{self.id_field!r} as a keyword" if self.id_field else "dynamic mapping"))
        problem = self.refusal(mapping)
        if problem:
            return "failed", f"index {index!r} cannot hold entity type {entity_type!r} here: {problem}"
        if own and self.unmapped(mapping):
            return "ok", (f"does not map {self.id_field!r} yet: the first write maps it as a keyword (that field "
                          "only; no other mapping is changed)")
        return "ok", f"maps {self.id_field!r} as a keyword" if self.id_field else "exists"

    def has_id(self, source: dict[str, Any]) -> bool:
        """Whether a document carries the id field (seed-era ones, and all with ``id_field=""``, do not)."""
        return bool(self.id_field) and self.id_field in source

    def id_source(self) -> list[str] | bool:
        """The ``_source`` a scan for IDs only fetches."""
        return [self.id_field] if self.id_field else False

    def partition_query(self, partition: Partition) -> dict[str, Any]:
        """The partition's ``id_field`` range, or documents without the field; everything without an id field."""
        if not self.id_field or partition.count == 1:  # the whole space: with or without the field, all of it
            return {"match_all": {}}
        bounds = {}
        if partition.index > 0:  # partition 0 has no lower bound: a junk id below "000..." is still seen
            bounds["gte"] = str(partition.lo_uuid)
        if partition.hi_uuid is not None:
            bounds["lt"] = str(partition.hi_uuid)
        in_range = {"range": {self.id_field: bounds}} if bounds else {"exists": {"field": self.id_field}}
        no_id = {"bool": {"must_not": {"exists": {"field": self.id_field}}}}
        return {"bool": {"should": [in_range, no_id], "minimum_should_match": 1}}

    def classify_hit(self, raw: str, source: dict[str, Any]) -> uuid.UUID | MalformedID | ForeignEntry:
        """A document's ID: its ``_id`` decides whether it is ours (uuid_forge.classify); the
        ``id_field``, when present, must name the same UUID (lowercase 36-char when all is well)."""
        id_format, versions = self.store.id_format, self.store.id_versions
        if self.id_field and id_format == "string" and source.get(self.id_field) == raw:
            ident = exact_id(raw, "string")  # the usual document: both name the ID in its one right form
            if ident is not None:
                return ident
        by_id = classify(raw, id_format, versions=versions, where="_id")
        if isinstance(by_id, ForeignEntry) or not self.has_id(source):
            return by_id  # no id field: the _id alone says (a seed-era document is ours when it is right)
        ident = by_id if isinstance(by_id, uuid.UUID) else by_id.id
        assert ident is not None
        field = source.get(self.id_field)
        if field == str(ident):
            if isinstance(by_id, MalformedID):
                return MalformedID(raw=raw, reason=f"_id {raw!r} is not the {id_format} form of its "
                                                   f"{self.id_field} field {field}", id=ident)
            return ident
        parsed = parse_id(field) if isinstance(field, str) else None
        if (parsed is None or parsed[0] != ident) and isinstance(by_id, MalformedID):
            # neither part is ours in the right form, and they disagree: nothing says it is ours
            return ForeignEntry(raw, f"_id and {self.id_field} field name different IDs: not ours, left alone")
        mine = classify_uuid(ident, raw=raw, versions=versions, where="_id")
        if isinstance(mine, ForeignEntry):
            return mine
        return MalformedID(raw=raw, reason=f"{self.id_field} field {field!r} is not a lowercase 36-char UUID "
                                           "string naming its _id", id=ident)


#: ``layout=`` values (one today; the former envelope indices are refused, see DataLayout.refusal)
LAYOUTS: dict[str, type[DataLayout]] = {"data": DataLayout}


class IndexOwners:
    """:class:`~uuid_forge.containers.OwnersBook` kept in each per-type index's mapping,
    ``_meta.uuid_forge = {index_prefix, entity_type}`` (the field names earlier versions wrote):
    creating the index with it is the atomic claim, and dropping the index forgets it."""

    def __init__(self, adapter: ElasticsearchAdapter, pattern: str) -> None:
        self.adapter = adapter
        self.pattern = pattern  # the indices all() looks at: prefix*

    def get(self, name: str) -> tuple[str, str] | None:
        return _owner(self.adapter.mapping(name) or {})

    def claim(self, name: str, prefix: str, entity_type: str) -> None:
        mappings = {**self.adapter.layout.mappings(),
                    "_meta": {"uuid_forge": {"index_prefix": prefix, "entity_type": entity_type}}}
        self.adapter.create_index(name, mappings)

    def remove(self, name: str) -> None:
        """Nothing to do: the record is in the index's own mapping, gone with the index."""

    def all(self) -> dict[str, tuple[str, str]]:
        found: dict[str, Any] = self.adapter.client.indices.get_mapping(index=self.pattern).body
        owners = {index: _owner((body or {}).get("mappings") or {}) for index, body in found.items()}
        return {index: owner for index, owner in owners.items() if owner is not None}


def _owner(mapping: dict[str, Any]) -> tuple[str, str] | None:
    """(prefix, entity type) that an index's ``_meta`` says it was made for, or None."""
    meta = (mapping.get("_meta") or {}).get("uuid_forge")
    if not isinstance(meta, dict):
        return None
    return cast("tuple[str, str]", (meta.get("index_prefix"), meta.get("entity_type")))


class ElasticsearchAdapter(Adapter):
    """Entities as documents of indexed fields, written with ``_bulk`` (layout: see the module doc).

    Options come as keyword arguments or URL query parameters
    (``elasticsearch+http://host:9200?index=orders&entity_type=order``); ``uuid-forge adapters
    --options elasticsearch`` prints them. Anything else (``api_key``, ``ca_certs``,
    ``verify_certs``, ...) goes to ``Elasticsearch()``.
    """

    name: ClassVar[str] = "elasticsearch"
    connection_errors: ClassVar[tuple[type[BaseException], ...]] = (elasticsearch.ConnectionError,)
    timeout_errors: ClassVar[tuple[type[BaseException], ...]] = (elasticsearch.ConnectionTimeout,)

    options: ClassVar[tuple[Option, ...]] = (
        layout_option(LAYOUTS, "data", "the document's shape."),
        Option("index", str, None, "your own index, e.g. `orders`: it holds one entity type (entity_type=); used as "
               "it is (no mapping in it changes; id_field alone is added as keyword before the first write when "
               "unmapped), created with id_field as keyword and the rest dynamic when absent; drop() deletes only uuid-forge's documents from it. Unset: one index per type, "
               "prefix + type"),
        Option("entity_type", str, None, "the one entity type your own index= holds, e.g. `order`; any other type "
               "is refused"),
        Option("prefix", str, "uf-", "prefix of the per-type indices when index= is not set: type `user` "
               "lives in `uf-user`", deprecated=("index_prefix",)),
        Option("id_field", str, "uf_id", "keyword field holding the 36-char UUID beside _id (Elasticsearch 8 "
               "forbids sort and range on _id; audits read ID ranges). Data with a field of this name is refused. "
               "Empty: no such field (the seed's shape; each audit partition then reads the whole index)"),
        Option("numbers_field", str, "uf_numbers", "where a document lists (as JSON Pointers, e.g. `/total`) the "
               "numbers written as exact text because a double or int64 cannot hold them (20-digit decimals, "
               "integers beyond 64 bits); present only on such documents. Empty: write them as numbers (exact "
               "in Elasticsearch's _source, rounded by JSON layers that use doubles)"),
        Option("id_format", str, "string", "_id as the 36-char string, or base64url (22 chars: smaller _id terms); "
               "id_field keeps the 36-char string either way", choices=tuple(ID_FORMATS)),
        Option("refresh", str, None, "refresh parameter of _bulk: false (throughput), true or wait_for; reads by ID "
               "are real-time whatever it is, and scan refreshes first", shown_default="false",
               convert=lambda v: _refresh_value(v), expects="false, true or wait_for"),
        Option("timeout", float, 10.0, "seconds per request, so a server that never answers is an error",
               minimum=0, exclusive=True),
        Option("max_retries", int, 0, "the client's own retries on connection errors and 429/502/503/504 "
               "(write-through retries whole batches; an audit should fail fast)", minimum=0),
        BATCH_SIZE,
        Option("filter", str, None, "an Elasticsearch query in JSON that narrows your own index to the documents "
               "this store reads, e.g. {\"term\": {\"kind\": \"user\"}}: scans, reads, counts, audits and drop see "
               "only the documents it matches, and a write whose document it would not select is refused (checked "
               "before writing for match_all, term, terms, exists, range and bool, against the values as written: "
               "use keyword fields; a filter using other queries makes the store read-only)",
               convert=lambda v: _query(v), expects="a JSON object (an Elasticsearch query)"),
        Option("scan_page_size", int, 10_000, "hits per scroll page of a scan (whole documents: lower it for "
               "large ones)", minimum=1),
        Option("read_apart", bool, True, "with read_once, the audit reads the index in a process of its own, opened "
               "again from this URL, which decodes and fingerprints each document and hands the audit its IDs and "
               "fingerprints through private temporary files, so that decoding does not share the audit's "
               "interpreter lock with the other stores' comparisons; false reads it in a thread of the audit's "
               "process (as does a store opened around a client object rather than from its URL)"),
        Option("read_once", bool, False, "audit by reading the index once per audit, each document bucketed by "
               "its ID range as it streams (spilled to private temporary files past a partition's worth), instead "
               "of one id_field range query per partition: for a server where a range query walks the whole index "
               "(such as the stand-in used in this project's tests), where partitions would each pay a full scan; "
               "a real Elasticsearch answers ranges from the keyword index, so leave it off there"),
    )
    driver_keywords: ClassVar[str] = "`elasticsearch.Elasticsearch()` (e.g. `api_key`, `ca_certs`, `verify_certs`)"

    def __init__(self, url: str, **options: Any) -> None:
        parts = urlsplit(url)
        opts = self.parse_options(url, options)
        client_options = opts.driver_keywords
        super().__init__(url, batch_size=opts["batch_size"])
        self.id_format: str = opts["id_format"]
        self._doc_id = ID_FORMATS[self.id_format]
        self.layout: DataLayout = LAYOUTS[opts["layout"]](self, opts["id_field"], opts["numbers_field"])
        own, own_type, prefix = _container_options(opts["index"] or None, opts["entity_type"] or None, opts["prefix"])
        self._owners = IndexOwners(self, prefix + "*")
        self.containers = Containers("index", own=own, own_type=own_type, prefix=prefix, owners=self._owners,
                                     side=META)
        self._refresh = opts["refresh"]
        self._page = opts["scan_page_size"]
        #: read once per audit and bucketed (uuid_forge.onepass), not one range query per partition
        self.whole_scan = bool(opts["read_once"])
        #: read once in a process of its own (uuid_forge.scanprocess), not in a thread
        self.read_apart = bool(opts["read_apart"])
        #: the query narrowing the index to this store's documents (option ``filter``), or None
        self.filter: dict[str, Any] | None = opts["filter"]
        scheme = parts.scheme.lower()
        http_scheme = scheme.split("+", 1)[1] if "+" in scheme else "http"
        if http_scheme not in ("http", "https"):
            raise ConfigError(f"unsupported URL scheme {parts.scheme!r}: use elasticsearch+http or elasticsearch+https")
        host = parts.hostname or "localhost"
        netloc = f"[{host}]" if ":" in host else host
        netloc += f":{parts.port or 9200}"  # Elasticsearch's port, not the scheme's 80/443
        if parts.username is not None and "basic_auth" not in client_options:
            client_options["basic_auth"] = (unquote(parts.username), unquote(parts.password or ""))
        client_options.setdefault("serializers", {"application/json": _ExactJson()})
        self._client = elasticsearch.Elasticsearch(
            urlunsplit((http_scheme, netloc, parts.path.rstrip("/"), "", "")),
            request_timeout=opts["timeout"],
            max_retries=opts["max_retries"],
            retry_on_timeout=False, **client_options)
        self._ready: set[str] = set()  # indices known to exist and to be usable

    @property
    def id_encoding(self) -> str:
        return self.id_format

    @property
    def prefix(self) -> str:
        """The per-type indices' prefix (``prefix=``)."""
        return self.containers.prefix

    @property
    def client(self) -> elasticsearch.Elasticsearch:
        """The underlying ``Elasticsearch`` client, for queries of your own."""
        return self._client


    def index_name(self, entity_type: str) -> str:
        return self.containers.name_for(entity_type)

    def check_entity_type(self, entity_type: str) -> str:
        """ES index names are lowercase, at most 255 bytes, without ``\\ / * ? " < > | , # :``;
        your own index holds its one entity type only."""
        super().check_entity_type(entity_type)
        if self.containers.is_own:
            refused = self.containers.accepts(entity_type)
            if refused:
                raise ValidationError(f"entity type {entity_type!r} is not accepted by this store: {refused}")
            return entity_type
        try:
            check_target(self.index_name(entity_type), "es-index", "index")
        except TargetError as err:
            raise ValidationError(f"entity type {entity_type!r} is not accepted by elasticsearch: {err}") from None
        return entity_type

    def check(self, entity_types: Iterable[str]) -> list[Check]:
        """The checks of every type and, for your own index, of its one type whether named or not."""
        types = list(entity_types)
        own = self.containers.own_type if self.containers.is_own else None
        return super().check(types + [own] if own and own not in types else types)

    def _check_type(self, entity_type: str) -> list[Check]:
        """The index as it is: the same refusal a write meets (:meth:`_check_index`), and for your
        own index whether it maps ``id_field`` as a keyword yet. Nothing is created or mapped."""
        index = self.index_name(entity_type)
        mapping = self.mapping(index)
        if mapping is not None and not self.layout.refusal(mapping):
            self.containers.check(entity_type)  # a per-type index of another prefix or type: refused
        status, message = self.layout.check_mapping(index, entity_type, mapping, self.containers.is_own)
        return [Check(f"index {index!r}", status, message)]

    def validate_records(self, entity_type: str, records: list[Record]) -> None:
        """Refuse data whose top-level fields Elasticsearch or this layout keep for themselves."""
        self.layout.validate(entity_type, self.index_name(entity_type), records)

    # -- errors ----------------------------------------------------------------------------------
    @contextlib.contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        """Also treat 429 (too many requests) and 502-504 as "unavailable": write-through retries those."""
        with super()._errors(operation):
            try:
                yield
            except elasticsearch.ApiError as err:
                if err.meta.status not in (429, 502, 503, 504):
                    raise
                raise StoreUnavailableError(f"{self.url()}: {operation} failed, store busy or unavailable: "
                                            f"{mask_text(str(err))}", store=self.url()) from None

    def _classify(self, err: BaseException) -> type[StoreError] | None:
        """401/403 are the store's (credentials, rights); 400/413 the request's data."""
        if isinstance(err, elasticsearch.ApiError):
            status = err.meta.status
            if status in (401, 403):
                return StoreConfigError
            if status in (400, 413):
                return StoreRejectedError
        return super()._classify(err)

    def _raise_item_error(self, operation: str, errors: list[dict[str, Any]], total: int) -> None:
        first = errors[0]
        kinds = {e.get("type") for e in errors}
        kind: type[StoreError] = (StoreUnavailableError if first.get("type") in _RETRYABLE
                                  else StoreConfigError if kinds & _STORE_REFUSALS
                                  else StoreRejectedError if kinds and kinds <= _RECORD_REFUSALS else StoreError)
        raise kind(f"{self.url()}: {operation}: {len(errors)} of {total} items failed; first: "
                   f"{first.get('type')}: {mask_text(str(first.get('reason')))}", store=self.url())

    # -- indices ---------------------------------------------------------------------------------
    def mapping(self, index: str) -> dict[str, Any] | None:
        """The index's mapping, or None when the index does not exist."""
        try:
            found = self._client.indices.get_mapping(index=index).body
        except elasticsearch.NotFoundError:
            return None
        first: dict[str, Any] = next(iter(found.values()), {})
        return first.get("mappings") or {}

    def create_index(self, index: str, mappings: dict[str, Any]) -> None:
        """Create ``index`` with ``mappings`` unless it exists (then it is left as it is)."""
        try:
            self._client.indices.create(index=index, mappings=mappings)
        except elasticsearch.BadRequestError as err:
            if err.error != "resource_already_exists_exception":
                raise

    def _ensure_index(self, entity_type: str) -> None:
        """Create the index on first write with only ``id_field`` mapped (the rest stays dynamic; a
        per-type index also gets its owners record); an existing index is used as it is, once
        :meth:`_check_index` accepts it."""
        index = self.index_name(entity_type)
        if index in self._ready:
            return
        if self.containers.is_own:
            self.create_index(index, self.layout.mappings())
        self._check_index(entity_type, claim=True)

    def _check_index(self, entity_type: str, claim: bool = False) -> None:
        """Raise ValidationError when the index of ``entity_type`` exists but cannot be used: it holds
        the former envelope layout, or it is a per-type index made for another prefix or type. With
        ``claim`` (a write), a per-type index that does not exist yet is created as this one's."""
        index = self.index_name(entity_type)
        if index in self._ready:
            return
        mapping = self.mapping(index)
        if mapping is None and not claim:
            return
        problem = self.layout.refusal(mapping or {})
        if problem:
            raise ValidationError(f"index {index!r} cannot hold entity type {entity_type!r} here: {problem}")
        if claim and self.containers.is_own and mapping is not None and self.layout.unmapped(mapping):
            # Before the first write into your index: map our own ID field, and nothing else, as a
            # keyword; dynamic mapping would make it text for good (a strict index would refuse it).
            self._client.indices.put_mapping(index=index, properties=self.layout.mappings()["properties"])
            log.info("index %r: mapped %r as a keyword before the first write (no other field changed)",
                     index, self.layout.id_field)
        self.containers.check(entity_type, claim=claim)
        if claim or not (self.containers.is_own and mapping is not None and self.layout.unmapped(mapping)):
            # a read of your index before its first write must not mark it ready: the write still
            # has to map our ID field as a keyword (a migration reads the old documents first)
            self._ready.add(index)

    def _made_by_us(self, entity_type: str) -> bool:
        """Whether the index is a per-type index uuid-forge created for this prefix and type."""
        if self.containers.is_own:
            return False
        return self._owners.get(self.index_name(entity_type)) == (self.prefix, entity_type)

    # -- hooks -----------------------------------------------------------------------------------
    def _put(self, entity_type: str, records: list[Record]) -> None:
        index = self.index_name(entity_type)
        self._ensure_index(entity_type)
        self._check_filter(records)
        view = self.view
        if view.projection is None and not view.ignore_fields:
            # Every field is ours: whole documents, one NDJSON text with the canonical JSON embedded
            # as is (no parse and re-serialise per record).
            encode = self.layout.encode
            body = "".join([f'{{"index":{{"_id":"{self._doc_id(r.id)}"}}}}\n{encode(r)}\n' for r in records])
        else:  # the owned fields only: fields another application added stay (issue 18, rule 3)
            update = self.layout.update
            body = "".join([f'{{"update":{{"_id":"{self._doc_id(r.id)}"}}}}\n{update(r)}\n' for r in records])
        resp = self._client.bulk(operations=body, index=index, refresh=self._refresh,  # type: ignore[arg-type]
                                 filter_path="errors,items.*.error")  # a str body is sent as is
        if resp.get("errors"):
            errors = [op["error"] for item in resp.get("items", ()) for op in item.values() if "error" in op]
            if errors:
                self._raise_item_error(f"bulk index into {index}", errors, len(records))

    def _put_new(self, entity_type: str, records: list[Record]) -> None:
        """``_bulk`` with ``create``: a document whose ``_id`` exists already stays as it is."""
        index = self.index_name(entity_type)
        self._ensure_index(entity_type)
        encode = self.layout.encode
        body = "".join([f'{{"create":{{"_id":"{self._doc_id(r.id)}"}}}}\n{encode(r)}\n' for r in records])
        resp = self._client.bulk(operations=body, index=index, refresh=self._refresh,  # type: ignore[arg-type]
                                 filter_path="errors,items.*.error")
        errors = [op["error"] for item in resp.get("items", ()) for op in item.values()
                  if "error" in op and op["error"].get("type") != "version_conflict_engine_exception"]
        if errors:
            self._raise_item_error(f"bulk create into {index}", errors, len(records))

    def _get(self, entity_type: str, ids: list[uuid.UUID]) -> Iterable[Record]:
        # mget is real-time: it sees acknowledged writes before any refresh.
        index = self.index_name(entity_type)
        self._check_index(entity_type)
        resp = self._client.mget(index=index, ids=[self._doc_id(i) for i in ids])
        docs = resp["docs"]
        if len(docs) != len(ids):
            raise StoreError(f"{self.url()}: mget returned {len(docs)} docs for {len(ids)} ids", store=self.url())
        found = []
        for ident, doc in zip(ids, docs):  # mget answers in request order
            if doc.get("found"):
                found.append(self._read_record(entity_type, ident,
                                               _decoder(self.layout, entity_type, ident, Hit(doc["_source"]))))
            elif "error" in doc and doc["error"].get("type") != "index_not_found_exception":
                self._raise_item_error("mget", [doc["error"]], len(ids))
        if self.filter is not None and found:
            # mget cannot filter: keep the documents the filter selects (a search, after a refresh)
            self._client.indices.refresh(index=index, ignore_unavailable=True)
            wanted = [self._doc_id(r.id) for r in found]
            hits = self._client.search(index=index, size=len(wanted), source=False, query={"bool": {"filter": [
                {"ids": {"values": wanted}}, self.filter]}})["hits"]["hits"]
            selected = {h["_id"] for h in hits}
            found = [r for r in found if self._doc_id(r.id) in selected]
        return found

    def _read_raw(self, entity_type: str, raws: list[str]) -> Iterable[RawEntry]:
        """Documents by their exact ``_id`` (``"abc-42"``), in one ``mget``, decoded as :meth:`_get`
        does; with a ``filter``, only the documents it selects (as :meth:`_get`)."""
        index = self.index_name(entity_type)
        self._check_index(entity_type)
        docs = self._mget_raw(index, raws)
        found: list[RawEntry] = []
        layout = self.layout
        for raw, doc in zip(raws, docs):  # mget answers in request order
            if doc.get("found"):
                found.append(self._raw_entry(entity_type, raw, layout.decode, Hit(doc["_source"]),
                                             f"document _id {raw}"))
            elif "error" in doc and doc["error"].get("type") != "index_not_found_exception":
                self._raise_item_error("mget", [doc["error"]], len(raws))
        if self.filter is not None and found:
            self._client.indices.refresh(index=index, ignore_unavailable=True)
            hits = self._client.search(index=index, size=len(found), source=False, query={"bool": {"filter": [
                {"ids": {"values": [e.raw for e in found]}}, self.filter]}})["hits"]["hits"]
            selected = {h["_id"] for h in hits}
            found = [e for e in found if e.raw in selected]
        return found

    def _mget_raw(self, index: str, raws: list[str]) -> list[dict[str, Any]]:
        """The documents of ``raws`` in request order (each with ``_seq_no``/``_primary_term``)."""
        return list(self._client.mget(index=index, ids=raws)["docs"])

    def _delete_raw_if_unchanged(self, entity_type: str, wanted: dict[str, str]) -> int:
        """Compare and delete atomically: each document is read (with its ``_seq_no`` and
        ``_primary_term``), compared, and deleted with ``if_seq_no``/``if_primary_term``, so a
        write landing after the read makes that delete a version conflict and the document stays.
        A document read without its sequence number (an old server) is left, never deleted blind."""
        index = self.index_name(entity_type)
        self._check_index(entity_type)
        raws = list(wanted)
        selected = {e.raw for e in self._read_raw(entity_type, raws)} if self.filter is not None else set(raws)
        docs = self._mget_raw(index, raws)
        ops: list[str] = []
        layout = self.layout
        for raw, doc in zip(raws, docs):
            if not doc.get("found") or raw not in selected or "_seq_no" not in doc or "_primary_term" not in doc:
                continue
            entry = self._raw_entry(entity_type, raw, layout.decode, Hit(doc["_source"]), f"document _id {raw}")
            if self._still_proven(entry, wanted[raw]):
                ops.append(json.dumps({"delete": {"_id": raw, "if_seq_no": doc["_seq_no"],
                                                  "if_primary_term": doc["_primary_term"]}}) + "\n")
        if not ops:
            return 0
        resp = self._client.bulk(operations="".join(ops), index=index, refresh=True,  # type: ignore[arg-type]
                                 filter_path="items.*.result,items.*.status")
        return sum(op.get("result") == "deleted" for item in resp.get("items", ()) for op in item.values())

    def _delete_raw_names(self, entity_type: str, raws: list[str]) -> int:
        """Delete documents by exact ``_id``, within the ``filter`` (re-read by delete_raw_proven)."""
        index = self.index_name(entity_type)
        self._check_index(entity_type)
        if self.filter is not None:
            raws = [e.raw for e in self._read_raw(entity_type, raws)]  # the documents the filter selects
        if not raws:
            return 0
        body = "".join(json.dumps({"delete": {"_id": raw}}) + "\n" for raw in raws)
        resp = self._client.bulk(operations=body, index=index, refresh=True,  # type: ignore[arg-type]
                                 filter_path="items.*.result")
        return sum(op.get("result") == "deleted" for item in resp.get("items", ()) for op in item.values())

    def _narrowed(self, query: dict[str, Any]) -> dict[str, Any]:
        """``query`` narrowed by the store's ``filter`` (unchanged without one)."""
        return query if self.filter is None else {"bool": {"filter": [query, self.filter]}}

    def _check_filter(self, records: list[Record]) -> None:
        """Refuse, before anything is written, a record whose document the ``filter`` would not
        select: written, it would be invisible to this store's own reads and audits."""
        if self.filter is None:
            return
        for record in records:
            try:
                selected = _selects(self.filter, load_json(self.layout.encode(record)))
            except _Unsupported as err:
                raise ValidationError(f"{record.entity_type} {record.id}: this store's filter uses the {err} query, "
                                      "which uuid-forge cannot check before a write: nothing was written (writes "
                                      "need a filter of match_all, term, terms, exists, range and bool)") from None
            if not selected:
                raise ValidationError(f"{record.entity_type} {record.id}: its document does not match this store's "
                                      f"filter {json.dumps(self.filter)[:200]}, so this store could never read it "
                                      "back: nothing was written")

    def _delete_raw(self, entity_type: str, raws: list[str]) -> int:
        """Delete documents by the exact ``_id`` a scan reported (a wrongly encoded one)."""
        index = self.index_name(entity_type)
        self._check_index(entity_type)
        foreign = [raw for raw in raws
                   if isinstance(classify(raw, self.id_format, versions=self.id_versions), ForeignEntry)]
        if foreign:
            raise ValidationError(f"_ids {foreign[:3]} are not IDs written by uuid-forge: refused, foreign "
                                  "documents are never deleted")
        body = "".join(json.dumps({"delete": {"_id": raw}}) + "\n" for raw in raws)
        resp = self._client.bulk(operations=body, index=index, refresh=True,  # type: ignore[arg-type]
                                 filter_path="items.*.result")
        return sum(op.get("result") == "deleted" for item in resp.get("items", ()) for op in item.values())

    def _delete(self, entity_type: str, ids: list[uuid.UUID]) -> int:
        index = self.index_name(entity_type)
        self._check_index(entity_type)
        body = "".join([f'{{"delete":{{"_id":"{self._doc_id(i)}"}}}}\n' for i in ids])
        resp = self._client.bulk(operations=body, index=index, refresh=self._refresh,  # type: ignore[arg-type]
                                 filter_path="items.*.result,items.*.error")
        deleted, errors = 0, []
        for item in resp.get("items", ()):
            for op in item.values():
                deleted += op.get("result") == "deleted"
                if "error" in op and op["error"].get("type") != "index_not_found_exception":
                    errors.append(op["error"])
        if errors:
            self._raise_item_error(f"bulk delete from {index}", errors, len(ids))
        return deleted

    def erasure_limits(self, entity_type: str) -> list[str]:
        """A deleted document is only marked deleted in its segment until a merge drops it."""
        index = self.index_name(entity_type)
        return [(f"Elasticsearch marks a deleted document deleted; its _source stays in index {index}'s segments "
                f"until a merge expunges it ('POST /{index}/_forcemerge?only_expunge_deletes=true' does it now), and "
                "in the translog until the next flush; snapshots keep it"), *super().erasure_limits(entity_type)]

    def _scan(self, entity_type: str, partition: Partition) -> Iterator[ScanItem]:
        """Every document whose ``id_field`` falls in ``partition`` (a range filter), and every
        document without that field, in one scroll in ``_doc`` order, fingerprinted from its data.

        The audit compares by ID, not in order, so nothing is sorted: ``_doc`` order is the cheapest
        way Elasticsearch has to read a result set, and ``helpers.scan`` clears the scroll when the
        scan ends or is abandoned. Documents without the id field (seed-era ones, or every document
        with ``id_field=""``) come in every partition's query and are kept in the partition their
        ``_id`` decodes into; one that is not ours at all is reported in the first partition only.

        Search is near-real-time: writes are invisible until a refresh (about 1 s later). An
        audit that just wrote must see its own writes, so the scan refreshes the index once first.
        """
        index = self.index_name(entity_type)
        self._check_index(entity_type)
        self._client.indices.refresh(index=index, ignore_unavailable=True)
        layout = self.layout
        hits = helpers.scan(self._client, index=index, size=self._page, ignore_unavailable=True,
                            query={"query": self._narrowed(layout.partition_query(partition))})
        for hit in hits:
            src = hit.get("_source") or {}
            item = layout.classify_hit(hit["_id"], src)
            if not layout.has_id(src):
                if isinstance(item, ForeignEntry):
                    if partition.index == 0:
                        yield item, None
                    continue
                ident = item if isinstance(item, uuid.UUID) else item.id
                if ident is not None and partition.contains(ident):
                    yield item, layout.fingerprint(Hit(src))
                continue
            # With an id field, exactly one partition's range query finds the document: the one whose
            # string range holds that text, which for a non-canonical id field may not be the one its
            # UUID falls in. It is reported there, once, with the UUID as ``id`` only when they agree.
            if isinstance(item, MalformedID) and item.id is not None and not partition.contains(item.id):
                item = MalformedID(raw=item.raw, reason=f"{item.reason} ({item.id})")
            yield item, (None if isinstance(item, ForeignEntry) else layout.fingerprint(Hit(src)))

    def shared(self, entity_type: str) -> bool:
        return self.containers.is_own  # the user's own index

    def _drop(self, entity_type: str) -> None:
        """Our documents go; the index goes too when uuid-forge made it and nothing else is in it."""
        if self.shared(entity_type):  # the user's index: our proven documents only (contract)
            super()._drop(entity_type)
            self._client.indices.refresh(index=self.index_name(entity_type), ignore_unavailable=True)  # seen at once
            return
        index = self.index_name(entity_type)
        self._check_index(entity_type)  # never another prefix's index
        ours = self._made_by_us(entity_type) and self.filter is None  # a filtered index is shared
        ids, raws, foreign = [], [], False
        hits = helpers.scan(self._client, index=index, size=self._page, ignore_unavailable=True,
                            query={"query": self._narrowed({"match_all": {}}), "_source": self.layout.id_source()})
        for hit in hits:
            item = self.layout.classify_hit(hit["_id"], hit.get("_source") or {})
            if isinstance(item, ForeignEntry):
                foreign = True  # not ours: dropping a type leaves other applications' documents alone
            elif isinstance(item, MalformedID):
                raws.append(item.raw)
            else:
                ids.append(item)
        if ours and not foreign:
            self._client.indices.delete(index=index, ignore_unavailable=True)  # one request for the rest
            self._ready.discard(index)
            self.containers.release(entity_type)
            return
        for start in range(0, len(ids), self.batch_size):
            self._delete(entity_type, ids[start:start + self.batch_size])
        if raws:
            self._delete_raw(entity_type, raws)
        self._client.indices.refresh(index=index, ignore_unavailable=True)

    def _entity_types(self) -> Iterable[str]:
        """Your own index's type when it holds a document of ours; otherwise the indices under the
        prefix made for this prefix (their owners record), so another prefix's index is never taken for ours."""
        if self.containers.is_own:
            entity_type = self.containers.own_type or ""
            if any(isinstance(i, uuid.UUID) for i, _ in self._scan(entity_type, Partition())):
                yield entity_type
            return
        for entity_type in self.containers.ours(self._owners.all()):
            try:
                self.check_entity_type(entity_type)
            except ValidationError:
                continue  # not one of ours
            yield entity_type

    def _ping(self) -> None:
        self._client.info()  # unlike ping(), raises the real error

    def _close(self) -> None:
        self._client.close()



def _decoder(layout: Layout, entity_type: str, ident: uuid.UUID, stored: Any) -> Callable[[], Record]:
    """``layout.decode`` of one stored entry, deferred (``Adapter._read_record`` calls it)."""
    return lambda: layout.decode(entity_type, ident, stored)


def _container_options(own: str | None, own_type: str | None, prefix: str) -> tuple[str | None, str | None, str]:
    """``index=``, ``entity_type=`` and ``prefix=`` checked before any request: valid index names,
    and your own index always with its one entity type."""
    try:
        if prefix:
            check_target(prefix + "x", "es-index", "prefix + 'x'")
        if own is not None:
            check_target(own, "es-index", "index")
    except TargetError as err:
        raise ConfigError(str(err)) from None
    if (own is None) != (own_type is None):
        raise ConfigError("elasticsearch: index= and entity_type= go together: your own index holds one "
                          "entity type, e.g. ?index=orders&entity_type=order")
    return own, own_type, prefix


def _refresh_value(value: bool | str | None) -> str | None:
    """The ``refresh`` parameter for ``_bulk``, or None to leave it out."""
    if value in (None, False, "false", "0", ""):
        return None
    if value in (True, "true", "1"):
        return "true"
    if value == "wait_for":
        return "wait_for"
    raise ConfigError(f"refresh must be false, true or 'wait_for', got {value!r}")




# -- the filter option ---------------------------------------------------------------------------
def _query(value: Any) -> dict[str, Any]:
    """The ``filter`` option: an Elasticsearch query, given as JSON text or a mapping."""
    if isinstance(value, str):
        value = json.loads(value)  # ValueError on bad JSON: the option's error names it
    if not isinstance(value, dict) or len(value) != 1:
        raise ValueError(value)
    return dict(value)


class _Unsupported(Exception):
    """A query the write-time check does not evaluate (its text is the query's name)."""


def _values(doc: Any, field: str) -> list[Any]:
    """The values at a dotted field path, arrays flattened (as Elasticsearch indexes them)."""
    found = [doc]
    for part in field.split("."):
        found = [v[part] for v in found if isinstance(v, dict) and part in v]
        found = [x for v in found for x in (v if isinstance(v, list) else [v])]
    return [v for v in found if v is not None]


def _same(a: Any, b: Any) -> bool:
    numbers = (int, float, decimal.Decimal)
    if isinstance(a, numbers) and isinstance(b, numbers) and not isinstance(a, bool) and not isinstance(b, bool):
        return decimal.Decimal(str(a)) == decimal.Decimal(str(b))
    return type(a) is type(b) and a == b


def _selects(query: dict[str, Any], doc: dict[str, Any]) -> bool:
    """Whether ``query`` selects ``doc`` (as written): the subset a write can be checked against
    before it is sent (_Unsupported otherwise)."""
    if not isinstance(query, dict) or len(query) != 1:
        raise _Unsupported(json.dumps(query)[:40])
    kind, body = next(iter(query.items()))
    if kind == "match_all":
        return True
    if kind == "bool" and isinstance(body, dict):
        def each(name: str) -> list[dict[str, Any]]:
            clauses = body.get(name, [])
            return clauses if isinstance(clauses, list) else [clauses]
        if set(body) - {"must", "filter", "should", "must_not", "minimum_should_match"}:
            raise _Unsupported("bool")
        if not all(_selects(q, doc) for q in (*each("must"), *each("filter"))):
            return False
        if any(_selects(q, doc) for q in each("must_not")):
            return False
        should = each("should")
        default = 0 if each("must") or each("filter") else 1
        wanted = int(body.get("minimum_should_match", default) or 0) if should else 0
        return sum(_selects(q, doc) for q in should) >= wanted
    if kind == "exists" and isinstance(body, dict) and isinstance(body.get("field"), str):
        return bool(_values(doc, body["field"]))
    if kind in ("term", "terms", "range") and isinstance(body, dict):
        fields = [k for k in body if k != "boost"]
        if len(fields) != 1:
            raise _Unsupported(kind)
        field, spec = fields[0], body[fields[0]]
        found = _values(doc, field.removesuffix(".keyword"))
        if kind == "term":
            term = spec.get("value") if isinstance(spec, dict) else spec
            return any(_same(v, term) for v in found)
        if kind == "terms":
            if not isinstance(spec, list):
                raise _Unsupported(kind)
            return any(_same(v, w) for v in found for w in spec)
        if not isinstance(spec, dict) or set(spec) - {"gt", "gte", "lt", "lte"}:
            raise _Unsupported(kind)
        return any(all(_in_range(v, bound, op) for op, bound in spec.items()) for v in found)
    raise _Unsupported(kind)


def _in_range(value: Any, bound: Any, op: str) -> bool:
    numbers = (int, float, decimal.Decimal)
    if isinstance(value, numbers) and isinstance(bound, numbers) and not isinstance(value, bool):
        a, b = decimal.Decimal(str(value)), decimal.Decimal(str(bound))
    elif isinstance(value, str) and isinstance(bound, str):
        a, b = value, bound  # type: ignore[assignment]
    else:
        return False
    return {"gt": a > b, "gte": a >= b, "lt": a < b, "lte": a <= b}[op]
