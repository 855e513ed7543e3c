"""``mongodb://host:port/db``: the entity's fields as a MongoDB document, the ID as ``_id``.

**Layouts** (``layout=``, one class each in :data:`LAYOUTS`):

* ``data`` (default; ``flat``, its former name, still works): ``{_id: <id>, **data}``, the
  entity's fields at the top level beside ``_id``, as MongoDB users keep their documents
  (queryable, indexable, readable by any tool). Nothing else is stored: no fingerprint, no key (a
  record read back has ``key=None``; an audit checks IDs against the entity type's declared key
  fields in the data). A data field named ``_id`` is refused before anything is written.
* ``envelope``: uuid-forge's older shape ``{_id, fp, data, key}`` (:mod:`uuid_forge.envelope`)
  with ``data`` and ``key`` as embedded documents (or their canonical JSON text where BSON cannot
  hold them exactly). Kept for stores written by earlier versions; the stored ``fp`` is never
  trusted.

**Where** (:mod:`uuid_forge.containers`): one collection per entity type, ``prefix + entity_type``;
or your own collection: ``collection="documents"`` with ``entity_type="document"``, the one type it
holds (like the SQL adapter's ``table=``/``entity_type=``). Other applications' documents in it (an
``_id`` that is not an ID of this scheme in any form: ``"legacy-42"``, an ObjectId) are reported
as foreign and never touched; ``drop`` on your own collection deletes our documents only.

**IDs** (``id_format=``, one class each in :data:`ID_FORMATS`): ``_id`` is BSON Binary subtype 4
by default (the client runs with ``uuidRepresentation="standard"``: 16 bytes, the form other
drivers read as a UUID); ``id_format="string"`` keeps the 36-char lowercase string, as a store
that already has strings (the seed's ``documents`` collection) holds them.

**One data model**: the client runs with ``tz_aware=True``, and values read back are mapped to
uuid-forge's canonical model: BSON dates become aware UTC datetimes, Decimal128 a ``Decimal``,
Binary subtype 4 a ``UUID``, ObjectId its hex text. What we write is the canonical form of the
data: datetimes and UUIDs as their canonical text (so they round-trip exactly), integers as
int64, and fractions as doubles when a double holds the canonical digits exactly, else as
**Decimal128** (34 significant digits, exact: ``Decimal("1234567890.1234567890")`` keeps every
digit and stays a number MongoDB can compare and sort). Integers beyond int64 go to Decimal128
too. A number Decimal128 cannot hold exactly, or a field name MongoDB cannot store (a leading
``$`` or a NUL), is refused before any write, naming the record and the field.

**BSON dates hold milliseconds.** ``datetimes="date"`` writes datetime values (and text in the
canonical datetime form) as BSON dates, the shape of stores whose other writers use dates: the
microseconds beyond the millisecond are cut by BSON. Compare such a store at its precision with
``datetime_precision = "ms"`` in its ``forge.toml`` entry (:mod:`uuid_forge.view`); the default
``datetimes="text"`` round-trips exactly. Dates already in the store (written by other code) are
read either way.

Writes are one unordered ``bulk_write`` of upserts per batch, each one atomic and owning only its
fields (``FieldView.owns``, :mod:`uuid_forge.view`; issue 18): a store that owns every field gets a
whole-document ``ReplaceOne`` (the fast path); a ``projection`` of plain names ``$set`` of its
fields and ``$unset`` of those the record lacks; any other view (``ignore_fields``, a projection
naming ``a.b``) an update pipeline that keeps every field the store does not own as it is in the
server; the envelope layout ``$set`` of its members. Fields another application put in the document
stay. ``filter`` (a query document in JSON) narrows your own collection to this store's documents:
scans, reads, deletes and ``drop`` go through it, and a write outside it is refused before
anything is written. Reads and deletes send ``$in`` lists of
``in_batch_size`` IDs (default 100): real servers take thousands, but the SecantusDB stand-in
used in tests slows down quadratically with long ``$in`` lists. Scans are ``_id`` range queries
that fetch the data (only the projected fields when the store holds a projection) and
fingerprint what they read; a second query finds every ``_id`` outside the well-encoded range
(strings in binary mode, binaries in string mode, ...) and reports it as
:class:`~uuid_forge.record.MalformedID` (ours, wrongly encoded) or
:class:`~uuid_forge.record.ForeignEntry` (not ours).

Per-type collection names are ``prefix + entity_type`` with no separator a type could not contain
(prefix ``acme_`` with type ``user`` and no prefix with type ``acme_user`` are the same
collection), so the first write records which prefix and type a collection is for in the
collection ``uuid_forge.owners`` (``{_id: collection, collection_prefix, entity_type}``: the field
keeps the option's former name, so records written by earlier versions are read as they are). A
write, scan or delete through another prefix or type is refused with an error naming both, and
``entity_types()`` does not list it. Your own collection (``collection=``) is not recorded there.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import decimal
import json
import re
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from bson import Binary, Decimal128, ObjectId, Regex, json_util
from pymongo import DeleteMany, DeleteOne, MongoClient, ReplaceOne, UpdateOne
from pymongo.errors import (
    BulkWriteError,
    ConfigurationError,
    ConnectionFailure,
    DocumentTooLarge,
    DuplicateKeyError,
    ExecutionTimeout,
    NetworkTimeout,
    OperationFailure,
    ServerSelectionTimeoutError,
    WaitQueueTimeoutError,
    WriteError,
    WTimeoutError,
)

from uuid_forge.canonical import format_decimal, format_float
from uuid_forge.classify import classify, classify_uuid
from uuid_forge.containers import Containers
from uuid_forge.contract import BATCH_SIZE, Adapter, Option, ScanItem, chunked
from uuid_forge.envelope import DATA, FP, KEY, envelope_members, envelope_record
from uuid_forge.errors import StoreConfigError, StoreError, StoreRejectedError, ValidationError
from uuid_forge.layout import Layout, layout_option
from uuid_forge.record import ForeignEntry, MalformedID, Partition, RawEntry, Record, load_json

__all__ = ["DATETIMES", "ID_FORMATS", "LAYOUTS", "BinaryIds", "DataLayout", "EnvelopeLayout", "IdFormat",
           "MongoAdapter", "MongoLayout", "OwnersCollection", "StringIds"]

DEFAULT_DATABASE = "uuid_forge"
#: a server that accepts connections but never answers fails in seconds, not never; the time to
#: find a server and to connect comes from the option connect_timeout (see MongoAdapter.__init__)
_CLIENT_DEFAULTS = {"socketTimeoutMS": 30000}
#: pymongo's own names for the two timeouts connect_timeout sets (a URL or keyword giving one wins)
_SELECTION_KEYS = ("serverSelectionTimeoutMS", "connectTimeoutMS")
#: which prefix and entity type each collection was made for (see the module doc)
OWNERS = "uuid_forge.owners"
#: beside your own collection (collection=): uuid-forge's own records (the ID-configuration marker)
META = "uuid_forge.meta"
#: MongoDB limit on "database.collection" (bytes)
_MAX_NAMESPACE = 255

_RAW_BINARY = re.compile(r"Binary\(subtype=(?P<subtype>\d+), hex=(?P<hex>[0-9a-f]*)\)")
_OBJECT_ID = re.compile(r"[0-9a-f]{24}")
_INTEGER = re.compile(r"-?(0|[1-9][0-9]{0,18})")  # str() of an int64: no sign on 0, no leading zeros
#: which document a raw name means when several ``_id``s show as it (read_raw): the string first
_RAW_RANK: dict[type, int] = {str: 0, ObjectId: 1, int: 2}
_CANONICAL_STRING = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_INT64 = range(-(1 << 63), 1 << 63)
#: the canonical datetime text (uuid_forge.canonical): what datetimes="date" writes as a BSON date
_CANONICAL_DATETIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{6})?Z")


def _addresses(servers: Iterable[Any]) -> str:
    """``127.0.0.1:27017`` for pymongo server descriptions (several joined by commas)."""
    return ", ".join(f"{host}:{port}" for host, port in (s.address for s in servers)) or "no server"


def _server_error(server: Any) -> str:
    """``127.0.0.1:27017: [Errno 111] Connection refused``: a server's last error, without the
    driver's list of configured timeouts."""
    text = str(server.error).split(" (configured timeouts")[0]
    where = _addresses([server])
    return text if text.startswith(where) else f"{where}: {text}"


