"""The Elasticsearch adapter against a server (the noida-db stand-in unless a URL is given).

Each test works in its own index (``uf-t<random>``) and deletes that index afterwards; nothing
else on the server is touched. Checks of what is stored go around the adapter, with a plain
``Elasticsearch`` client.

Where noida-db 0.2.3 differs from Elasticsearch 8 (checked while writing the adapter): integers
beyond 64 bits in ``_source`` come back as floats (ES keeps ``_source`` verbatim); a ``_bulk``
delete of a missing document sets ``errors: true`` (ES: false, the item is a 404 ``not_found``);
the index name ``..`` is accepted. Everything the adapter relies on works: ``dynamic: strict``,
``enabled: false`` objects, ``range`` on a keyword, ``bool`` ``should``/``must_not``, ``_source``
filtering, ``exists``, scroll, real-time ``mget``, ``refresh`` on ``_bulk`` and ``_refresh``.
"""

from __future__ import annotations

import base64
import datetime as dt
import decimal
import http.server
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from tests.scaffold import OneTypeContract, SilentServer, driver_missing

elasticsearch = pytest.importorskip("elasticsearch", reason=driver_missing("elasticsearch"))

from uuid_forge.adapters.elasticsearch import ElasticsearchAdapter

from uuid_forge import (
    ConfigError,
    Record,
    StoreError,
    StoreTimeoutError,
    StoreUnavailableError,
    ValidationError,
    open_store,
)
from uuid_forge.contract import Adapter
from uuid_forge.record import ForeignEntry, MalformedID, Partition
from uuid_forge.testing import AdapterContract
from uuid_forge.testing.contract import sample_records

# Index names Elasticsearch refuses (with the default prefix "uf-" where it matters): uppercase,
# wildcard, leading underscore, over 255 bytes; plus the contract's generic ones.
ES_INVALID = ("Users", "a*b", "_x", "x" * 256, "a:b", "a,b", "a#b", "a?b", 'a"b', "a<b", "a|b")


