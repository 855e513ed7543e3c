"""The Redis adapter against a real server (db 15 of the shared one by default).

Every test works under its own entity type (or key prefix) and deletes only its own keys: the
server is shared, so nothing here flushes a database.
"""

from __future__ import annotations

import base64
import json
import socket
import threading
import uuid
from collections.abc import Iterator
from typing import Any, ClassVar

import pytest

from tests.scaffold import SilentServer, driver_missing

redis = pytest.importorskip("redis", reason=driver_missing("redis"))

from uuid_forge.adapters.redis import RedisAdapter

from uuid_forge import Record, StoreTimeoutError, StoreUnavailableError, ValidationError, open_store
from uuid_forge.contract import Adapter
from uuid_forge.record import ForeignEntry, MalformedID, Partition
from uuid_forge.testing import AdapterContract
from uuid_forge.testing.contract import sample_records


def _b64(ident: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(ident.bytes).rstrip(b"=").decode()


@pytest.fixture(scope="module")
def raw(redis_client: Any) -> Any:
    """A plain redis-py client: checks go around the adapter."""
    return redis_client


def _forget(raw: redis.Redis, prefix: str, entity_type: str) -> None:
    """Delete every key of one entity type (planted ones too) and its entry in the types set."""
    keys = list(raw.scan_iter(match=f"{prefix}{entity_type}:*", count=1000))
    if keys:
        raw.unlink(*keys)
    raw.srem(f"{prefix}uf:types", entity_type)


class _RedisContract(AdapterContract):
    options: ClassVar[dict[str, str]] = {}
    #: the keys of one type, as SCAN MATCH (cleanup) and one record's key
    pattern: ClassVar[str] = "{type}:{id}"

    @pytest.fixture
    def store(self, redis_url: str) -> Iterator[Adapter]:
        with open_store(redis_url, **self.options) as s:
            yield s

    @pytest.fixture(autouse=True)
    def _raw(self, raw: redis.Redis) -> None:
        self.raw = raw

    def cleanup(self, store: Adapter, entity_type: str) -> None:
        keys = list(self.raw.scan_iter(match=self.pattern.format(type=entity_type, id="*"), count=1000))
        if keys:
            self.raw.unlink(*keys)
        self.raw.srem("uf:types", entity_type)

    def id_text(self, ident: uuid.UUID) -> str:
        return _b64(ident) if self.options.get("id_format") == "base64url" else str(ident)

    def expected_key(self, record: Record) -> str:
        return self.pattern.format(type=record.entity_type, id=self.id_text(record.id))

    def assert_stored_natively(self, store: Adapter, record: Record) -> None:
        """The default layout: the data's canonical JSON as a plain string value, read with GET."""
        key = self.expected_key(record)
        assert self.raw.type(key) == b"string"
        assert self.raw.get(key).decode() == record.data_json
        assert json.loads(self.raw.get(key)) == record.json_data
        assert self.raw.ttl(key) == -1  # no TTL unless asked for
        assert self.raw.sismember("uf:types", record.entity_type)

    def plant_malformed(self, store: Adapter, entity_type: str, ident: uuid.UUID) -> bool:
        """The ID in upper case (base64url stores: the string form) under the type's pattern."""
        wrong = str(ident) if self.options.get("id_format") == "base64url" else str(ident).upper()
        self.raw.set(self.pattern.format(type=entity_type, id=wrong), "{}")
        return True

    def plant_foreign(self, store: Adapter, entity_type: str, name: str, data: dict[str, object]) -> bool:
        """Another application's key under the same pattern: a database without a prefix of ours is shared."""
        # a UUID name in this store's form (the look-alike), a token as it is
        key = self.pattern.format(type=entity_type, id=self.id_text(uuid.UUID(name)) if len(name) == 36 else name)
        if self.options.get("layout") == "envelope":  # our own shape, imitated: data and a fingerprint, no key
            self.raw.hset(key, mapping={"fp": "0" * 32, "data": json.dumps(data)})
        elif self.options.get("layout") == "hash":
            self.raw.hset(key, mapping={k: json.dumps(v) for k, v in data.items()})
        else:
            self.raw.set(key, json.dumps(data))
        return True


    # -- ownership (issue 18): another application's field in our value (layout=data: a JSON member)
    def key_of(self, entity_type: str, ident: uuid.UUID) -> str:
        return self.pattern.format(type=entity_type, id=self.id_text(ident))

    def add_foreign_field(self, store: Adapter, entity_type: str, ident: uuid.UUID, name: str, value: str) -> bool:
        key = self.key_of(entity_type, ident)
        self.raw.set(key, json.dumps({**json.loads(self.raw.get(key)), name: value}))
        return True

    def read_foreign_field(self, store: Adapter, entity_type: str, ident: uuid.UUID, name: str) -> Any:
        return json.loads(self.raw.get(self.key_of(entity_type, ident))).get(name)


class TestRedisStringKeys(_RedisContract):
    def expected_key(self, record: Record) -> str:
        return f"{record.entity_type}:{record.id}"  # exactly `user:7570842a-...`, as DESIGN.md says


class TestRedisBase64urlKeys(_RedisContract):
    options: ClassVar[dict[str, str]] = {"id_format": "base64url"}

    def expected_key(self, record: Record) -> str:
        return f"{record.entity_type}:{_b64(record.id)}"


class TestRedisKeyPattern(_RedisContract):
    """The user's key pattern, with the ID in the middle of the key."""

    options: ClassVar[dict[str, str]] = {"key_pattern": "cache/{type}:{id}:v1"}
    pattern: ClassVar[str] = "cache/{type}:{id}:v1"


class TestRedisHash(_RedisContract):
    options: ClassVar[dict[str, str]] = {"layout": "hash"}

    def assert_stored_natively(self, store: Adapter, record: Record) -> None:
        """A flat hash: one field per data field, each value that field's JSON (numbers stay numbers)."""
        key = self.expected_key(record)
        assert self.raw.type(key) == b"hash"
        held = {k.decode(): json.loads(v) for k, v in self.raw.hgetall(key).items()}
        assert held == record.json_data
        assert self.raw.hget(key, "n") == str(record.data["n"]).encode()  # 0, not "0"
        assert self.raw.hget(key, "name") == json.dumps(record.data["name"]).encode()
        assert self.raw.ttl(key) == -1

    def plant_malformed(self, store: Adapter, entity_type: str, ident: uuid.UUID) -> bool:
        self.raw.hset(f"{entity_type}:{str(ident).upper()}", mapping={"n": "1"})
        return True

    def add_foreign_field(self, store: Adapter, entity_type: str, ident: uuid.UUID, name: str, value: str) -> bool:
        """A hash field of its own, its value JSON like ours."""
        self.raw.hset(self.key_of(entity_type, ident), name, json.dumps(value))
        return True

    def read_foreign_field(self, store: Adapter, entity_type: str, ident: uuid.UUID, name: str) -> Any:
        held = self.raw.hget(self.key_of(entity_type, ident), name)
        return None if held is None else json.loads(held)


class TestRedisEnvelope(_RedisContract):
    options: ClassVar[dict[str, str]] = {"layout": "envelope"}

    def assert_stored_natively(self, store: Adapter, record: Record) -> None:
        key = self.expected_key(record)
        assert self.raw.type(key) == b"hash"
        assert self.raw.hget(key, "fp") == record.fingerprint.encode()
        assert self.raw.hget(key, "data").decode() == record.data_json
        assert self.raw.ttl(key) == -1

    def add_foreign_field(self, store: Adapter, entity_type: str, ident: uuid.UUID, name: str, value: str) -> bool:
        """A hash field beside the envelope's fp, data and key."""
        self.raw.hset(self.key_of(entity_type, ident), name, value)
        return True

    def read_foreign_field(self, store: Adapter, entity_type: str, ident: uuid.UUID, name: str) -> Any:
        held = self.raw.hget(self.key_of(entity_type, ident), name)
        return None if held is None else held.decode()

    def plant_malformed(self, store: Adapter, entity_type: str, ident: uuid.UUID) -> bool:
        self.raw.hset(f"{entity_type}:{str(ident).upper()}", mapping={"fp": "0" * 32, "data": "{}"})
        return True


# -- Redis-specific behaviour ------------------------------------------------------------------
@pytest.fixture
def etype(raw: redis.Redis) -> Iterator[str]:
    name = f"t{uuid.uuid4().hex[:12]}"
    yield name
    _forget(raw, "", name)


@pytest.mark.parametrize("bad", ["a:b", "user:*", "a*", "a?b", "a[b]"])
def test_entity_types_redis_forbids(redis_url: str, raw: redis.Redis, bad: str) -> None:
    with open_store(redis_url) as store, pytest.raises(ValidationError, match="not accepted by redis"):
        store.put_many([Record(bad, uuid.uuid4(), {"x": 1})])
    assert not raw.sismember("uf:types", bad)


def test_options_from_the_url(redis_url: str) -> None:
    with open_store(f"{redis_url}?id_format=base64url&ttl=60&socket_timeout=2") as store:
        assert isinstance(store, RedisAdapter)
        assert (store.id_encoding, store.ttl) == ("base64url", 60)
        assert store.client.connection_pool.connection_kwargs["socket_timeout"] == 2.0
        store.ping()
    with open_store(f"{redis_url}?ttl=60", ttl=5) as store:
        assert store.ttl == 5  # keyword options win over the URL


@pytest.mark.parametrize("options", [{"id_format": "hex"}, {"key_format": "hex"}, {"layout": "json5"}, {"ttl": 0}, {"ttl": "soon"}, {"socket_timeout": -1}])
def test_bad_options_are_rejected(redis_url: str, options: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        open_store(redis_url, **options)


def test_unknown_option_is_a_type_error(redis_url: str) -> None:
    with pytest.raises(TypeError, match="key_fromat"):
        open_store(redis_url, key_fromat="base64url")


def test_ttl_applies_to_every_key(redis_url: str, raw: redis.Redis, etype: str) -> None:
    records = sample_records(etype, 3)
    with open_store(redis_url, ttl=300) as store:
        store.put_many(records)
        for r in records:
            assert 0 < raw.ttl(f"{etype}:{r.id}") <= 300
        assert set(store.get_many(etype, [r.id for r in records])) == {r.id for r in records}


def test_prefix_namespaces_keys_and_types(redis_url: str, raw: redis.Redis) -> None:
    prefix = f"uf{uuid.uuid4().hex[:8]}:"
    records = sample_records("uf", 3)  # "uf" also names the types set: it must not show up in scans
    try:
        with open_store(redis_url, prefix=prefix) as store:
            store.put_many(records)
            assert all(raw.exists(f"{prefix}uf:{r.id}") for r in records)
            assert store.entity_types() == ["uf"]
            assert sorted(store.scan("uf", include_malformed=True)) == sorted((r.id, r.fingerprint) for r in records)
    finally:
        _forget(raw, prefix, "uf")
        raw.delete(f"{prefix}uf:types")


def test_entity_types_leaves_out_emptied_types(redis_url: str, raw: redis.Redis, etype: str) -> None:
    records = sample_records(etype, 2)
    with open_store(redis_url) as store:
        store.put_many(records)
        assert etype in store.entity_types()
        store.delete_many(etype, [r.id for r in records])
        assert raw.sismember("uf:types", etype)  # the set still names it (deletes and TTLs don't tell it)
        assert etype not in store.entity_types()


def test_foreign_keys_are_reported_not_fatal(redis_url: str, raw: redis.Redis, etype: str) -> None:
    good = sample_records(etype, 2)
    string_valued = uuid.uuid5(uuid.NAMESPACE_DNS, etype)  # a version this scheme makes: its hex form is ours
    with open_store(redis_url) as store:
        store.put_many(good)
        raw.hset(f"{etype}:{string_valued}", "fp", "x")  # a hash where this layout writes a JSON string
        raw.hset(f"{etype}:not-a-uuid", "fp", "x")
        raw.hset(f"{etype}:{string_valued.hex}", "fp", "y")
        items = dict(store.scan(etype, include_malformed=True))
        unreadable = store.get_many(etype, [string_valued])[string_valued]
    assert items[string_valued] is None  # the wrong Redis type gives no fingerprint rather than an error
    assert unreadable.unreadable and "holds a Redis hash" in unreadable.unreadable  # read: an unreadable entry
    malformed = sorted((m for m in items if isinstance(m, MalformedID)), key=lambda m: m.raw)
    assert [(m.raw, m.id) for m in malformed] == [(f"{etype}:{string_valued.hex}", string_valued)]
    assert "hex form" in malformed[0].reason
    # issue 10: a key that is no UUID in any form is another application's, not a malformed one of ours
    assert [m.raw for m in items if isinstance(m, ForeignEntry)] == [f"{etype}:not-a-uuid"]


def test_partitioned_scans_report_each_malformed_key_once(redis_url: str, raw: redis.Redis, etype: str) -> None:
    """SCAN cannot be narrowed to an ID range, so every partition's pass meets every key; a key
    decoding to no ID must still come out once (first partition), one that decodes in its own."""
    good = sample_records(etype, 200)
    upper = good[0].id
    with open_store(redis_url) as store:
        store.put_many(good[1:])
        raw.hset(f"{etype}:not-a-uuid", "fp", "x")
        raw.hset(f"{etype}:{str(upper).upper()}", "fp", "y")
        found: list[MalformedID] = []
        seen: list[uuid.UUID] = []
        foreign: list[str] = []
        for part in Partition(0, 1).split(8):
            for ident, _ in store.scan(etype, part, include_malformed=True):
                if isinstance(ident, ForeignEntry):
                    foreign.append(ident.raw)
                    continue
                (found if isinstance(ident, MalformedID) else seen).append(ident)  # type: ignore[arg-type]
                assert ident.id is None or part.contains(ident.id) if isinstance(ident, MalformedID) \
                    else part.contains(ident)
    assert [m.raw for m in found] == [f"{etype}:{str(upper).upper()}"]
    assert foreign == [f"{etype}:not-a-uuid"]  # not ours (issue 10): reported once, by the first partition
    assert sorted(seen) == sorted(r.id for r in good[1:])


def test_refused_connection_is_unavailable() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before use: nothing listens there
    with open_store(f"redis://127.0.0.1:{port}/0", socket_connect_timeout=1) as store:
        with pytest.raises(StoreUnavailableError) as info:
            store.ping()
        assert not isinstance(info.value, StoreTimeoutError)


def test_silent_server_times_out(silent_server: SilentServer) -> None:
    """A server that accepts connections and never answers gives StoreTimeoutError, not a hang."""
    outcome: list[BaseException] = []

    def call() -> None:
        store = open_store(f"redis://127.0.0.1:{silent_server.port}/0", socket_timeout=0.5,
                           socket_connect_timeout=0.5)
        try:
            store.put_many(sample_records("silent", 2))
        except BaseException as err:  # noqa: BLE001 - inspected below
            outcome.append(err)

    caller = threading.Thread(target=call, daemon=True)
    caller.start()
    caller.join(60)  # a guard against a hang, not a timing assertion
    assert not caller.is_alive(), "put_many hung on a server that never answers"
    assert len(outcome) == 1 and isinstance(outcome[0], StoreTimeoutError), outcome
    assert "timed out" in str(outcome[0])