# -- IDs: how _id holds one ------------------------------------------------------------------------
class IdFormat:
    """How ``_id`` holds an ID: the value written, the range a scan reads, what a read ``_id`` is."""

    name: ClassVar[str]
    #: the encoding's name for uuid_forge.encodings (``Adapter.id_encoding``)
    encoding: ClassVar[str]
    #: the lowest and highest well-encoded ``_id``: a scan's second query reads everything outside
    lowest: ClassVar[Any]
    highest: ClassVar[Any]

    def key(self, ident: uuid.UUID) -> Any:
        """The ``_id`` of ``ident``."""
        raise NotImplementedError

    def ident(self, raw: Any) -> uuid.UUID:
        """The UUID of an ``_id`` read back by ID (so already in this encoding)."""
        raise NotImplementedError

    def classify(self, raw: Any, versions: Any) -> uuid.UUID | MalformedID | ForeignEntry:
        """The UUID an ``_id`` encodes if it is in this encoding; a MalformedID for an ID of ours in
        another encoding; a ForeignEntry for anything else (``"legacy-42"``, an ObjectId)."""
        raise NotImplementedError

    def bounds(self, partition: Partition) -> dict[str, Any]:
        """The ``_id`` range query of ``partition``."""
        hi = partition.hi_uuid
        bounds = {"$gte": self.key(partition.lo_uuid)}
        bounds.update({"$lt": self.key(hi)} if hi else {"$lte": self.highest})
        return bounds


class BinaryIds(IdFormat):
    """BSON Binary subtype 4: 16 bytes, what drivers read as a UUID (decoded to ``UUID`` on read)."""

    name = "binary"
    encoding = "binary4"
    lowest = Binary(bytes(16), 4)
    highest = Binary(b"\xff" * 16, 4)

    def key(self, ident: uuid.UUID) -> Binary:
        return Binary(ident.bytes, 4)

    def ident(self, raw: Any) -> uuid.UUID:
        return raw  # uuidRepresentation="standard" decoded it

    def classify(self, raw: Any, versions: Any) -> uuid.UUID | MalformedID | ForeignEntry:
        if type(raw) is uuid.UUID:  # Binary subtype 4, decoded by uuidRepresentation="standard"
            return raw
        if isinstance(raw, str):
            return classify(raw, None, versions=versions, where="string _id (BSON Binary subtype 4 expected)")
        if isinstance(raw, bytes):  # Binary of another subtype (bytes for subtype 0)
            subtype = getattr(raw, "subtype", 0)
            shown = f"Binary(subtype={subtype}, hex={raw.hex()})"
            if len(raw) != 16:
                return ForeignEntry(shown, f"Binary subtype {subtype} _id of {len(raw)} bytes: not ours, left alone")
            return classify_uuid(uuid.UUID(bytes=bytes(raw)), raw=shown, versions=versions, where="_id",
                                 wanted=f"Binary subtype {subtype} where subtype 4 is expected")
        return ForeignEntry(str(raw), f"{type(raw).__name__} _id: not ours, left alone")


class StringIds(IdFormat):
    """The 36-char lowercase string, as stores that already hold strings keep it (sorts like the number)."""

    name = "string"
    encoding = "string"
    lowest = str(uuid.UUID(int=0))
    highest = str(uuid.UUID(int=(1 << 128) - 1))

    def key(self, ident: uuid.UUID) -> str:
        return str(ident)

    def ident(self, raw: Any) -> uuid.UUID:
        return uuid.UUID(raw)

    def classify(self, raw: Any, versions: Any) -> uuid.UUID | MalformedID | ForeignEntry:
        if isinstance(raw, str):
            if _CANONICAL_STRING.fullmatch(raw):
                return uuid.UUID(raw)
            return classify(raw, "string", versions=versions, where="string _id")
        if type(raw) is uuid.UUID:
            return classify_uuid(raw, raw=f"Binary(subtype=4, hex={raw.hex})", versions=versions, where="_id",
                                 wanted="BSON Binary where a 36-char string is expected")
        return ForeignEntry(str(raw), f"{type(raw).__name__} _id: not ours, left alone")


#: ``id_format=`` values
ID_FORMATS: dict[str, IdFormat] = {f.name: f for f in (BinaryIds(), StringIds())}


# -- datetimes: how the data layout writes them -----------------------------------------------------
def _as_text(text: str) -> Any:
    return text


def _as_date(text: str) -> Any:
    """Canonical datetime text as a BSON date (milliseconds: the rest is cut, see the module doc)."""
    if _CANONICAL_DATETIME.fullmatch(text):
        return _dt.datetime.fromisoformat(text[:-1]).replace(tzinfo=_dt.UTC)
    return text


#: ``datetimes=`` values: what a text value of the data becomes in BSON
DATETIMES: dict[str, Callable[[str], Any]] = {"text": _as_text, "date": _as_date}


# -- layouts -----------------------------------------------------------------------------------------
class MongoLayout(Layout):
    """A document shape. It fingerprints through its adapter (whose view decides what is compared),
    and the operations a write sends, and the fields a scan fetches, are the shape's too."""

    def __init__(self, adapter: MongoAdapter, datetimes: Callable[[str], Any] = _as_text) -> None:
        self.store = adapter
        self.datetimes = datetimes  # what a text value becomes (datetimes=): only the data layout uses it


    def validate(self, entity_type: str, records: list[Record]) -> None:
        """Refuse, before anything is written, records this shape cannot store (none by default)."""

    def writes(self, coll: Any, keys: list[Any], records: list[Record]) -> list[Any]:
        """The bulk operations that store ``records`` under ``keys``: upserts that ``$set`` the
        members this shape owns, so fields another application put beside them stay."""
        return [UpdateOne({"_id": _id}, {"$set": self.encode(r)}, upsert=True) for r, _id in zip(records, keys)]

    def scan_fields(self) -> dict[str, int] | None:
        """The find projection of a scan (None: every field)."""
        return None