def _b64(ident: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(ident.bytes).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def raw(es_client: Any) -> Any:
    """A plain elasticsearch-py client: checks go around the adapter."""
    return es_client


def _drop(raw: Any, index: str) -> None:
    raw.options(ignore_status=404).indices.delete(index=index)


class _ESContract(AdapterContract):
    invalid_entity_types = AdapterContract.invalid_entity_types + ES_INVALID
    query = ""

    @pytest.fixture
    def store(self, elasticsearch_url: str) -> Iterator[Adapter]:
        with open_store(elasticsearch_url + self.query) as s:
            yield s

    @pytest.fixture(autouse=True)
    def _raw(self, raw: Any) -> None:
        self.raw = raw

    def cleanup(self, store: Adapter, entity_type: str) -> None:
        _drop(self.raw, "uf-" + entity_type)  # planted documents go too

    def doc_id(self, ident: uuid.UUID) -> str:
        raise NotImplementedError

    def wrong_id(self, ident: uuid.UUID) -> str:
        raise NotImplementedError

    def assert_stored_natively(self, store: Adapter, record: Record) -> None:
        """The fields layout: the entity's fields at top level plus the uf_id keyword; nothing else."""
        index = "uf-" + record.entity_type
        doc = self.raw.get(index=index, id=self.doc_id(record.id))
        assert doc["_id"] == self.doc_id(record.id)
        assert doc["_source"] == {**record.json_data, "uf_id": str(record.id)}  # no fp, key or data envelope
        assert not self.raw.exists(index=index, id=self.wrong_id(record.id))
        mapping = self.raw.indices.get_mapping(index=index)[index]["mappings"]
        assert mapping.get("dynamic") in (None, True, "true")  # the entity's fields are mapped dynamically
        assert mapping["properties"]["uf_id"] == {"type": "keyword"}
        assert mapping["properties"]["name"]["type"] == "text"  # indexed: searchable
        self.raw.indices.refresh(index=index)  # search is near-real-time
        hits = self.raw.search(index=index, query={"match": {"name": record.data["name"]}})["hits"]["hits"]
        assert [h["_id"] for h in hits] == [self.doc_id(record.id)]

    def test_round_trip(self, store: Adapter, etype: str) -> None:
        """The contract's round trip, with ``nested.b`` an array of one kind: Elasticsearch maps
        each field to one type, so ``[1, 2, {"c": "d"}]`` is refused by the server (see
        test_unmappable_data_is_refused_by_the_server), as for any document of your own."""
        data = {"email": "zoë@example.com", "name": "Zoë 東京", "n": 2**70, "ratio": 0.1, "ok": True,
                "none": None, "nested": {"b": [{"c": "d"}, {"c": "e"}], "a": 1.5, "ints": [1, 2]},
                "when": dt.datetime(2024, 5, 6, 7, 8, 9, 123, tzinfo=dt.UTC),
                "day": dt.date(2024, 1, 2), "price": decimal.Decimal("12.50")}
        record = Record(etype, uuid.uuid5(uuid.NAMESPACE_URL, etype), data, {"email": "zoë@example.com"})
        assert store.put_many([record]) == 1
        back = store.get_many(etype, [record.id])[record.id]
        assert back.key is None  # the fields layout keeps no key
        assert back.fingerprint == record.fingerprint
        assert back.data_json == record.data_json
        assert dict(store.scan(etype)) == {record.id: record.fingerprint}

    def plant_malformed(self, store: Adapter, entity_type: str, ident: uuid.UUID) -> bool:
        self.raw.index(index="uf-" + entity_type, id=self.wrong_id(ident), document={"uf_id": str(ident), "x": 1})
        return True

    # -- ownership (issue 18): another application's field in our document ----------------------
    def index_of(self, entity_type: str) -> str:
        return "uf-" + entity_type

    def add_foreign_field(self, store: Adapter, entity_type: str, ident: uuid.UUID, name: str, value: str) -> bool:
        self.raw.update(index=self.index_of(entity_type), id=self.doc_id(ident), doc={name: value})
        return True

    def read_foreign_field(self, store: Adapter, entity_type: str, ident: uuid.UUID, name: str) -> Any:
        return self.raw.get(index=self.index_of(entity_type), id=self.doc_id(ident))["_source"].get(name)


class TestElasticsearchStringId(_ESContract):
    def doc_id(self, ident: uuid.UUID) -> str:
        return str(ident)

    def wrong_id(self, ident: uuid.UUID) -> str:
        return _b64(ident)

    def test_id_encoding(self, store: Adapter) -> None:
        assert store.id_encoding == "string"


class TestElasticsearchBase64urlId(_ESContract):
    query = "?id_format=base64url"

    def doc_id(self, ident: uuid.UUID) -> str:
        return _b64(ident)

    def wrong_id(self, ident: uuid.UUID) -> str:
        return str(ident)

    def test_id_encoding(self, store: Adapter) -> None:
        assert store.id_encoding == "base64url"


class TestElasticsearchOwnIndex(OneTypeContract, _ESContract):
    """Your own index (``index=``, ``entity_type=user``), fresh for each test: drop keeps the index."""

    @pytest.fixture
    def store(self, elasticsearch_url: str) -> Iterator[Adapter]:
        self.index = f"own-{uuid.uuid4().hex[:10]}"
        try:
            with open_store(elasticsearch_url, index=self.index, entity_type=self.entity_type) as s:
                yield s
        finally:
            _drop(self.raw, self.index)

    def cleanup(self, store: Adapter, entity_type: str) -> None:
        pass  # the store fixture deletes the whole index

    def doc_id(self, ident: uuid.UUID) -> str:
        return str(ident)

    def wrong_id(self, ident: uuid.UUID) -> str:
        return _b64(ident)

    def assert_stored_natively(self, store: Adapter, record: Record) -> None:
        doc = self.raw.get(index=self.index, id=str(record.id))
        assert doc["_source"] == {**record.json_data, "uf_id": str(record.id)}
        assert not self.raw.indices.exists(index="uf-" + record.entity_type)  # no per-type index beside it

    def plant_malformed(self, store: Adapter, entity_type: str, ident: uuid.UUID) -> bool:
        self.raw.index(index=self.index, id=_b64(ident), document={"uf_id": str(ident), "x": 1})
        return True

    def plant_foreign(self, store: Adapter, entity_type: str, name: str, data: dict[str, object]) -> bool:
        """The user's application's document, without uuid-forge's mark (uf_id)."""
        self.raw.index(index=self.index, id=name, document=data, refresh=True)
        return True

    def assert_container_kept(self, store: Adapter) -> None:
        assert self.raw.indices.exists(index=self.index)

    def index_of(self, entity_type: str) -> str:
        return self.index


# -- store-specific behaviour --------------------------------------------------------------------

@pytest.fixture
def store(elasticsearch_url: str) -> Iterator[ElasticsearchAdapter]:
    with open_store(elasticsearch_url) as s:
        assert isinstance(s, ElasticsearchAdapter)
        yield s


@pytest.fixture
def etype(raw: Any) -> Iterator[str]:
    name = f"t{uuid.uuid4().hex[:12]}"
    yield name
    _drop(raw, "uf-" + name)


@pytest.mark.parametrize("bad", ["Users", "a*b", "_x", "x" * 256])
def test_es_index_rules_reject_before_any_write(store: ElasticsearchAdapter, raw: Any, bad: str) -> None:
    with pytest.raises(ValidationError, match="is not accepted by elasticsearch"):
        store.put_many([Record(bad, uuid.uuid4(), {"x": 1})])
    assert not raw.indices.exists(index="uf-" + bad[:250])


def test_index_name_over_255_bytes_is_rejected_by_the_es_rule(elasticsearch_url: str, raw: Any) -> None:
    """A long prefix pushes a valid entity type past ES's 255-byte limit: caught before writing."""
    prefix = "p" * 200 + "-"
    with open_store(elasticsearch_url, index_prefix=prefix) as s:
        with pytest.raises(ValidationError, match="at most 255 bytes"):
            s.check_entity_type("a" * 60)  # 261 bytes with the prefix
        assert s.check_entity_type("a" * 54) == "a" * 54  # exactly 255 bytes is fine
    with pytest.raises(elasticsearch.BadRequestError):  # and the server agrees
        raw.indices.create(index=prefix + "a" * 55)


def test_server_rejects_what_we_reject(raw: Any) -> None:
    for bad in ("Users", "a*b", "a:b", "a,b"):
        with pytest.raises(elasticsearch.BadRequestError):
            raw.indices.create(index="uf-" + bad)
    with pytest.raises(elasticsearch.BadRequestError):
        raw.indices.create(index="_x")


@pytest.mark.parametrize("prefix", ["UF-", "a*", "_"])
def test_bad_index_prefix_is_a_config_error(elasticsearch_url: str, prefix: str) -> None:
    with pytest.raises(ConfigError, match="es-index"):
        open_store(elasticsearch_url, index_prefix=prefix)


def test_url_options(elasticsearch_url: str) -> None:
    with open_store(elasticsearch_url + "?id_format=base64url&index_prefix=x-&refresh=wait_for&timeout=3") as s:
        assert (s.id_encoding, s.prefix, s.index_name("user")) == ("base64url", "x-", "x-user")
    with pytest.raises(ConfigError, match="unknown query parameter 'colour'"):
        open_store(elasticsearch_url + "?colour=red")
    with pytest.raises(ConfigError, match="id_format"):
        open_store(elasticsearch_url, id_format="hex")
    with pytest.raises(ConfigError, match="refresh"):
        open_store(elasticsearch_url + "?refresh=sometimes")


def test_plain_elasticsearch_scheme_means_http(elasticsearch_url: str) -> None:
    with open_store(elasticsearch_url.replace("elasticsearch+http://", "elasticsearch://")) as s:
        s.ping()


def test_refresh_option_makes_writes_searchable_at_once(elasticsearch_url: str, raw: Any, etype: str) -> None:
    with open_store(elasticsearch_url, refresh="wait_for") as s:
        s.put_many(sample_records(etype, 7))
    assert raw.count(index="uf-" + etype)["count"] == 7


def test_numbers_a_double_cannot_hold_are_kept_as_text(store: ElasticsearchAdapter, raw: Any, etype: str) -> None:
    """JSON layers outside Python (and the stand-in) turn integers beyond 64 bits and 20-digit
    decimals into doubles: such numbers are written as their text, listed in uf_numbers."""
    plain = Record(etype, uuid.uuid4(), {"m": 2**62, "d": decimal.Decimal("12.50")})
    # (a field Elasticsearch maps as long refuses 2**70 as text or number alike: separate fields here)
    exact = Record(etype, uuid.uuid4(), {"n": 2**70, "deep": {"x/y": [decimal.Decimal("12345678901234567890.12")]}})
    store.put_many([plain, exact])
    src = {d["_id"]: d["_source"] for d in raw.mget(index="uf-" + etype, ids=[str(plain.id), str(exact.id)])["docs"]}
    assert src[str(plain.id)] == {"m": 2**62, "d": 12.5, "uf_id": str(plain.id)}  # no uf_numbers where none is needed
    assert src[str(exact.id)] == {"n": "1180591620717411303424", "deep": {"x/y": ["12345678901234567890.12"]},
                                  "uf_numbers": ["/deep/x~1y/0", "/n"], "uf_id": str(exact.id)}
    got = store.get_many(etype, [plain.id, exact.id])
    assert got[exact.id].data == {"n": 2**70, "deep": {"x/y": [decimal.Decimal("12345678901234567890.12")]}}
    assert got[exact.id].fingerprint == exact.fingerprint and got[plain.id].fingerprint == plain.fingerprint
    assert dict(store.scan(etype)) == {plain.id: plain.fingerprint, exact.id: exact.fingerprint}


def test_numbers_field_empty_writes_numbers_as_numbers(elasticsearch_url: str, raw: Any, etype: str) -> None:
    with open_store(elasticsearch_url, numbers_field="") as s:
        record = Record(etype, uuid.uuid4(), {"n": 2**70})
        s.put_many([record])
    doc = raw.get(index="uf-" + etype, id=str(record.id))["_source"]
    assert set(doc) == {"n", "uf_id"} and not isinstance(doc["n"], str)


def test_scan_reports_documents_without_a_proper_id_field(store: ElasticsearchAdapter, raw: Any, etype: str) -> None:
    good = sample_records(etype, 3)
    store.put_many(good)
    # "E7CA..." sorts between "9..." and "a...", so the string range and the UUID disagree on partitions
    seed, junk = uuid.uuid5(uuid.NAMESPACE_DNS, etype), uuid.UUID("e7ca75a0-99ce-58fd-884e-10e9b67c976c")  # v5: ours
    index = "uf-" + etype
    raw.index(index=index, id=str(seed), document={"name": "seed era"})  # no uf_id field: ours by its _id
    raw.index(index=index, id=str(junk), document={"uf_id": str(junk).upper(), "name": "junk"})
    raw.index(index=index, id="not-a-uuid", document={"name": "another app"})
    items = list(store.scan(etype, include_malformed=True))
    bad = {m.raw: (m, fp) for m, fp in items if isinstance(m, MalformedID)}
    assert set(bad) == {str(junk)}
    assert bad[str(junk)][0].id == junk and "lowercase" in bad[str(junk)][0].reason
    # issue 10: an _id that is no UUID of ours in any form is another application's document
    assert [m.raw for m, _ in items if isinstance(m, ForeignEntry)] == ["not-a-uuid"]
    scanned = dict(store.scan(etype))
    assert sorted(scanned) == sorted([*(r.id for r in good), seed])
    assert scanned[seed] == Record(etype, seed, {"name": "seed era"}).fingerprint  # from its data
    # across partitions each one is reported once, whatever the string order of a junk id field
    for count in (2, 3, 5, 16):
        seen = [i for p in Partition().split(count) for i, _ in store.scan(etype, p, include_malformed=True)]
        assert sorted(str(getattr(i, "raw", i)) for i in seen) == sorted(
            [str(junk), "not-a-uuid", str(seed), *(str(r.id) for r in good)])


def test_scan_reads_every_scroll_page(elasticsearch_url: str, etype: str) -> None:
    records = sample_records(etype, 25)
    with open_store(elasticsearch_url, scan_page_size=4) as s:
        s.put_many(records)
        seen = [i for i, _ in s.scan(etype)]  # 7 pages of at most 4
        assert len(seen) == 25 and set(seen) == {r.id for r in records}


def test_bulk_item_failure_raises_with_the_reason(store: ElasticsearchAdapter, raw: Any, etype: str) -> None:
    # the user's index maps "name" as a number: no record fits, every bulk item fails
    raw.indices.create(index="uf-" + etype, mappings={"properties": {"name": {"type": "long"}}})
    with pytest.raises(StoreError, match=r"3 of 3 items failed; first: \w+") as info:
        store.put_many(sample_records(etype, 3))
    assert not isinstance(info.value, StoreUnavailableError)


def test_entity_types_only_lists_this_prefix(elasticsearch_url: str, raw: Any, etype: str) -> None:
    with open_store(elasticsearch_url, index_prefix="other-") as s:
        s.put_many(sample_records(etype, 1))
        try:
            assert etype in s.entity_types()
            with open_store(elasticsearch_url) as default:
                assert etype not in default.entity_types()
        finally:
            _drop(raw, "other-" + etype)



@pytest.mark.filterwarnings("ignore::uuid_forge.options.OptionDeprecationWarning")
def test_prefix_and_index_prefix_share_the_indices_and_the_owners_record(elasticsearch_url: str, raw: Any,
                                                                         etype: str) -> None:
    """The owners record in ``_meta`` keeps the field name earlier versions wrote (``index_prefix``),
    so an index made under either option name belongs to both spellings of the same prefix."""
    try:
        with open_store(elasticsearch_url, prefix="new-") as s:
            s.put_many(sample_records(etype, 2))
        meta = raw.indices.get_mapping(index="new-" + etype)["new-" + etype]["mappings"]["_meta"]["uuid_forge"]
        assert meta == {"index_prefix": "new-", "entity_type": etype}
        with open_store(elasticsearch_url, index_prefix="new-") as old:
            assert etype in old.entity_types() and old.count(etype) == 2
            old.put_many(sample_records(etype, 3))
        with open_store(elasticsearch_url + "?prefix=ne") as other:  # "ne" + "w-<type>" names the same index
            refused = f"belongs to entity type '{etype}' with prefix 'new-'"
            pytest.raises(ValidationError, lambda: list(other.scan("w-" + etype))).match(refused)
    finally:
        _drop(raw, "new-" + etype)

# -- failures: nothing listening, nothing answering, basic auth, busy ----------------------------

def test_connection_refused_is_unavailable() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with open_store(f"elasticsearch+http://127.0.0.1:{port}", timeout=2) as s:
        with pytest.raises(StoreUnavailableError) as info:
            s.ping()
        assert not isinstance(info.value, StoreTimeoutError)


def test_server_that_never_answers_times_out(silent_server: SilentServer) -> None:
    url = f"elasticsearch+http://127.0.0.1:{silent_server.port}"
    with open_store(url, timeout=0.5) as s:
        with pytest.raises(StoreTimeoutError):
            s.ping()
        with pytest.raises(StoreTimeoutError):
            s.put_many(sample_records("silent", 2))


class _FakeES(http.server.BaseHTTPRequestHandler):
    """Answers every request with ``status`` and an ES-looking body; remembers the headers."""

    status = 200
    seen: ClassVar[list[dict[str, str]]] = []

    def _answer(self) -> None:
        type(self).seen.append({k.lower(): v for k, v in self.headers.items()})
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        body = json.dumps({"version": {"number": "8.15.0"}, "tagline": "You Know, for Search"}
                          if self.status == 200 else {"error": {"type": "x", "reason": "busy"}, "status": self.status})
        self.send_response(self.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Elastic-Product", "Elasticsearch")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body.encode())

    do_GET = do_PUT = do_POST = do_HEAD = _answer

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def fake_es() -> Iterator[tuple[str, type[_FakeES]]]:
    handler = type("Handler", (_FakeES,), {"seen": [], "status": 200})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"127.0.0.1:{server.server_address[1]}", handler
    server.shutdown()
    server.server_close()


def test_basic_auth_from_url_and_masked(fake_es: tuple[str, type[_FakeES]]) -> None:
    address, handler = fake_es
    with open_store(f"elasticsearch+http://elastic:s%40cret@{address}") as s:
        s.ping()
        assert "s%40cret" not in s.url() and "***" in s.url()
    expected = "Basic " + base64.b64encode(b"elastic:s@cret").decode()
    assert handler.seen[-1].get("authorization") == expected


@pytest.mark.parametrize("status", [429, 503])
def test_busy_server_is_unavailable_so_write_through_retries(fake_es: tuple[str, type[_FakeES]], status: int) -> None:
    address, handler = fake_es
    handler.status = status
    with open_store(f"elasticsearch+http://{address}") as s, \
            pytest.raises(StoreUnavailableError, match="busy or unavailable"):
        s.put_many(sample_records("busy", 2))


def test_client_error_is_a_plain_store_error(fake_es: tuple[str, type[_FakeES]]) -> None:
    address, handler = fake_es
    handler.status = 400
    with open_store(f"elasticsearch+http://{address}") as s:
        with pytest.raises(StoreError) as info:
            s.get_many("user", [uuid.uuid4()])
        assert not isinstance(info.value, StoreUnavailableError)
