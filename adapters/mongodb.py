"""``mongodb://host:port/db``: one collection per entity type, the ID as ``_id``.

Each document is ``{_id, fp, data, key}``. ``_id`` is BSON Binary subtype 4 by default (the
client runs with ``uuidRepresentation="standard"``: 16 bytes instead of a 36-char string, and
the form other drivers read as a UUID); ``id_format="string"`` (or ``?id_format=string`` in the
URL) keeps the 36-char lowercase string instead. ``data`` and ``key`` are the record's JSON as
embedded documents, so they stay queryable; the few values BSON cannot hold exactly (integers
beyond 64 bits, field names with NUL, a leading ``$`` or a ``.``) make that one field the
canonical JSON text instead, so nothing is ever lost or altered.

Writes are one unordered ``bulk_write`` of upserting ``ReplaceOne`` per batch. Reads and deletes
send ``$in`` lists of ``in_batch_size`` IDs (default 100): real servers take thousands, but the
SecantusDB stand-in used in tests slows down quadratically with long ``$in`` lists. Scans are
``_id`` range queries sorted by ``_id`` that fetch only ``fp``; a second query finds every
``_id`` outside the well-encoded range (strings in binary mode, binaries in string mode, ...)
and reports it as :class:`~uuid_forge.record.MalformedID`.

Collection names are ``collection_prefix + entity_type`` with no separator a type could not
contain (prefix ``acme_`` with type ``user`` and no prefix with type ``acme_user`` are the same
collection), so the first write records which prefix and type a collection is for in the
collection ``uuid_forge.owners`` (``{_id: collection, collection_prefix, entity_type}``). A write,
scan or delete through another prefix or type is refused with an error naming both, and
``entity_types()`` does not list it. Collections written before that marker existed are claimed
by their next write.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar
from urllib.parse import urlsplit, urlunsplit

from bson import Binary
from pymongo import DeleteMany, MongoClient, ReplaceOne
from pymongo.errors import (
    BulkWriteError,
    ConfigurationError,
    ConnectionFailure,
    DocumentTooLarge,
    DuplicateKeyError,
    OperationFailure,
    WriteError,
    ExecutionTimeout,
    NetworkTimeout,
    ServerSelectionTimeoutError,
    WaitQueueTimeoutError,
    WTimeoutError,
)

from ..errors import StoreConfigError, StoreError, StoreRejectedError, ValidationError

_RAW_BINARY = re.compile(r"Binary\(subtype=(?P<subtype>\d+), hex=(?P<hex>[0-9a-f]*)\)")
from ..classify import classify, classify_uuid
from ..record import ForeignEntry, MalformedID, Partition, Record, TextFingerprint, data_fingerprint
from ..contract import BATCH_SIZE, Adapter, Option, ScanItem, chunked

__all__ = ["MongoAdapter"]

DEFAULT_DATABASE = "uuid_forge"
#: sane defaults: a server that accepts connections but never answers fails in seconds, not never
_CLIENT_DEFAULTS = {"serverSelectionTimeoutMS": 5000, "connectTimeoutMS": 5000, "socketTimeoutMS": 30000}
#: which prefix and entity type each collection was made for (see the module doc)
OWNERS = "uuid_forge.owners"
#: MongoDB limit on "database.collection" (bytes)
_MAX_NAMESPACE = 255

_MIN_BINARY = Binary(bytes(16), 4)
_MAX_BINARY = Binary(b"\xff" * 16, 4)
_MIN_STRING = str(uuid.UUID(int=0))
_MAX_STRING = str(uuid.UUID(int=(1 << 128) - 1))
_CANONICAL_STRING = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
#: cheap pre-check on canonical JSON: no match means BSON holds it exactly (no false negatives)
_RISKY_JSON = re.compile(r'\d{19}|\\u0000|"\$|\.(?:[^"\\]|\\.)*":')
_INT64 = range(-(1 << 63), 1 << 63)


class MongoAdapter(Adapter):
    """MongoDB through pymongo 4: ``_id`` as Binary subtype 4 (or string), ``fp`` beside the data."""

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
        Option("id_format", str, "binary", "_id as BSON Binary subtype 4, or the 36-char lowercase string",
               choices=("binary", "string")),
        Option("collection_prefix", str, "", "prefix of the per-type collections (no '$' or NUL)"),
        Option("database", str, None, "the database (none: the URL's path, else uuid_forge); the URL names it in "
               "its path", url=False),
        Option("in_batch_size", int, 100, "IDs per $in list of a read or delete", minimum=1),
        BATCH_SIZE,
    )
    driver_query: ClassVar[str] = "pymongo as URI options (e.g. `authSource`, `replicaSet`, `tls`, `appname`)"
    driver_keywords: ClassVar[str] = ("`pymongo.MongoClient` (e.g. `serverSelectionTimeoutMS`, `event_listeners`); "
                                      "`uuidRepresentation` must stay `standard`")

    def __init__(self, url: str, **options: Any) -> None:
        """Keywords that are not options go to :class:`pymongo.MongoClient` (``serverSelectionTimeoutMS``, ...)."""
        opts = self.parse_options(url, options)
        client_options = opts.driver_keywords
        database = opts["database"]
        super().__init__(url, batch_size=opts["batch_size"])
        parts = urlsplit(url)
        # our options leave the query; the rest goes to pymongo verbatim (its own quoting rules)
        driver_query = "&".join(p for p in parts.query.split("&") if p.partition("=")[0] not in opts.url_names)
        self.id_format = opts["id_format"]
        self.collection_prefix = opts["collection_prefix"]
        if "$" in self.collection_prefix or "\x00" in self.collection_prefix:
            raise ValidationError(f"collection_prefix {self.collection_prefix!r} may not contain '$' or NUL")
        self.in_batch_size = opts["in_batch_size"]
        if client_options.get("uuidRepresentation", "standard") != "standard":
            raise ValidationError("uuidRepresentation must be 'standard': IDs are stored as BSON Binary subtype 4")
        options = {**_CLIENT_DEFAULTS, **client_options, "uuidRepresentation": "standard"}
        driver_url = urlunsplit(parts._replace(query=driver_query))
        with Adapter._errors(self, "open"):  # a bad URL or option leaves as a StoreError, password masked
            self._client: MongoClient[dict[str, Any]] = MongoClient(driver_url, **options)
            self._db = self._client[database] if database else self._client.get_default_database(DEFAULT_DATABASE)
        self._collections: dict[str, Any] = {}
        self._owned: set[str] = set()  # entity types whose collection was seen to be ours
        self._binary = self.id_format == "binary"

    @property
    def id_encoding(self) -> str:
        return "binary4" if self._binary else "string"

    # -- validation ----------------------------------------------------------------------------
    def check_entity_type(self, entity_type: str) -> str:
        """The base rule, plus MongoDB's: no ``system.`` collections, namespace at most 255 bytes."""
        super().check_entity_type(entity_type)
        name = self.collection_prefix + entity_type
        if name == OWNERS:
            raise ValidationError(f"entity type {entity_type!r} is not accepted by mongodb: collection {name!r} "
                                  "records which prefix and type each collection belongs to")
        if name.startswith("system."):
            raise ValidationError(f"entity type {entity_type!r} is not accepted by mongodb: collection "
                                  f"{name!r} would be in the reserved 'system.' namespace")
        if len(f"{self._db.name}.{name}".encode()) > _MAX_NAMESPACE:
            raise ValidationError(f"entity type {entity_type!r} is not accepted by mongodb: "
                                  f"'{self._db.name}.{name}' is longer than {_MAX_NAMESPACE} bytes")
        return entity_type

    # -- error wrapping ------------------------------------------------------------------------
    @contextlib.contextmanager
    def _errors(self, operation: str) -> Iterator[None]:
        """As the base, but a server that accepted connections and never answered is a timeout.

        pymongo reports both "refused" and "silent" as ServerSelectionTimeoutError; the topology
        tells them apart (no error yet, or a NetworkTimeout, means the server did not answer).
        """
        with super()._errors(operation):
            try:
                yield
            except ServerSelectionTimeoutError as err:
                servers = self._client.topology_description.server_descriptions().values()
                if all(s.error is None or isinstance(s.error, NetworkTimeout) for s in servers):
                    raise NetworkTimeout(f"no answer from the server: {err}") from None
                raise

    # -- hooks ---------------------------------------------------------------------------------
    def _collection(self, entity_type: str) -> Any:
        coll = self._collections.get(entity_type)
        if coll is None:
            coll = self._collections[entity_type] = self._db[self.collection_prefix + entity_type]
        return coll

    def _check_owner(self, entity_type: str, claim: bool = False) -> None:
        """Raise ValidationError when the collection was made for another prefix or type; with
        ``claim`` (a write), record it as this prefix's and type's if nobody has yet."""
        if entity_type in self._owned:
            return
        name, prefix = self.collection_prefix + entity_type, self.collection_prefix
        owners = self._db[OWNERS]
        doc = owners.find_one({"_id": name})
        if doc is None:
            if not claim:
                return  # not written yet, or written before the marker: the next write claims it
            try:
                owners.insert_one({"_id": name, "collection_prefix": prefix, "entity_type": entity_type})
            except DuplicateKeyError:  # another writer claimed it first: check whose it is
                doc = owners.find_one({"_id": name})
        if doc is not None and (doc.get("collection_prefix"), doc.get("entity_type")) != (prefix, entity_type):
            raise ValidationError(
                f"collection {name!r} belongs to entity type {doc.get('entity_type')!r} with collection_prefix "
                f"{doc.get('collection_prefix')!r}, not to {entity_type!r} with {prefix!r}: refused (choose a "
                "collection_prefix whose names cannot overlap another's)")
        self._owned.add(entity_type)

    def _keys(self, ids: list[uuid.UUID]) -> list[Binary] | list[str]:
        return [Binary(i.bytes, 4) for i in ids] if self._binary else [str(i) for i in ids]

    def _put(self, entity_type: str, records: list[Record]) -> None:
        ops = []
        for r, _id in zip(records, self._keys([r.id for r in records])):
            key_json = None if r.key is None else r.key_json
            ops.append(ReplaceOne({"_id": _id}, {"_id": _id, "fp": r.fingerprint, "data": _to_bson(r.data_json),
                                                 "key": None if key_json is None else _to_bson(key_json)},
                                  upsert=True))
        self._check_owner(entity_type, claim=True)
        self._collection(entity_type).bulk_write(ops, ordered=False)

    def _get(self, entity_type: str, ids: list[uuid.UUID]) -> Iterable[Record]:
        coll = self._collection(entity_type)
        binary = self._binary
        found = []
        for chunk in chunked(self._keys(ids), self.in_batch_size):
            for doc in coll.find({"_id": {"$in": chunk}}):
                ident = doc["_id"] if binary else uuid.UUID(doc["_id"])
                data, k = doc.get("data"), doc.get("key")  # fingerprint: from the data read, never "fp"
                found.append(self._read_record(entity_type, ident, lambda d=data, k=k, i=ident: Record(
                    entity_type, i, json.loads(d) if isinstance(d, str) else d,
                    json.loads(k) if isinstance(k, str) else k,
                    fingerprint=TextFingerprint(d) if isinstance(d, str) else None)))
        return found

    def _delete(self, entity_type: str, ids: list[uuid.UUID]) -> int:
        self._check_owner(entity_type)
        ops = [DeleteMany({"_id": {"$in": chunk}})
               for chunk in chunked(self._keys(ids), self.in_batch_size)]
        return self._collection(entity_type).bulk_write(ops, ordered=False).deleted_count if ops else 0

    def _delete_raw(self, entity_type: str, raws: list[str]) -> int:
        """Delete documents by an ``_id`` exactly as a scan reported it: a string, or
        ``Binary(subtype=N, hex=...)`` for a binary of the wrong kind."""
        self._check_owner(entity_type)
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
        ops = [DeleteMany({"_id": {"$in": chunk}}) for chunk in chunked(keys, self.in_batch_size)]
        return self._collection(entity_type).bulk_write(ops, ordered=False).deleted_count if ops else 0

    def _scan(self, entity_type: str, partition: Partition) -> Iterator[ScanItem]:
        self._check_owner(entity_type)
        coll = self._collection(entity_type)
        hi = partition.hi_uuid
        lowest: Binary | str
        highest: Binary | str
        bounds: dict[str, Binary | str]
        if self._binary:
            lowest, highest = _MIN_BINARY, _MAX_BINARY
            bounds = {"$gte": Binary(partition.lo_uuid.bytes, 4)}
            bounds.update({"$lt": Binary(hi.bytes, 4)} if hi else {"$lte": _MAX_BINARY})
        else:  # lowercase hex sorts like the numbers it encodes
            lowest, highest = _MIN_STRING, _MAX_STRING
            bounds = {"$gte": str(partition.lo_uuid)}
            bounds.update({"$lt": str(hi)} if hi else {"$lte": _MAX_STRING})
        if partition.count == 1:
            # the whole ID space: one pass over the collection sees the wrongly encoded ones too
            for doc in coll.find({}, {"data": 1}).batch_size(self.batch_size):
                yield self._scanned(doc["_id"]), _data_fp(doc)
            return
        # No sort: the audit compares by ID, not in order, and sorting cost the stand-in 2/3 of
        # the scan (a real server walks the _id index for the range either way).
        for doc in coll.find({"_id": bounds}, {"data": 1}).batch_size(self.batch_size):
            yield self._scanned(doc["_id"]), _data_fp(doc)
        # everything outside the well-encoded range; undecodable ones are reported by partition 0 only
        outside = coll.find({"_id": {"$not": {"$gte": lowest, "$lte": highest}}}, {"data": 1}).batch_size(self.batch_size)
        for doc in outside:
            item = self._scanned(doc["_id"])
            if isinstance(item, MalformedID) or (isinstance(item, ForeignEntry) and partition.index == 0):
                yield item, _data_fp(doc)

    def _scanned(self, raw: Any) -> uuid.UUID | MalformedID | ForeignEntry:
        """The UUID an ``_id`` encodes if it is in this adapter's encoding; a MalformedID for an ID
        of ours in another encoding; a ForeignEntry for anything else (``"legacy-42"``, an ObjectId)."""
        versions = self.id_versions
        if self._binary:
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
        if isinstance(raw, str):
            if _CANONICAL_STRING.fullmatch(raw):
                return uuid.UUID(raw)
            return classify(raw, "string", versions=versions, where="string _id")
        if type(raw) is uuid.UUID:
            return classify_uuid(raw, raw=f"Binary(subtype=4, hex={raw.hex})", versions=versions, where="_id",
                                 wanted="BSON Binary where a 36-char string is expected")
        return ForeignEntry(str(raw), f"{type(raw).__name__} _id: not ours, left alone")

    def _drop(self, entity_type: str) -> None:
        """Drop the collection (and its indexes): one command, where deleting by ID would first read every ID."""
        self._check_owner(entity_type)  # never another prefix's collection
        self._collection(entity_type).drop()
        self._collections.pop(entity_type, None)
        self._db[OWNERS].delete_one({"_id": self.collection_prefix + entity_type})
        self._owned.discard(entity_type)

    def _entity_types(self) -> Iterable[str]:
        prefix = self.collection_prefix
        owners = {d["_id"]: (d.get("collection_prefix"), d.get("entity_type")) for d in self._db[OWNERS].find()}
        found = []
        for name in self._db.list_collection_names():
            if not name.startswith(prefix) or name.startswith("system.") or name == OWNERS:
                continue
            if name in owners and owners[name] != (prefix, name[len(prefix):]):
                continue  # made for another prefix and type
            entity_type = name[len(prefix):]
            try:
                self.check_entity_type(entity_type)
            except ValidationError:
                continue  # another application's collection
            first = self._db[name].find_one({}, {"_id": 1})
            # another application's collection (its first _id is not ours in any form) is not a type
            if first is not None and not isinstance(self._scanned(first["_id"]), ForeignEntry):
                found.append(entity_type)
        return found

    def _ping(self) -> None:
        self._client.admin.command("ping")

    def _close(self) -> None:
        self._client.close()


def _data_fp(doc: Mapping[str, Any]) -> str | None:
    """The fingerprint of the ``data`` a document holds (never its ``fp`` field): hashed as stored
    when BSON kept the canonical text, else rebuilt from the document's values."""
    data = doc.get("data")
    return TextFingerprint(data) if isinstance(data, str) else data_fingerprint(data)


def _to_bson(canonical_json: str) -> Any:
    """The JSON as a document when BSON holds it exactly, else the canonical text itself."""
    value = json.loads(canonical_json)
    if _RISKY_JSON.search(canonical_json) and not _bson_exact(value):
        return canonical_json
    return value


def _bson_exact(value: Any) -> bool:
    """False for what BSON cannot store as is: ints beyond int64, NUL/``$``/``.`` in field names."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and "\x00" not in k and "." not in k and not k.startswith("$")
                   and _bson_exact(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_bson_exact(v) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value in _INT64
    return True