class DataLayout(MongoLayout):
    """``{_id, **data}``: the entity's fields at the top level, what MongoDB users query."""

    name = "data"
    doc = "the entity's fields at the top level beside _id ({_id, name, email, ...}, what MongoDB users query)"

    def encode(self, record: Record) -> dict[str, Any]:
        """The record's data as stored (see the module doc): its canonical form with numbers as
        int64, double or Decimal128, datetimes as text or BSON dates (``datetimes=``)."""
        where = f"{record.entity_type} {record.id}"
        return _bson_value(load_json(record.data_json), where, "", self.datetimes)

    def decode(self, entity_type: str, ident: uuid.UUID, stored: Any) -> Record:
        data = _data(stored)
        return Record(entity_type, ident, data, None, fingerprint=self.store.fingerprint_data(data))

    def fingerprint(self, stored: Any) -> str | None:
        return self.store.fingerprint_data(_data(stored))

    def owned_fields(self, record: Record) -> frozenset[str]:
        """``_id`` and the record's fields the store's view owns (FieldView.owns)."""
        owns = self.store.view.owns
        return frozenset(("_id", *(k for k in record.data if owns(k))))

    def validate(self, entity_type: str, records: list[Record]) -> None:
        """A data field named ``_id`` (it holds the ID), a field name MongoDB refuses, a number BSON
        cannot hold exactly."""
        for record in records:
            if "_id" in record.data:
                raise ValidationError(f"{entity_type} {record.id}: data field '_id' collides with MongoDB's document "
                                      "ID (the data layout keeps the entity's ID there): rename the field, or use "
                                      "layout=envelope")
            self.encode(record)  # raises ValidationError naming the field

    def writes(self, coll: Any, keys: list[Any], records: list[Record]) -> list[Any]:
        """The owned fields only (``FieldView.owns``), each write one atomic upsert, no read first:
        a whole-document replace when the store owns every field (the fast path); ``$set`` and
        ``$unset`` of the projection's fields when it names plain fields; otherwise an update
        pipeline that keeps the fields the store does not own, as they are in the server, and
        puts the owned ones from the record (an owned field the record lacks goes)."""
        view = self.store.view
        if view.projection is None and not view.ignore_fields:
            return [ReplaceOne({"_id": _id}, {"_id": _id, **self.encode(r)}, upsert=True)
                    for r, _id in zip(records, keys)]
        names = _plain(view.projection)
        if names is not None:
            return [_update_within(_id, self.encode(r), names) for r, _id in zip(records, keys)]
        if view.projection is not None:  # keep every field outside the projection
            keep: dict[str, Any] = {"$not": [{"$in": ["$$this.k", list(view.projection)]}]}
        else:  # keep the fields the store declares its own (ignore_fields)
            keep = {"$in": ["$$this.k", list(view.ignore_fields)]}
        kept = {"$arrayToObject": {"$filter": {"input": {"$objectToArray": "$$ROOT"}, "cond": keep}}}
        return [UpdateOne({"_id": _id}, [{"$replaceWith": {"$mergeObjects": [
                    kept, {"$literal": {**{k: v for k, v in self.encode(r).items() if view.owns(k)}, "_id": _id}}]}}],
                          upsert=True)
                for r, _id in zip(records, keys)]

    def scan_fields(self) -> dict[str, int] | None:
        """Every field, or the store's projection (a projection of odd names is applied after the read)."""
        names = _plain(self.store.view.projection)
        if names is None:
            return None
        return {name: 1 for name in names} or {"_id": 1}


class EnvelopeLayout(MongoLayout):
    """``{_id, fp, data, key}``: uuid-forge's older shape, for collections written by earlier versions."""

    name = "envelope"
    doc = "uuid-forge's older {_id, fp, data, key}, for collections written by earlier versions."

    def encode(self, record: Record) -> dict[str, Any]:
        """``data`` and ``key`` as documents when BSON holds them exactly, else their canonical text."""
        members = envelope_members(record)
        return {FP: record.fingerprint, DATA: _to_bson(members[DATA]), KEY: _to_bson(members[KEY])}

    def decode(self, entity_type: str, ident: uuid.UUID, stored: Any) -> Record:
        """The record; its fingerprint from the data read, never the stored ``fp``."""
        d, k = stored.get(DATA), stored.get(KEY)
        if isinstance(d, str):
            data, fingerprint = load_json(d), self.store.fingerprint_text(d)
        else:
            data = _from_bson(d)
            fingerprint = self.store.fingerprint_data(data)
        key = json.loads(k) if isinstance(k, str) else k
        return envelope_record(entity_type, ident, {DATA: data, KEY: key}, fingerprint)

    def fingerprint(self, stored: Any) -> str | None:
        d = stored.get(DATA)
        return self.store.fingerprint_text(d) if isinstance(d, str) else self.store.fingerprint_data(_from_bson(d))

    def owned_fields(self, record: Record) -> frozenset[str]:
        return frozenset(("_id", FP, DATA, KEY))

    def scan_fields(self) -> dict[str, int] | None:
        return {DATA: 1}


#: ``layout=`` values
LAYOUTS: dict[str, type[MongoLayout]] = {"data": DataLayout, "envelope": EnvelopeLayout}


# -- the owners record ---------------------------------------------------------------------------------
class OwnersCollection:
    """:class:`~uuid_forge.containers.OwnersBook` over the collection ``uuid_forge.owners``:
    ``{_id: collection, collection_prefix, entity_type}`` (the field names earlier versions wrote)."""

    def __init__(self, collection: Any) -> None:
        self.collection = collection

    def get(self, name: str) -> tuple[str, str] | None:
        doc = self.collection.find_one({"_id": name})
        return None if doc is None else (doc.get("collection_prefix"), doc.get("entity_type"))

    def claim(self, name: str, prefix: str, entity_type: str) -> None:
        with contextlib.suppress(DuplicateKeyError):  # another writer claimed it first: get() says whose
            self.collection.insert_one({"_id": name, "collection_prefix": prefix, "entity_type": entity_type})

    def remove(self, name: str) -> None:
        self.collection.delete_one({"_id": name})

    def all(self) -> dict[str, tuple[str, str]]:
        return {d["_id"]: (d.get("collection_prefix"), d.get("entity_type")) for d in self.collection.find()}


