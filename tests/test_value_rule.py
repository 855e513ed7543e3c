"""One rule for values (issue 18, rule 6): date-time text is text, in key fields and in data.

The ID scheme (docs/ids.md) hashes text as text, so two spellings of one instant are two keys and
two IDs; the audit compares data the same way, so it never calls equal two values whose IDs differ.
An aware datetime is its UTC text ``...Z`` on both sides. A column that keeps only the instant
refuses other spellings, so what it reads back (and rebuilds IDs from) is what was written.
"""

from __future__ import annotations

import datetime as dt
import sqlite3
from pathlib import Path

import pytest

from uuid_forge import IDConfig, Namespace, open_store
from uuid_forge.canonical import canonical
from uuid_forge.entitytypes import EntityType
from uuid_forge.errors import UUIDForgeError
from uuid_forge.record import data_fingerprint

from .scaffold import make_forge

IDS = IDConfig(namespace=Namespace("value-rule.uuid-forge.test"), salt="value-rule")
ZONED = "2024-05-01T12:00:00+02:00"
UTC_TEXT = "2024-05-01T10:00:00Z"
INSTANT = dt.datetime(2024, 5, 1, 10, tzinfo=dt.UTC)


def test_two_texts_of_one_instant_are_two_ids_and_two_values(tmp_path: Path) -> None:
    with make_forge(tmp_path, "memory://", ids=IDS, types=[EntityType("event", key=("at",))]) as forge:
        ids = {text: forge.id_for("event", data={"at": text}) for text in (ZONED, UTC_TEXT)}
        assert ids[ZONED] != ids[UTC_TEXT]  # the scheme: text is text (pinned by the spec)
        assert data_fingerprint({"at": ZONED}) != data_fingerprint({"at": UTC_TEXT})  # the audit agrees
        # an aware datetime is its UTC text, in the ID and in the data alike
        assert forge.id_for("event", data={"at": INSTANT}) == ids[UTC_TEXT]
        assert data_fingerprint({"at": INSTANT}) == data_fingerprint({"at": UTC_TEXT})


def test_an_audit_finds_a_store_holding_another_spelling_of_the_instant(tmp_path: Path) -> None:
    with make_forge(tmp_path, "memory://", ("cache", "memory://"), ids=IDS,
                    types=[EntityType("event", key=("n",))]) as forge:
        forge.write("event", {"n": 1, "at": ZONED})
        record = forge.records([("event", {"n": 1, "at": ZONED})])[0]
        cache = forge.stores[1].adapter
        cache.put_many([type(record)("event", record.id, {"n": 1, "at": UTC_TEXT})])
        report = forge.audit("event")
        assert [(f.store, f.kind, f.fields) for f in report.findings] == [("cache", "stale", ("at",))]


def _table(path: Path) -> None:
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE events (id TEXT PRIMARY KEY, at DATETIME NOT NULL, n INTEGER)")


@pytest.mark.parametrize("written", [UTC_TEXT, INSTANT], ids=["utc-text", "aware-datetime"])
def test_a_datetime_key_column_rebuilds_the_written_id(tmp_path: Path, written: object) -> None:
    """``--verify-keys`` rebuilds the ID from what the column gives back: the written value."""
    _table(tmp_path / "s.db")
    source = open_store(f"sqlite:///{tmp_path}/s.db", table="events", entity_type="event",
                        fields={"at": "at", "n": "n"}, timezone="UTC")
    with make_forge(tmp_path, source, ("cache", "memory://"), ids=IDS,
                    types=[EntityType("event", key=("at",))]) as forge:
        forge.write("event", {"at": written, "n": 1})
        report = forge.audit("event", verify_keys=True)
        assert report.consistent, [(f.store, f.kind, f.detail) for f in report.findings]


def test_a_column_that_keeps_only_the_instant_refuses_another_spelling(tmp_path: Path) -> None:
    """Offset text in a datetime column would read back as its UTC text: another value, and in a
    key field another ID (before: written, then --verify-keys called the record malformed)."""
    _table(tmp_path / "s.db")
    source = open_store(f"sqlite:///{tmp_path}/s.db", table="events", entity_type="event",
                        fields={"at": "at", "n": "n"}, timezone="UTC")
    with make_forge(tmp_path, source, ("cache", "memory://"), ids=IDS,
                    types=[EntityType("event", key=("at",))]) as forge:
        with pytest.raises(UUIDForgeError, match=r"'at'.*keeps the instant.*2024-05-01T10:00:00Z") as err:
            forge.write("event", {"at": ZONED, "n": 1})
        assert ZONED in str(err.value)
        report = forge.audit("event", verify_keys=True)
        assert report.consistent, [(f.store, f.kind, f.detail) for f in report.findings]
        assert canonical(INSTANT) == f'"{UTC_TEXT}"'
