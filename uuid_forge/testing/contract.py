"""The adapter contract suite: round trips, idempotent upserts, scans, bulk, bad input.

Every adapter runs these same tests (memory and file in ``tests/``, the server-backed ones in
``integration/``). Each test works in its own fresh entity type, so suites can share a server.
"""

from __future__ import annotations

import datetime as dt
import decimal
import re
import uuid
from collections.abc import Collection, Iterator
from typing import Any

import pytest

from ..contract import ALL_CAPABILITIES, DELETE, READ, SCAN, WRITE, Adapter
from ..entitytypes import EntityType
from ..errors import ConfigError, StoreError, UUIDForgeError, ValidationError
from ..ids import IDConfig, Namespace, UUIDGenerator
from ..ownership import Prover
from ..record import ForeignEntry, MalformedID, Partition, Record
from ..view import FieldView

INJECTION_STRINGS = (
    "'; DROP TABLE users; --",
    "\" OR \"1\"=\"1",
    "Robert'); DELETE FROM records WHERE ('1'='1",
    '{"$gt": ""}',
    '{"$where": "sleep(1000)"}',
    "\\u0000\\\"}]}\n",
    "*3\r\n$3\r\nSET\r\n$1\r\nx\r\n$1\r\ny\r\n",
    "FLUSHALL\r\n",
    "../../etc/passwd",
    "%00%0d%0a",
    "<script>alert(1)</script>",
    "\x00\x01\x1f",
)

_GEN = UUIDGenerator(IDConfig(namespace=Namespace("contract.uuid-forge.test"), salt="contract"))
_LAST_DIGIT = re.compile(r"[0-9a-f](?=[^0-9a-f]*$)")
#: another application's namespace: its entries are named by version-5 UUIDs too
THEIRS = uuid.UUID("9a5e5b2c-1f4e-4c1a-8d7e-2b3c4d5e6f70")


def _another_name(raw: str) -> str:
    """A raw name of the same shape as ``raw`` that names nothing planted: its last hex digit changed."""
    if "legacy-7" in raw:
        return raw.replace("legacy-7", "legacy-8")
    return _LAST_DIGIT.sub(lambda m: "1" if m.group() == "0" else "0", raw, count=1)


def contract_prover(entity_type: str) -> Prover:
    """The ownership proof for :func:`sample_records`: ``entity_type`` declared with key field
    ``n`` (each sample holds it in its data, and as its key), under the contract's ID configuration."""
    return Prover(_GEN, {entity_type: EntityType(entity_type, key=("n",))})


def look_alikes(entity_type: str) -> dict[str, dict[str, object]]:
    """Another application's entry names that read as our IDs, with its data: a version-4 UUID
    (no key field), a version-5 UUID of its own namespace (a key field that gives another ID) and
    a random-looking 32-hex token that reads as a version-5 UUID (a key field of the wrong type)."""
    token = uuid.uuid5(THEIRS, f"token-{entity_type}").hex
    return {str(uuid.uuid4()): {"token": "opaque session data", "owner": "someone@example.org"},
            str(uuid.uuid5(THEIRS, f"session-{entity_type}")): {"n": 1, "owner": "someone@example.org"},
            token: {"n": "1", "owner": "someone@example.org"}}


def scanned_items(store: Adapter, entity_type: str, leave_out: Collection[uuid.UUID] = ()) -> list[str]:
    """Everything a scan with malformed and foreign entries yields, as sortable text, but ``leave_out``."""
    out = []
    for item, _ in store.scan(entity_type, include_malformed=True):
        if isinstance(item, uuid.UUID):
            if item not in leave_out:
                out.append(f"id {item}")
        elif isinstance(item, MalformedID):
            out.append(f"malformed {item.raw}")
        elif isinstance(item, ForeignEntry):
            out.append(f"foreign {item.raw}")
    return sorted(out)