class MongoAdapter(Adapter):
    """MongoDB through pymongo 4: documents of the entity's fields by default, ``_id`` as Binary subtype 4 (or string)."""

    name: ClassVar[str] = "mongodb"
    connection_errors: ClassVar[tuple[type[BaseException], ...]] = (ConnectionFailure,)
    timeout_errors: ClassVar[tuple[type[BaseException], ...]] = (
        NetworkTimeout, ExecutionTimeout, WTimeoutError, WaitQueueTimeoutError)

    def _classify(self, err: BaseException) -> type[StoreError] | None:
        """Authentication (18) and authorisation (13) are the store's; per-document write errors
        (duplicate key, validation, too large, invalid BSON) are the record's."""
        from bson.errors import InvalidDocument

        if isinstance(err, (DocumentTooLarge, InvalidDocument, DuplicateKeyError, WriteError)):
            return StoreRejectedError
        if isinstance(err, BulkWriteError):
            details = err.details or {}
            if details.get("writeErrors") and not details.get("writeConcernErrors"):
                return StoreRejectedError
            return None
        if isinstance(err, ConfigurationError):
            return StoreConfigError
        if isinstance(err, OperationFailure) and not isinstance(err, (ExecutionTimeout, WTimeoutError)):
            if err.code in (13, 18, 8000, 11, 31, 26) or "not authorized" in str(err).lower():
                return StoreConfigError
            if err.code in (2, 10334, 17419, 17420, 121, 11000, 15, 16493):
                return StoreRejectedError
        return super()._classify(err)

    options: ClassVar[tuple[Option, ...]] = (
        layout_option(LAYOUTS, "data", "the document's shape.", deprecated_values=(("flat", "data"),)),
        Option("id_format", str, "binary", "how _id holds the ID: binary is BSON Binary subtype 4 (what drivers "
               "read as a UUID), string the 36-char lowercase text, for collections that already use strings "
               "(e.g. ?id_format=string)", choices=tuple(ID_FORMATS)),
        Option("collection", str, None, "your own collection, holding one entity type (needs entity_type), e.g. "
               "?collection=documents&entity_type=document; none: one collection per type, named "
               "prefix + type"),
        Option("entity_type", str, None, "the one entity type your own collection= holds, e.g. document; other "
               "types are refused by this store"),
        Option("datetimes", str, "text", "how datetimes are written: text is the canonical UTC text "
               "(2024-05-01T12:00:00.123456Z, exact); date is a BSON date, as other writers of the collection "
               "keep them, to the millisecond (set datetime_precision = \"ms\" on the store to compare at that "
               "precision). Dates already stored are read either way", choices=tuple(DATETIMES)),
        Option("prefix", str, "", "prefix of the per-type collections (no '$' or NUL), e.g. acme_ puts "
               "type user in acme_user", deprecated=("collection_prefix",)),
        Option("database", str, None, "the database (none: the URL's path, else uuid_forge); the URL names it in "
               "its path", url=False),
        Option("in_batch_size", int, 100, "IDs per $in list of a read or delete", minimum=1),
        Option("scan_batch_size", int, 10_000, "documents per batch of a scan's cursor (the server also caps a "
               "batch at 16 MB): fewer round trips than batch_size; the SecantusDB stand-in spent a quarter less "
               "time on a 100,000-document scan at 10,000 than at 1,000", minimum=1),
        Option("filter", str, None, "a MongoDB query document in JSON (extended JSON: $date, $oid) that narrows "
               "your own collection to the documents this store reads, e.g. {\"kind\": \"user\"}: scans, reads, "
               "counts, audits and deletes see only the documents it matches, and a write whose document does not "
               "match it is refused (checked before writing for equality, $eq, $ne, $in, $nin, $exists, $gt, $gte, "
               "$lt, $lte, $not, $and, $or, $nor; a filter using other operators makes the store read-only)",
               convert=lambda v: _query_document(v), expects="a JSON object (a MongoDB query document)"),
        Option("connect_timeout", float, 2.0, "seconds to find a server and connect to it (pymongo's "
               "serverSelectionTimeoutMS and connectTimeoutMS, which win when given themselves): a store that is "
               "down fails after this, and a server that refused within it is not waited for again by the "
               "retries, e.g. ?connect_timeout=10 for a distant replica set", minimum=0, exclusive=True),
        Option("read_apart", bool, True, "with read_once, the audit reads the collection in a process of its own, "
               "opened again from this URL, which decodes and fingerprints each document and hands the audit its IDs "
               "and fingerprints through private temporary files, so that decoding does not share the audit's "
               "interpreter lock with the other stores' comparisons; false reads it in a thread of the audit's "
               "process (as does a store opened around a client object rather than from its URL)"),
        Option("read_once", bool, False, "audit by reading the collection once per audit, each document bucketed "
               "by its ID range as it streams (spilled to private temporary files past a partition's worth), "
               "instead of one _id range query per partition: for a server where a range query walks the whole "
               "collection (no _id index over the range, such as the SecantusDB stand-in), where partitions would "
               "each pay a full scan; a real MongoDB answers ranges from the _id index, so leave it off there"),
        Option("exact_delete", bool, True, "contract's delete of an old document (one that is no UUID of ours) "
               "also requires, in the same DeleteOne, that the document holds no field beyond those read "
               "($jsonSchema with additionalProperties false), so a field another application adds in the "
               "instant between the read and the delete keeps the document; false only for a server that cannot "
               "answer that filter from the _id index: the SecantusDB stand-in scans the whole collection for it "
               "(130 ms per document at 20,000), and without it such an added field goes undetected "
               "(docs/migration.md)"),
        BATCH_SIZE,
    )
    driver_query: ClassVar[str] = "pymongo as URI options (e.g. `authSource`, `replicaSet`, `tls`, `appname`)"
    driver_keywords: ClassVar[str] = ("`pymongo.MongoClient` (e.g. `serverSelectionTimeoutMS`, `event_listeners`); "
                                      "`uuidRepresentation` must stay `standard` and `tz_aware` true")

    def __init__(self, url: str, **options: Any) -> None:
        """Keywords that are not options go to :class:`pymongo.MongoClient` (``serverSelectionTimeoutMS``, ...)."""
        opts = self.parse_options(url, options)
        client_options = opts.driver_keywords
        database = opts["database"]
        super().__init__(url, batch_size=opts["batch_size"])
        parts = urlsplit(url)
        # our options leave the query; the rest goes to pymongo verbatim (its own quoting rules)
        driver_query = "&".join(p for p in parts.query.split("&") if p.partition("=")[0] not in opts.url_names)
        self.ids: IdFormat = ID_FORMATS[opts["id_format"]]
        self.layout: MongoLayout = LAYOUTS[opts["layout"]](self, DATETIMES[opts["datetimes"]])
        prefix = opts["prefix"]
        if "$" in prefix or "\x00" in prefix:
            raise ValidationError(f"prefix {prefix!r} (collection_prefix) may not contain '$' or NUL")
        own, own_type = _user_collection(opts["collection"], opts["entity_type"])
        self.in_batch_size: int = opts["in_batch_size"]
        self.scan_batch_size: int = opts["scan_batch_size"]
        #: contract's proven delete also pins the document's set of fields (option ``exact_delete``)
        self.exact_delete = bool(opts["exact_delete"])
        #: read once per audit and bucketed (uuid_forge.onepass), not one _id range query per partition
        self.whole_scan = bool(opts["read_once"])
        #: read once in a process of its own (uuid_forge.scanprocess), not in a thread
        self.read_apart = bool(opts["read_apart"])
        #: the query narrowing the collection to this store's documents (option ``filter``), or None
        self.filter: dict[str, Any] | None = opts["filter"]
        if client_options.get("uuidRepresentation", "standard") != "standard":
            raise ValidationError("uuidRepresentation must be 'standard': IDs are stored as BSON Binary subtype 4")
        if not client_options.get("tz_aware", True):
            raise ValidationError("tz_aware must stay true: BSON dates are read as aware UTC datetimes")
        given = {p.partition("=")[0].lower() for p in driver_query.split("&")} | {k.lower() for k in client_options}
        timeouts = {k: int(opts["connect_timeout"] * 1000) for k in _SELECTION_KEYS if k.lower() not in given}
        options = {**_CLIENT_DEFAULTS, **timeouts, **client_options, "uuidRepresentation": "standard",
                   "tz_aware": True}
        driver_url = urlunsplit(parts._replace(query=driver_query))
        with Adapter._errors(self, "open"):  # a bad URL or option leaves as a StoreError, password masked
            self._client: MongoClient[dict[str, Any]] = MongoClient(driver_url, **options)
            self._db = self._client[database] if database else self._client.get_default_database(DEFAULT_DATABASE)
        if own is not None and len(f"{self._db.name}.{own}".encode()) > _MAX_NAMESPACE:
            raise ValidationError(f"collection {own!r}: '{self._db.name}.{own}' is longer than {_MAX_NAMESPACE} bytes")
        self.containers = Containers("collection", own=own, own_type=own_type, prefix=prefix,
                                     owners=OwnersCollection(self._db[OWNERS]), side=META)
        self._collections: dict[str, Any] = {}
        #: when server selection last failed on servers that refused (time.monotonic()), or None
        self._refused_at: float | None = None
        self._selection_timeout = float(self._client.options.server_selection_timeout)

    @property
    def id_encoding(self) -> str:
        return self.ids.encoding

    @property
    def prefix(self) -> str:
        """The per-type collections' prefix (``prefix=``)."""
        return self.containers.prefix


    # -- validation ----------------------------------------------------------------------------
    def check_entity_type(self, entity_type: str) -> str:
        """The base rule, plus MongoDB's: no ``system.`` collections, namespace at most 255 bytes."""
        super().check_entity_type(entity_type)
        if self.containers.is_own:
            refused = self.containers.accepts(entity_type)
            if refused:
                raise ValidationError(f"entity type {entity_type!r} is not accepted by this store: {refused}")
            return entity_type
        name = self.containers.name_for(entity_type)
        if name in (OWNERS, META):
            raise ValidationError(f"entity type {entity_type!r} is not accepted by mongodb: collection {name!r} "
                                  "holds uuid-forge's own records")
        if name.startswith("system."):
            raise ValidationError(f"entity type {entity_type!r} is not accepted by mongodb: collection "
                                  f"{name!r} would be in the reserved 'system.' namespace")
        if len(f"{self._db.name}.{name}".encode()) > _MAX_NAMESPACE:
            raise ValidationError(f"entity type {entity_type!r} is not accepted by mongodb: "
                                  f"'{self._db.name}.{name}' is longer than {_MAX_NAMESPACE} bytes")
        return entity_type

    def validate_records(self, entity_type: str, records: list[Record]) -> None:
        """Refuse, before anything is written, what the layout cannot store as it is."""
        self.layout.validate(entity_type, records)

    # -- error wrapping ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        """As the base, but a server that accepted connections and never answered is a timeout.

        pymongo reports both "refused" and "silent" as ServerSelectionTimeoutError; the topology
        tells them apart (no error yet, or a NetworkTimeout, means the server did not answer).
        """
        with super()._errors(operation):
            if operation != "close":  # closing needs no server
                self._refuse_while_down()
            try:
                yield
            except ServerSelectionTimeoutError:
                servers = list(self._client.topology_description.server_descriptions().values())
                if all(s.error is None or isinstance(s.error, NetworkTimeout) for s in servers):
                    raise NetworkTimeout(f"no answer from {_addresses(servers)} within "
                                         f"{self._selection_timeout:g} s (connect_timeout)") from None
                self._refused_at = time.monotonic()
                raise ConnectionFailure(self._down_reason(servers)) from None

    def _down_reason(self, servers: list[Any]) -> str:
        """One line instead of pymongo's topology dump: each server and its own error."""
        errors = "; ".join(_server_error(s) for s in servers if s.error is not None)
        return f"no server reachable within {self._selection_timeout:g} s (connect_timeout): {errors}"

    def _refuse_while_down(self) -> None:
        """A server that refused connections within the last connect_timeout, and that the driver
        still sees down, is not waited for again: the retries of one write fail at once instead of
        each waiting the full timeout (a store that is down costs one timeout, not one per retry)."""
        if self._refused_at is None:
            return
        if time.monotonic() - self._refused_at > self._selection_timeout:
            self._refused_at = None
            return
        servers = list(self._client.topology_description.server_descriptions().values())
        if servers and all(s.error is not None and not isinstance(s.error, NetworkTimeout) for s in servers):
            raise ConnectionFailure(self._down_reason(servers))
        self._refused_at = None

    # -- hooks ---------------------------------------------------------------------------------
    def _collection(self, entity_type: str) -> Any:
        coll = self._collections.get(entity_type)
        if coll is None:
            coll = self._collections[entity_type] = self._db[self.containers.name_for(entity_type)]
        return coll

    def _keys(self, ids: list[uuid.UUID]) -> list[Any]:
        return [self.ids.key(i) for i in ids]

    def _where(self, query: dict[str, Any]) -> dict[str, Any]:
        """``query`` narrowed by the store's ``filter`` (unchanged without one)."""
        return query if self.filter is None else {"$and": [self.filter, query]}

    def _check_filter(self, records: list[Record], keys: list[Any]) -> None:
        """Refuse, before anything is written, a record whose document the ``filter`` would not
        select: written, it would be invisible to this store's own reads and audits."""
        if self.filter is None:
            return
        for record, _id in zip(records, keys):
            try:
                selected = _matches(self.filter, {"_id": _id, **self.layout.encode(record)})
            except _Unsupported as err:
                raise ValidationError(f"{record.entity_type} {record.id}: this store's filter uses {err}, which "
                                      "uuid-forge cannot check before a write: nothing was written (writes need a "
                                      "filter of equality, $eq, $ne, $in, $nin, $exists, $gt, $gte, $lt, $lte, "
                                      "$not, $and, $or, $nor)") from None
            if not selected:
                raise ValidationError(f"{record.entity_type} {record.id}: its document does not match this store's "
                                      f"filter {json_util.dumps(self.filter)[:200]}, so this store could never read "
                                      "it back: nothing was written")

    def _put(self, entity_type: str, records: list[Record]) -> None:
        keys = self._keys([r.id for r in records])
        self._check_filter(records, keys)
        self.containers.check(entity_type, claim=True)
        coll = self._collection(entity_type)
        coll.bulk_write(self.layout.writes(coll, keys, records), ordered=False)

    def _put_new(self, entity_type: str, records: list[Record]) -> None:
        """``insert_many``: a document whose ``_id`` exists already stays as it is (duplicate key)."""
        self.containers.check(entity_type, claim=True)
        docs = [{"_id": _id, **self.layout.encode(r)} for r, _id in zip(records, self._keys([r.id for r in records]))]
        try:
            self._collection(entity_type).insert_many(docs, ordered=False)
        except BulkWriteError as err:
            details = err.details or {}
            if details.get("writeConcernErrors") or any(e.get("code") != 11000 for e in details.get("writeErrors", ())):
                raise

    def _get(self, entity_type: str, ids: list[uuid.UUID]) -> Iterable[Record]:
        coll = self._collection(entity_type)
        found = []
        for chunk in chunked(self._keys(ids), self.in_batch_size):
            for doc in coll.find(self._where({"_id": {"$in": chunk}})):
                ident = self.ids.ident(doc["_id"])
                found.append(self._read_record(entity_type, ident, _decoder(self.layout, entity_type, ident, doc)))
        return found

    def _read_raw(self, entity_type: str, raws: list[str]) -> Iterable[RawEntry]:
        """Documents by ``_id`` as a scan shows it (``ForeignEntry.raw``), decoded as :meth:`_get` does.

        The name is ``str`` of the ``_id``, so one name may stand for several BSON values: it is
        looked up as a string, as an ObjectId (24 lowercase hex digits), as an integer (its decimal
        form) and as ``Binary(subtype=N, hex=...)``, and a document counts only when its ``_id``
        shows as exactly that name (a double ``42.0`` is not ``"42"``). Round trips are exact for
        ObjectId, int and str ``_id``s; where two documents show as one name (the string ``"42"``
        and the integer 42) the string wins, then the ObjectId, then the integer. Other ``_id``
        types (dates, embedded documents, doubles) show as Python's ``str`` of them and are not
        found by it: absent from the result."""
        best = self._resolved(entity_type, raws)
        layout = self.layout
        return [self._raw_entry(entity_type, raw, layout.decode, doc, f"document _id {raw}") for raw, doc in best.items()]

    def _resolved(self, entity_type: str, raws: list[str]) -> dict[str, dict[str, Any]]:
        """The document each raw name means (see :meth:`_read_raw`), by name; absent names left out."""
        coll = self._collection(entity_type)
        wanted: list[Any] = []
        for raw in raws:
            binary = _RAW_BINARY.fullmatch(raw)
            if binary:
                data = bytes.fromhex(binary["hex"])
                subtype = int(binary["subtype"])
                wanted.append(uuid.UUID(bytes=data) if subtype == 4 and len(data) == 16 else Binary(data, subtype))
                continue
            wanted.append(raw)
            if _OBJECT_ID.fullmatch(raw):
                wanted.append(ObjectId(raw))
            if _INTEGER.fullmatch(raw):
                wanted.append(int(raw))
        names = set(raws)
        best: dict[str, tuple[int, dict[str, Any]]] = {}
        for chunk in chunked(wanted, self.in_batch_size):
            for doc in coll.find(self._where({"_id": {"$in": chunk}})):
                shown = self._shown(doc["_id"])
                rank = _RAW_RANK.get(type(doc["_id"]), len(_RAW_RANK))
                if shown in names and (shown not in best or rank < best[shown][0]):
                    best[shown] = (rank, doc)
        return {raw: doc for raw, (_, doc) in best.items()}

    def _delete_raw_if_unchanged(self, entity_type: str, wanted: dict[str, str]) -> int:
        """Compare and delete atomically per document: each is read, its data compared with the
        proof, and deleted by a ``DeleteOne`` whose filter is the document as read, field by field
        (``_id`` and every field equal, embedded documents and arrays compared whole), all in one
        ``bulk_write``: a write that changes or removes any field after the read matches nothing,
        and the document stays. With ``exact_delete`` (the default) the same filter holds a
        ``$jsonSchema`` allowing only the fields read, so a field *added* in the instant between the
        read and the delete matches nothing too. Without it (a server that scans the collection
        for such a filter, as the stand-in here does) that added field is not detected, and
        writers stop for contract (docs/migration.md).

        A document holding a field this store does not own (outside the envelope's members, or
        outside the store's projection; ``ignore_fields`` are the store's own) when it is read is
        kept however its data compares: deleting it would delete another application's field,
        which no proof covers."""
        self.containers.check(entity_type)
        layout = self.layout
        ops: list[DeleteOne] = []
        for raw, doc in self._resolved(entity_type, list(wanted)).items():
            entry = self._raw_entry(entity_type, raw, layout.decode, doc, f"document _id {raw}")
            if not self._still_proven(entry, wanted[raw]) or entry.data is None:
                continue
            owned = layout.owned_fields(Record(entity_type, uuid.UUID(int=0), entry.data))
            if set(doc) - owned - set(self.view.ignore_fields):
                continue  # a field of another application's beside the proven data
            exact = dict(doc)
            if self.exact_delete:  # no field beside those read: one added since the read keeps the document
                exact["$jsonSchema"] = {"additionalProperties": False, "properties": {k: {} for k in doc}}
            ops.append(DeleteOne(self._where(exact)))
        if not ops:
            return 0
        return int(self._collection(entity_type).bulk_write(ops, ordered=False).deleted_count)

    def _delete_raw_names(self, entity_type: str, raws: list[str]) -> int:
        """Delete the documents the raw names mean (the same resolution as read_raw), by exact ``_id``."""
        self.containers.check(entity_type)
        ids = [doc["_id"] for doc in self._resolved(entity_type, raws).values()]
        ops = [DeleteMany(self._where({"_id": {"$in": chunk}})) for chunk in chunked(ids, self.in_batch_size)]
        return self._collection(entity_type).bulk_write(ops, ordered=False).deleted_count if ops else 0

    def _shown(self, raw: Any) -> str:
        """An ``_id`` as a scan names it (``ForeignEntry.raw``, ``MalformedID.raw``, or the ID)."""
        item = self._scanned(raw)
        return str(item) if isinstance(item, uuid.UUID) else item.raw

    def _delete(self, entity_type: str, ids: list[uuid.UUID]) -> int:
        self.containers.check(entity_type)
        ops = [DeleteMany(self._where({"_id": {"$in": chunk}}))
               for chunk in chunked(self._keys(ids), self.in_batch_size)]
        return self._collection(entity_type).bulk_write(ops, ordered=False).deleted_count if ops else 0

    def _delete_raw(self, entity_type: str, raws: list[str]) -> int:
        """Delete documents by an ``_id`` exactly as a scan reported it: a string, or
        ``Binary(subtype=N, hex=...)`` for a binary of the wrong kind."""
        self.containers.check(entity_type)
        keys: list[Any] = []
        for raw in raws:
            binary = _RAW_BINARY.fullmatch(raw)
            if binary:
                data = bytes.fromhex(binary["hex"])
                subtype = int(binary["subtype"])
                keys.append(uuid.UUID(bytes=data) if subtype == 4 and len(data) == 16 else Binary(data, subtype))
            else:
                keys.append(raw)
        foreign = [raw for raw, key in zip(raws, keys) if isinstance(self._scanned(key), ForeignEntry)]
        if foreign:
            raise ValidationError(f"_ids {foreign[:3]} are not IDs written by uuid-forge: refused, foreign "
                                  "documents are never deleted")
        ops = [DeleteMany(self._where({"_id": {"$in": chunk}})) for chunk in chunked(keys, self.in_batch_size)]
        return self._collection(entity_type).bulk_write(ops, ordered=False).deleted_count if ops else 0

    def erasure_limits(self, entity_type: str) -> list[str]:
        """The oplog and freed storage keep what a delete removed, for a while."""
        return [("MongoDB (WiredTiger) frees a deleted document's space for reuse without overwriting it (the "
                "'compact' command rewrites the collection); on a replica set the oplog keeps the operations that "
                "wrote its data until they leave the oplog window"), *super().erasure_limits(entity_type)]

    def _scan(self, entity_type: str, partition: Partition) -> Iterator[ScanItem]:
        self.containers.check(entity_type)
        coll = self._collection(entity_type)
        fields = self.layout.scan_fields()
        fingerprint = self.layout.fingerprint
        if partition.count == 1:
            # the whole ID space: one pass over the collection sees the wrongly encoded ones too
            for doc in coll.find(self._where({}), fields).batch_size(self.scan_batch_size):
                yield self._scanned(doc["_id"]), fingerprint(doc)
            return
        # No sort: the audit compares by ID, not in order, and sorting cost the stand-in 2/3 of
        # the scan (a real server walks the _id index for the range either way).
        for doc in coll.find(self._where({"_id": self.ids.bounds(partition)}), fields).batch_size(self.scan_batch_size):
            yield self._scanned(doc["_id"]), fingerprint(doc)
        # everything outside the well-encoded range; undecodable ones are reported by partition 0 only
        outside = {"_id": {"$not": {"$gte": self.ids.lowest, "$lte": self.ids.highest}}}
        for doc in coll.find(self._where(outside), fields).batch_size(self.scan_batch_size):
            item = self._scanned(doc["_id"])
            if isinstance(item, MalformedID) or (isinstance(item, ForeignEntry) and partition.index == 0):
                yield item, fingerprint(doc)

    def _scanned(self, raw: Any) -> uuid.UUID | MalformedID | ForeignEntry:
        """What an ``_id`` is: ours, ours wrongly encoded, or another application's (see IdFormat)."""
        return self.ids.classify(raw, self.id_versions)

    def shared(self, entity_type: str) -> bool:
        return self.containers.is_own  # the user's own collection

    def _drop(self, entity_type: str) -> None:
        """Drop our per-type collection (and its indexes): one command, where deleting by ID would
        first read every ID. In your own collection only our documents go; it and the others stay."""
        if self.containers.is_own or self.filter is not None:  # a shared collection: our documents only
            super()._drop(entity_type)
            return
        self.containers.check(entity_type)  # never another prefix's collection
        self._collection(entity_type).drop()
        self._collections.pop(entity_type, None)
        self.containers.release(entity_type)

    def _entity_types(self) -> Iterable[str]:
        names = [n for n in self._db.list_collection_names() if not n.startswith("system.") and n not in (OWNERS, META)]
        if self.containers.is_own:
            return self.containers.ours(names)
        found = []
        for entity_type in self.containers.ours(names):
            try:
                self.check_entity_type(entity_type)
            except ValidationError:
                continue  # another application's collection
            first = self._db[self.containers.name_for(entity_type)].find_one({}, {"_id": 1})
            # another application's collection (its first _id is not ours in any form) is not a type
            if first is not None and not isinstance(self._scanned(first["_id"]), ForeignEntry):
                found.append(entity_type)
        return found

    def _ping(self) -> None:
        self._client.admin.command("ping")

    def _close(self) -> None:
        self._client.close()



