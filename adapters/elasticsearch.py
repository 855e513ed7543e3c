"""``elasticsearch+http://`` / ``elasticsearch+https://``: one index per entity type, via ``_bulk``.

Layout (index ``{index_prefix}{entity_type}``, default prefix ``uf-``)::

    _id   the 36-char UUID string (or, with id_format="base64url", the 22-char base64url form)
    id    keyword, always the 36-char string: ES 8 forbids sorting and range queries on _id,
          and audits need range queries (partitions)
    fp    keyword, the record's fingerprint as written (a hint: audits hash ``data`` itself)
    key   the business key, in _source only (object, enabled: false)
    data  the record's data, in _source only (object, enabled: false)

``key`` and ``data`` are never indexed, so arbitrary data can cause neither mapping explosions nor
type conflicts, and ``dynamic: strict`` keeps anything else out of the mapping.

The mapping's ``_meta.uuid_forge`` names the ``index_prefix`` and entity type an index was made
for. Prefix and type are joined without a separator a type could not contain (``uf-`` + ``a-b``
and ``uf-a-`` + ``b`` are both ``uf-a-b``), so before reading, writing or deleting an existing
index the adapter checks that marker: an index made for another prefix or type, or not made by
uuid-forge at all, is refused with an error naming both, and ``entity_types()`` does not list it.
Indices made before the marker existed are recognised by their ``id`` and ``fp`` fields.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit, urlunsplit

import elasticsearch
from elasticsearch import helpers

from ..classify import classify, classify_uuid, parse_id
from ..encodings import check_target, encode
from ..errors import (
    ConfigError,
    StoreConfigError,
    StoreError,
    StoreRejectedError,
    StoreUnavailableError,
    TargetError,
    ValidationError,
)
from ..record import ForeignEntry, MalformedID, Partition, Record, TextFingerprint, data_fingerprint
from ..urls import mask_text
from ..contract import BATCH_SIZE, Adapter, Option, ScanItem

__all__ = ["ElasticsearchAdapter"]

ID_FORMATS = ("string", "base64url")
MAPPINGS: dict[str, Any] = {
    "dynamic": "strict",
    "properties": {
        "id": {"type": "keyword"},
        "fp": {"type": "keyword"},
        "key": {"type": "object", "enabled": False},
        "data": {"type": "object", "enabled": False},
    },
}
# Bulk item failures that mean "busy or not ready, try again" rather than "this record is bad".
# per-item bulk errors that are the document's own fault (split out and dead-lettered) or the store's
_RECORD_REFUSALS = {"mapper_parsing_exception", "document_parsing_exception", "illegal_argument_exception",
                    "strict_dynamic_mapping_exception", "version_conflict_engine_exception",
                    "x_content_parse_exception", "parse_exception"}
_STORE_REFUSALS = {"security_exception", "index_closed_exception", "invalid_index_name_exception"}
_RETRYABLE = {"es_rejected_execution_exception", "unavailable_shards_exception", "cluster_block_exception"}
# A run of 20+ digits in canonical JSON may be an integer beyond 64 bits (see _json_value).
_LONG_NUMBER = re.compile(r"\d{20}")


def _json_value(text: str) -> str:
    """``text`` (canonical JSON) as it goes into ``_source``: itself, or as a JSON string.

    Elasticsearch keeps ``_source`` verbatim, but JSON layers around it (Java and JavaScript
    clients, ingest pipelines, the noida-db stand-in) turn integers beyond 64 bits into floats.
    Such values are kept as their canonical text instead, so ``get`` returns exactly what was
    fingerprinted; everything else stays a readable object.
    """
    return json.dumps(text, ensure_ascii=False) if _LONG_NUMBER.search(text) else text


def _key_value(record: Record) -> str:
    key = record.key_json
    return "null" if key is None else _json_value(key)


def _from_source(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value


def _data_fp(src: dict[str, Any]) -> str | None:
    """The fingerprint of the ``data`` a document holds (never its ``fp`` field)."""
    data = src.get("data")
    return TextFingerprint(data) if isinstance(data, str) else data_fingerprint(data)


class ElasticsearchAdapter(Adapter):
    """Records as documents, one index per entity type, written with ``_bulk``.

    Options (keyword arguments, or URL query parameters ``?id_format=base64url&refresh=wait_for``):

    * ``id_format``: ``"string"`` (default) or ``"base64url"`` for ``_id``. ES stores a base64url
      ``_id`` as its 16 decoded bytes and any other ``_id`` as UTF-8 plus a marker byte (37 bytes
      for the 36-char string), so base64url makes the ``_id`` terms and their index much smaller.
      The ``id`` field keeps the 36-char string either way (sorting, ranges, people).
    * ``index_prefix``: default ``"uf-"``.
    * ``refresh``: ``False`` (default, for throughput), ``True`` or ``"wait_for"``, passed to
      ``_bulk``. Reads by ID (``mget``) are real-time whatever this is; ``scan`` refreshes first.
    * ``timeout``: seconds per request (default 10), so a server that never answers is an error.
    * ``max_retries``: the client's own retries on connection errors and 429/502/503/504
      (default 0: write-through retries whole batches, and an audit should fail fast).
    * ``scan_page_size``: hits per scroll page (default 10,000, the most Elasticsearch
      returns by default: each page holds only ``id`` and ``fp``, about 1 MB, and fewer pages
      made the stand-in's scan 2.8x faster than pages of 1,000).
    * anything else (``api_key``, ``ca_certs``, ``verify_certs``, ...) goes to ``Elasticsearch()``.
    """

    name: ClassVar[str] = "elasticsearch"
    connection_errors: ClassVar[tuple[type[BaseException], ...]] = (elasticsearch.ConnectionError,)
    timeout_errors: ClassVar[tuple[type[BaseException], ...]] = (elasticsearch.ConnectionTimeout,)

    options: ClassVar[tuple[Option, ...]] = (
        Option("id_format", str, "string", "_id as the 36-char string, or base64url (22 chars: smaller _id terms); "
               "the id field keeps the 36-char string either way", choices=ID_FORMATS),
        Option("index_prefix", str, "uf-", "prefix of the per-type indices"),
        Option("refresh", str, None, "refresh parameter of _bulk: false (throughput), true or wait_for; reads by ID "
               "are real-time whatever it is, and scan refreshes first", shown_default="false",
               convert=lambda v: _refresh_value(v), expects="false, true or wait_for"),
        Option("timeout", float, 10.0, "seconds per request, so a server that never answers is an error",
               minimum=0, exclusive=True),
        Option("max_retries", int, 0, "the client's own retries on connection errors and 429/502/503/504 "
               "(write-through retries whole batches; an audit should fail fast)", minimum=0),
        BATCH_SIZE,
        Option("scan_page_size", int, 10_000, "hits per scroll page of a scan (id and fp only: about 1 MB)",
               minimum=1),
    )
    driver_keywords: ClassVar[str] = "`elasticsearch.Elasticsearch()` (e.g. `api_key`, `ca_certs`, `verify_certs`)"

    def __init__(self, url: str, **options: Any) -> None:
        parts = urlsplit(url)
        opts = self.parse_options(url, options)
        client_options = opts.driver_keywords
        super().__init__(url, batch_size=opts["batch_size"])
        self.id_format: str = opts["id_format"]
        self.index_prefix: str = opts["index_prefix"]
        if self.index_prefix:
            try:
                check_target(self.index_prefix + "x", "es-index", "index_prefix + 'x'")
            except TargetError as err:
                raise ConfigError(str(err)) from None
        self._refresh = opts["refresh"]
        self._page = opts["scan_page_size"]
        scheme = parts.scheme.lower()
        http_scheme = scheme.split("+", 1)[1] if "+" in scheme else "http"
        if http_scheme not in ("http", "https"):
            raise ConfigError(f"unsupported URL scheme {parts.scheme!r}: use elasticsearch+http or elasticsearch+https")
        host = parts.hostname or "localhost"
        netloc = f"[{host}]" if ":" in host else host
        netloc += f":{parts.port or 9200}"  # Elasticsearch's port, not the scheme's 80/443
        if parts.username is not None and "basic_auth" not in client_options:
            client_options["basic_auth"] = (unquote(parts.username), unquote(parts.password or ""))
        self._client = elasticsearch.Elasticsearch(
            urlunsplit((http_scheme, netloc, parts.path.rstrip("/"), "", "")),
            request_timeout=opts["timeout"],
            max_retries=opts["max_retries"],
            retry_on_timeout=False, **client_options)
        self._ready: set[str] = set()  # indices known to exist with our mapping

    @property
    def id_encoding(self) -> str:
        return self.id_format

    @property
    def client(self) -> elasticsearch.Elasticsearch:
        """The underlying ``Elasticsearch`` client, for queries of your own."""
        return self._client

    def index_name(self, entity_type: str) -> str:
        return self.index_prefix + entity_type

    def check_entity_type(self, entity_type: str) -> str:
        """ES index names are lowercase, at most 255 bytes, without ``\\ / * ? " < > | , # :``."""
        super().check_entity_type(entity_type)
        index = self.index_name(entity_type)
        try:
            check_target(index, "es-index", "index")
        except TargetError as err:
            raise ValidationError(f"entity type {entity_type!r} is not accepted by elasticsearch: {err}") from None
        return entity_type

    def _doc_id(self, ident: uuid.UUID) -> str:
        """``_id`` of the document for ``ident``."""
        return str(ident) if self.id_format == "string" else _base64url(ident)

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

    # -- hooks -----------------------------------------------------------------------------------
    def _ensure_index(self, entity_type: str) -> None:
        """Create the index with our mapping on first write (ES would otherwise guess one); an
        existing one must be ours, for this prefix and type (see the module doc)."""
        index = self.index_name(entity_type)
        if index in self._ready:
            return
        try:
            self._client.indices.create(index=index, mappings={
                **MAPPINGS, "_meta": {"uuid_forge": {"index_prefix": self.index_prefix, "entity_type": entity_type}}})
        except elasticsearch.BadRequestError as err:
            if err.error != "resource_already_exists_exception":
                raise
            self._check_index(entity_type)
        self._ready.add(index)

    def _check_index(self, entity_type: str) -> None:
        """Raise ValidationError unless the index of ``entity_type`` is ours for this prefix and
        type, or does not exist (yet)."""
        index = self.index_name(entity_type)
        if index in self._ready:
            return
        try:
            found = self._client.indices.get_mapping(index=index).body
        except elasticsearch.NotFoundError:
            return
        problem = _not_ours(self.index_prefix, entity_type, next(iter(found.values()), {}).get("mappings") or {})
        if problem:
            raise ValidationError(f"index {index!r} is not the index of entity type {entity_type!r} with index_prefix "
                                  f"{self.index_prefix!r}: {problem}; refused (choose an index_prefix whose names "
                                  "cannot overlap another's)")
        self._ready.add(index)

    def _put(self, entity_type: str, records: list[Record]) -> None:
        index = self.index_name(entity_type)
        self._ensure_index(entity_type)
        # One NDJSON text with the canonical JSON embedded as is: no parse and re-serialise per record.
        body = "".join([
            f'{{"index":{{"_id":"{self._doc_id(r.id)}"}}}}\n{{"id":"{r.id}","fp":"{r.fingerprint}",'
            f'"key":{_key_value(r)},"data":{_json_value(r.data_json)}}}\n'
            for r in records])
        resp = self._client.bulk(operations=body, index=index, refresh=self._refresh,  # type: ignore[arg-type]
                                 filter_path="errors,items.*.error")  # a str body is sent as is
        if resp.get("errors"):
            errors = [op["error"] for item in resp.get("items", ()) for op in item.values() if "error" in op]
            if errors:
                self._raise_item_error(f"bulk index into {index}", errors, len(records))

    def _get(self, entity_type: str, ids: list[uuid.UUID]) -> Iterable[Record]:
        # mget is real-time: it sees acknowledged writes before any refresh.
        doc_ids = list(map(str if self.id_format == "string" else _base64url, ids))
        resp = self._client.mget(index=self.index_name(entity_type), ids=doc_ids)
        docs = resp["docs"]
        if len(docs) != len(ids):
            raise StoreError(f"{self.url()}: mget returned {len(docs)} docs for {len(ids)} ids", store=self.url())
        found = []
        for ident, doc in zip(ids, docs):  # mget answers in request order
            if doc.get("found"):
                src = doc["_source"]
                data, key = src.get("data"), src.get("key")
                # the fingerprint of the data read (its text where kept as text), never the "fp" field
                fp = TextFingerprint(data) if type(data) is str else None

                def make(data: Any = data, key: Any = key, fp: Any = fp, ident: uuid.UUID = ident) -> Record:
                    if type(data) is str or type(key) is str:  # see _json_value
                        data, key = _from_source(data), _from_source(key)
                    return Record(entity_type, ident, data, key, fingerprint=fp)

                found.append(self._read_record(entity_type, ident, make))
            elif "error" in doc and doc["error"].get("type") != "index_not_found_exception":
                self._raise_item_error("mget", [doc["error"]], len(ids))
        return found

    def _delete_raw(self, entity_type: str, raws: list[str]) -> int:
        """Delete documents by the exact ``_id`` a scan reported (a wrongly encoded one)."""
        index = self.index_name(entity_type)
        self._check_index(entity_type)
        foreign = [raw for raw in raws if isinstance(classify(raw, self.id_format, versions=self.id_versions),
                                                    ForeignEntry)]
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

    def _scan(self, entity_type: str, partition: Partition) -> Iterator[ScanItem]:
        """Every document whose ``id`` keyword falls in ``partition`` (a range filter), and every
        document with no ``id`` field at all, in one scroll in ``_doc`` order.

        The audit compares by ID, not in order, so nothing is sorted: ``_doc`` order is the cheapest
        way Elasticsearch has to read a result set, and ``helpers.scan`` clears the scroll when the
        scan ends or is abandoned. On the noida-db stand-in this was 3-6x faster than the earlier
        ``search_after`` pages sorted by ``id`` followed by a second query for documents lacking
        ``id``: each query cost it a pass over the whole index.

        Search is near-real-time: writes are invisible until a refresh (about 1 s later). An
        audit that just wrote must see its own writes, so the scan refreshes the index once first.
        """
        index = self.index_name(entity_type)
        self._check_index(entity_type)
        self._client.indices.refresh(index=index, ignore_unavailable=True)
        bounds = {}
        if partition.index > 0:  # partition 0 has no lower bound: a junk id below "000..." is still seen
            bounds["gte"] = str(partition.lo_uuid)
        if partition.hi_uuid is not None:
            bounds["lt"] = str(partition.hi_uuid)
        in_range = {"range": {"id": bounds}} if bounds else {"exists": {"field": "id"}}
        no_id = {"bool": {"must_not": {"exists": {"field": "id"}}}}
        hits = helpers.scan(self._client, index=index, size=self._page, ignore_unavailable=True,
                            query={"query": {"bool": {"should": [in_range, no_id], "minimum_should_match": 1}},
                                   "_source": ["id", "data"]})
        for hit in hits:
            src = hit.get("_source") or {}
            item = self._classify_hit(hit["_id"], src)
            if "id" not in src:
                # No id field (written by something else): it lands in the partition its _id decodes
                # into; one that is not ours at all in the first partition, so it is reported once.
                if isinstance(item, ForeignEntry):
                    if partition.index == 0:
                        yield item, None
                elif isinstance(item, MalformedID) and item.id is not None and partition.contains(item.id):
                    yield item, _data_fp(src)
                continue
            # With an id field, exactly one partition's range query finds the document: the one whose
            # string range holds that text, which for a non-canonical id field may not be the one its
            # UUID falls in. It is reported there, once, with the UUID as ``id`` only when they agree.
            if isinstance(item, MalformedID) and item.id is not None and not partition.contains(item.id):
                item = MalformedID(raw=item.raw, reason=f"{item.reason} ({item.id})")
            yield item, (None if isinstance(item, ForeignEntry) else _data_fp(src))

    def _classify_hit(self, raw: str, src: dict[str, Any]) -> uuid.UUID | MalformedID | ForeignEntry:
        """A document's ID: its ``_id`` decides whether it is ours (uuid_forge.classify); the
        ``id`` field, when present, must name the same UUID (lowercase 36-char when all is well)."""
        by_id = classify(raw, self.id_format, versions=self.id_versions, where="_id")
        if isinstance(by_id, ForeignEntry):
            return by_id
        ident = by_id if isinstance(by_id, uuid.UUID) else by_id.id
        assert ident is not None
        has_field, field = "id" in src, src.get("id")
        if has_field and field == str(ident):
            if isinstance(by_id, MalformedID):
                return MalformedID(raw=raw, reason=f"_id {raw!r} is not the {self.id_format} form of its id field "
                                                   f"{field}", id=ident)
            return ident
        parsed = parse_id(field) if isinstance(field, str) else None
        if has_field and (parsed is None or parsed[0] != ident) and isinstance(by_id, MalformedID):
            # neither part is ours in the right form, and they disagree: nothing says it is ours
            return ForeignEntry(raw, "_id and id field name different IDs: not ours, left alone")
        mine = classify_uuid(ident, raw=raw, versions=self.id_versions, where="_id")
        if isinstance(mine, ForeignEntry):
            return mine
        if not has_field:
            reason = "document has no id field" + ("" if isinstance(by_id, uuid.UUID) else f"; {by_id.reason}")
        else:
            reason = f"id field {field!r} is not a lowercase 36-char UUID string naming its _id"
        return MalformedID(raw=raw, reason=reason, id=ident)

    def _drop(self, entity_type: str) -> None:
        """Delete the whole index: one request, where deleting by ID would first read every ID."""
        index = self.index_name(entity_type)
        self._check_index(entity_type)  # never another prefix's or application's index
        self._client.indices.delete(index=index, ignore_unavailable=True)
        self._ready.discard(index)

    def _entity_types(self) -> Iterable[str]:
        """Indices under the prefix that were made for this prefix (their marker), so another
        prefix's or application's index is never taken for a type of ours."""
        found: dict[str, Any] = self._client.indices.get_mapping(index=self.index_prefix + "*").body
        for index, body in found.items():
            name = index[len(self.index_prefix):]
            try:
                self.check_entity_type(name)
            except ValidationError:
                continue  # not one of ours
            if not _not_ours(self.index_prefix, name, (body or {}).get("mappings") or {}):
                yield name

    def _ping(self) -> None:
        self._client.info()  # unlike ping(), raises the real error

    def _close(self) -> None:
        self._client.close()


def _base64url(ident: uuid.UUID) -> str:
    return encode(ident, "base64url")  # type: ignore[return-value]


def _not_ours(prefix: str, entity_type: str, mapping: dict[str, Any]) -> str | None:
    """Why an index with ``mapping`` is not ours for ``prefix`` + ``entity_type`` (None: it is)."""
    meta = (mapping.get("_meta") or {}).get("uuid_forge")
    if isinstance(meta, dict):
        if meta.get("index_prefix") == prefix and meta.get("entity_type") == entity_type:
            return None
        return (f"it was made for entity type {meta.get('entity_type')!r} with index_prefix "
                f"{meta.get('index_prefix')!r}")
    props = mapping.get("properties") or {}
    if "id" in props and "fp" in props:
        return None  # made before the marker existed: our fields
    return "it was not made by uuid-forge"


def _refresh_value(value: bool | str | None) -> str | None:
    """The ``refresh`` parameter for ``_bulk``, or None to leave it out."""
    if value in (None, False, "false", "0", ""):
        return None
    if value in (True, "true", "1"):
        return "true"
    if value == "wait_for":
        return "wait_for"
    raise ConfigError(f"refresh must be false, true or 'wait_for', got {value!r}")