def sample_records(entity_type: str, n: int, start: int = 0, version: int = 1) -> list[Record]:
    """``n`` deterministic records with varied data; ``version`` changes the data, not the IDs."""
    keys = [{"n": i} for i in range(start, start + n)]
    ids = _GEN.generate_many(entity_type, keys)
    return [
        Record(entity_type, ident, {"n": key["n"], "version": version, "name": f"entity {key['n']}",
                                    "tags": ["a", "b"], "score": key["n"] / 4}, key)
        for ident, key in zip(ids, keys)
    ]


def scanned_ids(store: Adapter, entity_type: str, partition: Partition | None = None) -> list[uuid.UUID]:
    """The IDs a plain scan yields: well-formed IDs only (a wrong form comes only with include_malformed)."""
    ids = []
    for ident, _ in store.scan(entity_type, partition):
        assert isinstance(ident, uuid.UUID), f"a plain scan of {store.name} yielded {ident!r}"
        ids.append(ident)
    return ids


class AdapterContract:
    """Subclass, provide a ``store`` fixture, and implement :meth:`assert_stored_natively`."""

    #: entity types this store must reject before writing anything
    invalid_entity_types: tuple[str, ...] = ("../etc", "a/../../b", "", "bad type", "x" * 101, "a\x00b")
    #: how many records the bulk test writes
    bulk_size: int = 10_000

    # -- hooks for subclasses ------------------------------------------------------------------
    @pytest.fixture
    def store(self) -> Iterator[Adapter]:  # pragma: no cover - replaced by subclasses
        raise NotImplementedError("subclasses provide a 'store' fixture")

    def assert_stored_natively(self, store: Adapter, record: Record) -> None:
        """Read ``record.id`` back with the raw driver and check the encoding the store uses."""
        raise NotImplementedError(f"{type(self).__name__} must check the raw stored ID")

    def plant_malformed(self, store: Adapter, entity_type: str, ident: uuid.UUID) -> bool:
        """Store ``ident`` in a wrong encoding with the raw driver; return False if impossible."""
        return False

    def plant_foreign(self, store: Adapter, entity_type: str, name: str, data: dict[str, object]) -> bool:
        """Write another application's entry named ``name`` holding ``data`` with the raw driver,
        beside ours in the container ``entity_type`` lives in; return False where no other
        application writes (a container of uuid-forge's alone): the look-alike tests are skipped."""
        return False

    def cleanup(self, store: Adapter, entity_type: str) -> None:
        """Remove what a test wrote (default: delete every scanned ID)."""
        if {SCAN, DELETE} <= store.capabilities and not store.append_only:
            store.delete_many(entity_type, scanned_ids(store, entity_type))

    @pytest.fixture
    def etype(self, store: Adapter) -> Iterator[str]:
        name = f"t{uuid.uuid4().hex[:12]}"
        yield name
        try:
            self.cleanup(store, name)
        except UUIDForgeError:
            pass

    def _need(self, store: Adapter, *caps: str) -> None:
        missing = [c for c in caps if c not in store.capabilities]
        if missing:
            pytest.skip(f"{store.name} does not declare {', '.join(missing)}")

    def _ids(self, store: Adapter, entity_type: str) -> list[uuid.UUID]:
        return [i for i, _ in store.scan(entity_type)]  # type: ignore[misc]

    # -- the contract --------------------------------------------------------------------------
    def test_capabilities_declared(self, store: Adapter) -> None:
        assert store.capabilities <= ALL_CAPABILITIES
        assert WRITE in store.capabilities
        assert store.name

    def test_ping(self, store: Adapter) -> None:
        store.ping()

    def test_url_is_masked(self, store: Adapter) -> None:
        raw = store.url(masked=False)
        shown = store.url()
        if "@" in raw and ":" in raw.split("://", 1)[1].split("@", 1)[0]:
            password = raw.split("://", 1)[1].split("@", 1)[0].split(":", 1)[1]
            if password:
                assert f":{password}@" not in shown
                assert "***" in shown
        else:
            assert shown == raw
        assert shown in repr(store)

    def test_round_trip(self, store: Adapter, etype: str) -> None:
        self._need(store, READ)
        ident = _GEN.generate(etype, email="zoë@example.com")
        data = {"email": "zoë@example.com", "name": "Zoë 東京", "n": 2**70, "ratio": 0.1, "ok": True,
                "none": None, "nested": {"b": [1, 2, {"c": "d"}], "a": 1.5},
                "when": dt.datetime(2024, 5, 6, 7, 8, 9, 123, tzinfo=dt.UTC),
                "day": dt.date(2024, 1, 2), "price": decimal.Decimal("12.50")}
        record = Record(etype, ident, data, {"email": "zoë@example.com"})
        assert store.put_many([record]) == 1
        got = store.get_many(etype, [ident])
        assert list(got) == [ident]
        back = got[ident]
        assert back.entity_type == etype
        assert back.fingerprint == record.fingerprint
        assert back.json_data == record.json_data
        assert back.data_json == record.data_json

    def test_upsert_is_idempotent(self, store: Adapter, etype: str) -> None:
        self._need(store, SCAN)
        first = sample_records(etype, 5)
        store.put_many(first)
        store.put_many(first)
        assert sorted(self._ids(store, etype)) == sorted(r.id for r in first)
        second = sample_records(etype, 5, version=2)
        store.put_many(second)
        scanned = dict(store.scan(etype))
        assert scanned == {r.id: r.fingerprint for r in second}
        assert all(r1.fingerprint != r2.fingerprint for r1, r2 in zip(first, second))
        if READ in store.capabilities:
            got = store.get_many(etype, [r.id for r in second])
            assert {i: r.json_data["version"] for i, r in got.items()} == {r.id: 2 for r in second}

    def test_put_new_creates_the_absent_and_never_replaces_a_record(self, store: Adapter, etype: str) -> None:
        """The create-if-absent write the ID-configuration marker is made with (uuid_forge.idmarker)."""
        self._need(store, READ)
        first = sample_records(etype, 3)
        store.put_many(first[:1])
        store.put_new([sample_records(etype, 1, version=2)[0], *first[1:]])
        store.put_new(sample_records(etype, 3, version=3))  # every one exists now: nothing changes
        got = store.get_many(etype, [r.id for r in first])
        assert {i: r.fingerprint for i, r in got.items()} == {r.id: r.fingerprint for r in first}

    def test_get_many_leaves_out_absent_ids(self, store: Adapter, etype: str) -> None:
        self._need(store, READ)
        records = sample_records(etype, 3)
        store.put_many(records[:2])
        got = store.get_many(etype, [r.id for r in records])
        assert set(got) == {records[0].id, records[1].id}
        assert store.get_many(etype, []) == {}

    def test_delete_many(self, store: Adapter, etype: str) -> None:
        self._need(store, DELETE, SCAN)
        records = sample_records(etype, 4)
        store.put_many(records)
        gone = store.delete_many(etype, [records[0].id, records[1].id, uuid.uuid4()], token="2026-01-01T00:00:00Z")
        assert gone == (3 if store.append_only else 2)  # a log appends a delete event per ID, held or not
        assert sorted(self._ids(store, etype)) == sorted(r.id for r in records[2:])
        if store.append_only:  # a later write after the delete makes it held again
            store.put_many(records[:1])
            assert sorted(self._ids(store, etype)) == sorted(r.id for r in [records[0], *records[2:]])

    def test_scan_partitions_cover_all_ids_once(self, store: Adapter, etype: str) -> None:
        self._need(store, SCAN)
        records = sample_records(etype, 300)
        store.put_many(records)
        everything = dict(store.scan(etype))
        assert everything == {r.id: r.fingerprint for r in records}
        seen: list[uuid.UUID] = []
        for part in Partition(0, 1).split(4):
            chunk = scanned_ids(store, etype, part)
            assert all(part.contains(i) for i in chunk)
            seen.extend(chunk)
        assert sorted(seen) == sorted(r.id for r in records)

    def test_check_names_each_check_and_writes_nothing(self, store: Adapter, etype: str) -> None:
        """``check`` (what ``uuid-forge validate`` runs) passes a store its tests can write to,
        names each check with a known status, and leaves the store as it found it."""
        checks = store.check([etype])
        assert checks and all(c.status in ("ok", "failed", "off") and c.name for c in checks), checks
        assert [c for c in checks if c.status == "failed"] == [], checks
        if SCAN in store.capabilities:
            assert store.count(etype) == 0

    def test_entity_types_lists_written_type(self, store: Adapter, etype: str) -> None:
        self._need(store, SCAN)
        store.put_many(sample_records(etype, 2))
        assert etype in store.entity_types()

    def test_bulk(self, store: Adapter, etype: str) -> None:
        self._need(store, SCAN)
        records = sample_records(etype, self.bulk_size)
        assert store.put_many(records) == self.bulk_size
        assert store.count(etype) == self.bulk_size
        if READ in store.capabilities:
            got = store.get_many(etype, [r.id for r in records])
            assert len(got) == self.bulk_size
            assert all(got[r.id].fingerprint == r.fingerprint for r in records[:: max(1, self.bulk_size // 100)])

    def test_injection_strings_are_data(self, store: Adapter, etype: str) -> None:
        records = [Record(etype, _GEN.generate(etype, s), {"text": s, "key": {s: s}}, {"s": s})
                   for s in INJECTION_STRINGS]
        store.put_many(records)
        if SCAN in store.capabilities:
            assert dict(store.scan(etype)) == {r.id: r.fingerprint for r in records}
        if READ in store.capabilities:
            got = store.get_many(etype, [r.id for r in records])
            assert {i: r.json_data for i, r in got.items()} == {r.id: r.json_data for r in records}

    @pytest.mark.parametrize("position", ["first", "last"])
    def test_invalid_entity_type_rejected_before_any_write(self, store: Adapter, etype: str,
                                                            position: str) -> None:
        good = sample_records(etype, 3)
        for bad in self.invalid_entity_types:
            with pytest.raises(ValidationError) as info:
                store.check_entity_type(bad)
            assert repr(bad)[:20] in str(info.value) or bad == ""
            try:
                bad_record = Record(bad, uuid.uuid4(), {"x": 1})
            except ValidationError:
                continue  # not even a record can be made of it
            batch = [bad_record, *good] if position == "first" else [*good, bad_record]
            with pytest.raises(ValidationError):
                store.put_many(batch)
        if SCAN in store.capabilities:
            assert self._ids(store, etype) == []

    def test_bad_data_rejected_before_any_write(self, store: Adapter, etype: str) -> None:
        good = sample_records(etype, 3)
        bad = Record(etype, uuid.uuid4(), {"ratio": float("nan")})
        with pytest.raises(ValueError, match="not a finite number"):
            store.put_many([*good, bad])
        if SCAN in store.capabilities:
            assert self._ids(store, etype) == []

    def test_stored_natively(self, store: Adapter, etype: str) -> None:
        record = sample_records(etype, 1)[0]
        store.put_many([record])
        self.assert_stored_natively(store, record)

    def test_malformed_ids_are_reported_by_scan(self, store: Adapter, etype: str) -> None:
        self._need(store, SCAN)
        good = sample_records(etype, 2)
        store.put_many(good)
        wrong = _GEN.generate(etype, "planted")
        if not self.plant_malformed(store, etype, wrong):
            pytest.skip(f"{store.name} has no wrong encoding to plant")
        items = list(store.scan(etype, include_malformed=True))
        malformed = [i for i, _ in items if isinstance(i, MalformedID)]
        assert len(malformed) == 1 and malformed[0].id == wrong and malformed[0].reason
        assert sorted(scanned_ids(store, etype)) == sorted(r.id for r in good)

    def test_drop_removes_everything_and_the_type_can_be_written_again(self, store: Adapter, etype: str) -> None:
        self._need(store, DELETE, SCAN)
        if store.append_only:
            with pytest.raises(StoreError, match="cannot remove one entity type"):
                store.drop(etype, prover=contract_prover(etype))
            return
        records = sample_records(etype, 2_500)  # more than one page of any scan the adapter pages
        store.put_many(records)
        planted = self.plant_malformed(store, etype, _GEN.generate(etype, "planted"))
        assert len(list(store.scan(etype, include_malformed=True))) == 2_500 + planted
        shared = store.shared(etype)
        if shared:  # a container others write too: no drop without the proof
            with pytest.raises(ValidationError, match="shared with others"):
                store.drop(etype)
            assert len(scanned_ids(store, etype)) == 2_500
        store.drop(etype, prover=contract_prover(etype))
        left = list(store.scan(etype, include_malformed=True))
        # in a shared container a wrong-form name cannot be read back and proven ours: it stays
        assert len(left) == (planted if shared else 0) and all(isinstance(i, MalformedID) for i, _ in left)
        if not left:
            assert etype not in store.entity_types()
        store.put_many(records[:3])  # whatever the adapter cached about the type (an index, a folder) is gone too
        assert sorted(scanned_ids(store, etype)) == sorted(r.id for r in records[:3])
        if READ in store.capabilities:
            assert set(store.get_many(etype, [r.id for r in records[:5]])) == {r.id for r in records[:3]}

    def test_drop_keeps_look_alike_foreign_entries_beside_ours(self, store: Adapter, etype: str) -> None:
        """Issue 18: a name in our form proves nothing; drop deletes the proven entries only."""
        self._need(store, DELETE, SCAN)
        if store.append_only:
            pytest.skip(f"{store.name} is append-only: drop is refused (see the test above)")
        ours = sample_records(etype, 20)
        store.put_many(ours)
        foreign = look_alikes(etype)
        if not all(self.plant_foreign(store, etype, name, data) for name, data in foreign.items()):
            pytest.skip(f"{store.name}: no other application writes in this container")
        prover = contract_prover(etype)
        theirs = [uuid.UUID(name) for name in foreign]
        before = scanned_items(store, etype, {r.id for r in ours})
        read = store.get_many(etype, theirs) if READ in store.capabilities else {}
        assert before or read, "the planted entries are not seen at all: nothing would be tested"
        assert not any(p.ok for p in prover.prove(etype, read, store.view).values())  # unproven, every one
        if READ in store.capabilities:
            assert prover.proven(etype, store.get_many(etype, [r.id for r in ours]), store.view) == {r.id for r in ours}
        store.drop(etype, prover=prover)
        assert not {r.id for r in ours} & set(scanned_ids(store, etype))  # ours went
        assert scanned_items(store, etype) == before  # theirs stayed, every one
        if READ in store.capabilities:
            assert {i: r.data for i, r in store.get_many(etype, theirs).items()} == {i: r.data for i, r in read.items()}

    def test_source_entries_without_their_key_fields_are_unproven(self, store: Adapter, etype: str) -> None:
        """Issue 18, rule 2: an entry of a source whose key fields are missing is not an entity of the type."""
        self._need(store, READ)
        ours = sample_records(etype, 3)
        store.put_many(ours)
        stray: dict[str, dict[str, object]] = {str(uuid.uuid4()): {"token": "reset-me", "owner": "x@example.org"},
                 str(uuid.uuid4()): {"n": None, "owner": "x@example.org"}}
        if not all(self.plant_foreign(store, etype, name, data) for name, data in stray.items()):
            pytest.skip(f"{store.name}: no other application writes in this container")
        prover = contract_prover(etype)
        got = store.get_many(etype, [uuid.UUID(n) for n in stray])
        assert set(got) == {uuid.UUID(n) for n in stray}
        proofs = prover.prove(etype, got, store.view)
        assert not any(p.ok for p in proofs.values()), proofs
        assert prover.proven(etype, store.get_many(etype, [r.id for r in ours]), store.view) == {r.id for r in ours}

    def test_read_raw_reads_entries_by_their_stored_name(self, store: Adapter, etype: str) -> None:
        """An optional capability (issue 21, migration): ``read_raw`` reads another application's
        entry by the raw name a scan reports for it, gives its data as ``get_many`` would, and
        leaves out names that are not there; ``delete_raw_proven`` (where implemented) deletes it
        by that name only while it holds the proven data. Skipped where the store cannot hold such
        an entry or does not implement ``_read_raw``."""
        self._need(store, READ, SCAN)
        store.put_many(sample_records(etype, 3))
        data: dict[str, object] = {"token": "opaque session data", "owner": "someone@example.org"}
        planted = []
        for name in ("legacy-7", str(uuid.uuid4())):  # a serial-era name, and a version-4 one
            try:
                planted.append(self.plant_foreign(store, etype, name, data))
            except Exception:  # noqa: BLE001 - a store whose names must be UUIDs cannot hold "legacy-7"
                planted.append(False)
        if not any(planted):
            pytest.skip(f"{store.name}: no other application writes in this container")
        raws = [i.raw for i, _ in store.scan(etype, include_malformed=True) if isinstance(i, (ForeignEntry, MalformedID))]
        if not raws:
            pytest.skip(f"{store.name} reads the planted names as IDs of ours (get_many reads them): no raw name")
        absent = _another_name(raws[0])
        assert absent not in raws
        try:
            got = store.read_raw(etype, [*raws, absent])
        except StoreError as err:
            if "does not support read_raw" in str(err):
                pytest.skip(f"{store.name} does not implement read_raw")
            raise
        assert set(got) == set(raws), "every raw name a scan reports is read; an absent one is left out"
        assert [e.data for e in got.values()] == [data] * len(raws), [e.reason for e in got.values()]
        assert store.read_raw(etype, []) == {}
        if DELETE not in store.capabilities or type(store)._delete_raw_names is Adapter._delete_raw_names:
            return  # delete_raw_proven is optional too
        first, ours = raws[0], sorted(scanned_ids(store, etype))
        assert store.delete_raw_proven(etype, {first: {**data, "owner": "changed since the proof"}}) == 0
        assert store.delete_raw_proven(etype, {first: data}) == 1
        assert set(store.read_raw(etype, raws)) == set(raws[1:]), "only the proven entry went"
        assert sorted(scanned_ids(store, etype)) == ours

    def test_close_is_idempotent(self, store: Adapter) -> None:
        store.close()
        store.close()

    # -- ownership: fields added by another application, unmapped required columns (issue 18) ----
    #: the field another application adds beside ours, and the value it gives it
    foreign_field: tuple[str, str] = ("cached_at", "set by another application")
    #: the column another application adds to a table of its own that this store writes
    required_column: str = "app_required"

    def add_foreign_field(self, store: Adapter, entity_type: str, ident: uuid.UUID, name: str, value: str) -> bool:
        """Add the field ``name`` with ``value`` to the stored entry of ``ident`` with the raw driver,
        as another application sharing the store would (a document field, a hash field, a sidecar
        member, a column of your table); return False when the store has no such place (skipped)."""
        return False

    def read_foreign_field(self, store: Adapter, entity_type: str, ident: uuid.UUID, name: str) -> Any:
        """The value of the field ``name`` of the stored entry of ``ident``, read with the raw driver."""
        raise NotImplementedError(f"{type(self).__name__} adds foreign fields: it must read them back too")

    def plant_required_column(self, store: Adapter, entity_type: str, column: str) -> bool:
        """Give the table of your own that ``store`` writes an unmapped ``column`` that is NOT NULL
        without a default (another application's), with the raw driver, before the store is first
        used; return False when the store has no such table (skipped)."""
        return False

    def open_with_defaults(self, store: Adapter, defaults: dict[str, Any]) -> Adapter:
        """``store`` opened again over the same table with the option ``defaults=defaults`` (the
        caller closes it); needed by every store whose :meth:`plant_required_column` plants one."""
        raise NotImplementedError(f"{type(self).__name__} plants required columns: it must open the store "
                                  "with defaults= too")

    @pytest.mark.parametrize("owned", ["ignore_fields", "projection"])
    def test_fields_added_by_another_application_are_kept(self, store: Adapter, etype: str, owned: str) -> None:
        """A write owns only the fields of its store's view (``FieldView.owns``): a field another
        application added to our entry survives a rewrite with changed data, while an owned field
        the new data lacks is removed (issue 18, rule 3)."""
        name, value = self.foreign_field
        first = sample_records(etype, 2)
        view = (FieldView(ignore_fields=(name,)) if owned == "ignore_fields"
                else FieldView(projection=tuple(f for f in first[0].data if f != name)))
        viewed = store.viewed(view)
        viewed.put_many(first)
        target = first[0].id
        if not self.add_foreign_field(store, etype, target, name, value):
            pytest.skip(f"{store.name} has no place for another application's fields beside ours")
        assert self.read_foreign_field(store, etype, target, name) == value
        second = [Record(etype, r.id, {k: v for k, v in r.data.items() if k != "tags"}, r.key)
                  for r in sample_records(etype, 2, version=2)]  # changed data, the owned field "tags" gone
        viewed.put_many(second)
        assert self.read_foreign_field(store, etype, target, name) == value, \
            f"{store.name} lost the field {name!r} that another application added"
        if SCAN in store.capabilities:
            assert dict(viewed.scan(etype)) == {r.id: viewed.fingerprint_data(r.json_data) for r in second}
        if READ in store.capabilities:
            got = viewed.get_many(etype, [r.id for r in second])
            assert {i: {k: v for k, v in r.json_data.items() if view.owns(k)} for i, r in got.items()} == \
                {r.id: view.apply(r.json_data) for r in second}

    def test_unmapped_required_column_refuses_the_store_unless_defaults_are_declared(
            self, store: Adapter, etype: str) -> None:
        """A table of your own with another application's NOT NULL column without a default, which
        no write of ours could fill: the store is refused the first time it is used, naming the
        column (not a failed write per batch); ``defaults`` makes it work, on INSERT only."""
        column = self.required_column
        if not self.plant_required_column(store, etype, column):
            pytest.skip(f"{store.name} writes no table of your own")
        records = sample_records(etype, 2)
        with pytest.raises(ConfigError, match=column):
            store.put_many(records)
        with pytest.raises(ConfigError, match=column):  # still refused: nothing half-done in between
            store.put_many(records)
        fixed = self.open_with_defaults(store, {column: "filled by uuid-forge"})
        try:
            assert fixed.put_many(records) == 2
            if READ in fixed.capabilities:
                got = fixed.get_many(etype, [r.id for r in records])
                assert {i: r.fingerprint for i, r in got.items()} == {r.id: r.fingerprint for r in records}
            assert self.read_foreign_field(fixed, etype, records[0].id, column) == "filled by uuid-forge"
            assert self.add_foreign_field(fixed, etype, records[0].id, column, "the application's value")
            fixed.put_many(sample_records(etype, 2, version=2))  # an update: the column keeps its value
            assert self.read_foreign_field(fixed, etype, records[0].id, column) == "the application's value"
        finally:
            fixed.close()