def _decoder(layout: Layout, entity_type: str, ident: uuid.UUID, stored: Any) -> Callable[[], Record]:
    """``layout.decode`` of one stored entry, deferred (``Adapter._read_record`` calls it)."""
    return lambda: layout.decode(entity_type, ident, stored)


def _user_collection(collection: str | None, entity_type: str | None) -> tuple[str | None, str | None]:
    """``collection=`` and ``entity_type=`` checked together: your own collection holds one type."""
    if collection is None:
        if entity_type is not None:
            raise ValidationError("entity_type= names the one type of your own collection: pass collection= too")
        return None, None
    if not entity_type:
        raise ValidationError(f"collection={collection!r} needs entity_type=: the one entity type it holds")
    if not collection or "$" in collection or "\x00" in collection or collection.startswith("system.") \
            or collection == OWNERS:
        raise ValidationError(f"collection {collection!r} is not a collection uuid-forge can use: no '$' or NUL, "
                              "not empty, not in 'system.', not uuid-forge's own owners collection")
    return collection, entity_type


def _update_within(_id: Any, data: dict[str, Any], projection: Iterable[str]) -> UpdateOne:
    """An upsert that sets the projection's fields from ``data`` and unsets those it lacks,
    leaving every other field of the document as it is (``$unset`` names owned fields only)."""
    update: dict[str, Any] = {}
    owned = {k: v for k, v in data.items() if k in projection}
    if owned:
        update["$set"] = owned
    unset = {k: "" for k in projection if k not in data and k != "_id"}
    if unset:
        update["$unset"] = unset
    if not update:  # nothing of ours to set or unset: the document exists, as it is
        return UpdateOne({"_id": _id}, [{"$replaceWith": {"$mergeObjects": ["$$ROOT", {"$literal": {"_id": _id}}]}}],
                         upsert=True)
    return UpdateOne({"_id": _id}, update, upsert=True)


def _plain(projection: tuple[str, ...] | None) -> tuple[str, ...] | None:
    """The store's projection when every name is a plain top-level field (None otherwise: the
    whole document is read and written, and the view applies the projection after the read)."""
    if projection is None or any("." in n or n.startswith("$") for n in projection):
        return None
    return projection


def _data(doc: dict[str, Any]) -> dict[str, Any]:
    """A data-layout document's data: every field but ``_id``, in the canonical model (see _from_bson)."""
    return {k: _from_bson(v) for k, v in doc.items() if k != "_id"}


def _from_bson(value: Any) -> Any:
    """A value as read from BSON, in uuid-forge's data model: Decimal128 as Decimal, dates as aware
    UTC (the client is tz_aware), ObjectId as its hex text; UUIDs (Binary 4) are decoded already."""
    t = type(value)
    if t is str or t is int or t is float or t is bool or value is None:
        return value
    if t is dict:
        return {k: _from_bson(v) for k, v in value.items()}
    if t is list:
        return [_from_bson(v) for v in value]
    if t is Decimal128:
        return value.to_decimal()
    if t is ObjectId:
        return str(value)
    if isinstance(value, _dt.datetime) and value.tzinfo is None:  # only when a caller's client was naive
        return value.replace(tzinfo=_dt.UTC)
    return value


def _bson_value(value: Any, where: str, path: str, datetimes: Callable[[str], Any]) -> Any:
    """One value of parsed canonical JSON (load_json: plain fractions as Decimal) as BSON keeps it
    exactly; ValidationError naming ``where`` and the field when it cannot."""
    t = type(value)
    if t is str:
        return datetimes(value)
    if t is dict:
        out = {}
        for k, v in value.items():
            if "\x00" in k or (not path and k.startswith("$")):
                raise ValidationError(f"{where}: field {path + k!r} cannot be a MongoDB field name (BSON has no NUL "
                                      "in names; a top-level name cannot start with '$'): rename it, or use "
                                      "layout=envelope")
            out[k] = _bson_value(v, where, f"{path}{k}.", datetimes)
        return out
    if t is list:
        return [_bson_value(v, where, f"{path}{i}.", datetimes) for i, v in enumerate(value)]
    if t is int:
        return value if value in _INT64 else _decimal128(decimal.Decimal(value), where, path)
    if t is decimal.Decimal:  # a plain fraction: a double when it holds these digits, else Decimal128
        as_float = float(value)
        if format_float(as_float) == format_decimal(value):
            return as_float
        return _decimal128(value, where, path)
    return value  # bool, None, floats of exponent form


def _decimal128(value: decimal.Decimal, where: str, path: str) -> Decimal128:
    try:
        return Decimal128(value.normalize(decimal.Context(prec=len(value.as_tuple().digits) + 1)))
    except (decimal.Inexact, decimal.InvalidOperation, decimal.Overflow, ValueError):
        raise ValidationError(f"{where}: field {path.rstrip('.')!r} holds {format_decimal(value)[:40]}, which "
                              "MongoDB cannot store exactly (Decimal128 keeps 34 significant digits): "
                              "use layout=envelope, or store it as text") from None


def _to_bson(canonical_json: str) -> Any:
    """Envelope layout: the JSON as a document when BSON holds it exactly, else the canonical text itself."""
    try:
        return _exact(load_json(canonical_json))
    except _NotExact:
        return canonical_json


class _NotExact(Exception):
    """A value BSON cannot hold as it is (the envelope then keeps the text)."""


def _exact(value: Any) -> Any:
    """``value`` (parsed by load_json) with fractions as doubles; _NotExact for what BSON cannot
    store as is: ints beyond int64, fractions a double does not hold, NUL/``$``/``.`` in names."""
    if isinstance(value, dict):
        if not all(isinstance(k, str) and "\x00" not in k and "." not in k and not k.startswith("$") for k in value):
            raise _NotExact
        return {k: _exact(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_exact(v) for v in value]
    if isinstance(value, decimal.Decimal):
        as_float = float(value)
        if format_float(as_float) != format_decimal(value):
            raise _NotExact
        return as_float
    if isinstance(value, int) and not isinstance(value, bool) and value not in _INT64:
        raise _NotExact
    return value


# -- the filter option ---------------------------------------------------------------------------
def _query_document(value: Any) -> dict[str, Any]:
    """The ``filter`` option: a query document, given as JSON text (extended JSON) or a mapping."""
    if isinstance(value, str):
        value = json_util.loads(value)  # ValueError on bad JSON: the option's error names it
    if not isinstance(value, dict):
        raise TypeError(value)
    return dict(value)


class _Unsupported(Exception):
    """A query operator the write-time check does not evaluate (its text is the operator)."""


def _matches(query: dict[str, Any], doc: dict[str, Any]) -> bool:
    """Whether ``doc`` (as it will be stored) is selected by ``query``: the subset of MongoDB's
    query language a write can be checked against before it is sent (_Unsupported otherwise)."""
    for key, cond in query.items():
        if key in ("$and", "$or", "$nor"):
            if not isinstance(cond, list):
                raise _Unsupported(key)
            hits = [_matches(q, doc) for q in cond]
            if not (all(hits) if key == "$and" else any(hits) if key == "$or" else not any(hits)):
                return False
        elif key.startswith("$"):
            raise _Unsupported(key)
        elif not _field_matches(_at(doc, key.split(".")), cond):
            return False
    return True


def _at(value: Any, path: list[str]) -> list[Any]:
    """The values at a dotted path (an array is matched whole and by each element, as MongoDB does)."""
    if not path:
        return [value, *value] if isinstance(value, list) else [value]
    if isinstance(value, dict):
        return _at(value[path[0]], path[1:]) if path[0] in value else []
    if isinstance(value, list):
        return [found for item in value for found in _at(item, path)]
    return []


def _field_matches(found: list[Any], cond: Any) -> bool:
    if isinstance(cond, (Regex, re.Pattern)):  # extended JSON's {"$regex": ...} arrives parsed
        raise _Unsupported("$regex")
    if not (isinstance(cond, dict) and cond and all(k.startswith("$") for k in cond)):
        return any(_same(v, cond) for v in found) or (cond is None and not found)
    for op, arg in cond.items():
        if op == "$eq":
            ok = _field_matches(found, {"$in": [arg]})
        elif op == "$ne":
            ok = not _field_matches(found, {"$in": [arg]})
        elif op in ("$in", "$nin"):
            if not isinstance(arg, list):
                raise _Unsupported(op)
            hit = any(_same(v, a) for v in found for a in arg) or (None in arg and not found)
            ok = hit if op == "$in" else not hit
        elif op == "$exists":
            ok = bool(found) == bool(arg)
        elif op == "$not":
            ok = not _field_matches(found, arg)
        elif op in _ORDER:
            ok = any(_ordered(v, arg, op) for v in found)
        else:
            raise _Unsupported(op)
        if not ok:
            return False
    return True


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "$gt": lambda a, b: a > b, "$gte": lambda a, b: a >= b, "$lt": lambda a, b: a < b, "$lte": lambda a, b: a <= b}


def _comparable(value: Any) -> Any:
    """Numbers as Decimal (int, double, Decimal128 compare by value), anything else as it is."""
    if isinstance(value, Decimal128):
        return value.to_decimal()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return decimal.Decimal(value)
    if isinstance(value, _dt.datetime) and value.tzinfo is None:
        return value.replace(tzinfo=_dt.UTC)
    return value


def _same(a: Any, b: Any) -> bool:
    x, y = _comparable(a), _comparable(b)
    return type(x) is type(y) and x == y


def _ordered(a: Any, b: Any, op: str) -> bool:
    x, y = _comparable(a), _comparable(b)
    return type(x) is type(y) and not isinstance(x, (dict, list, bool)) and _ORDER[op](x, y)
