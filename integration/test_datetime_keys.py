"""Date-time text in key fields, against the real servers (issue 18, rule 6).

Text is text in key fields and in data (docs/data-model.md): the ID of a key is the scheme's
(docs/ids.md), and ``--verify-keys`` rebuilds it with that same function from what the source
gives back. A record written by ``forge.write`` never gets a false "malformed" finding:

- PostgreSQL ``timestamptz`` keeps only the instant, so a key written as ``...+02:00`` text would
  come back as another text (another ID): it is refused, naming the field; the instant written as
  an aware datetime or its UTC text comes back as written.
- Elasticsearch keeps the text sent, in a ``date``-mapped field too: it reads back as written.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.scaffold import driver_missing
from uuid_forge import IDConfig, Namespace, ValidationError, open_store
from uuid_forge.entitytypes import EntityType
from uuid_forge.errors import WriteError

from .scaffold import make_forge
from .servers import elasticsearch_http_url

IDS = IDConfig(namespace=Namespace("datetime-keys.uuid-forge.test"), salt="datetime-keys")
TYPES = [EntityType("event", key=("at",))]
ZONED = "2024-05-01T12:00:00+02:00"
UTC_TEXT = "2024-05-01T10:00:00Z"


def _findings(report: Any) -> list[tuple[str, str, str]]:
    return [(f.store, f.kind, f.detail) for f in report.findings]


@pytest.fixture
def pg_table(postgres_url: str) -> Iterator[str]:
    psycopg = pytest.importorskip("psycopg", reason=driver_missing("psycopg"))
    table = f"events_{uuid.uuid4().hex[:8]}"
    dsn = postgres_url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(dsn, autocommit=True) as raw:
        raw.execute(f'CREATE TABLE "{table}" (id uuid PRIMARY KEY, at timestamptz NOT NULL, n integer)')
    yield table
    with psycopg.connect(dsn, autocommit=True) as raw:
        raw.execute(f'DROP TABLE IF EXISTS "{table}"')


def test_postgres_timestamptz_key_verifies_and_refuses_another_spelling(postgres_url: str, pg_table: str,
                                                                          tmp_path: Path) -> None:
    source = open_store(postgres_url, table=pg_table, entity_type="event", fields={"at": "at", "n": "n"})
    with make_forge(tmp_path, source, ("cache", "memory://"), ids=IDS, types=TYPES) as forge:
        # before: written, then --verify-keys called it malformed ("key fields give ...")
        with pytest.raises((ValidationError, WriteError), match=r"'at'.*keeps the instant.*2024-05-01T10:00:00Z"):
            forge.write("event", {"at": ZONED, "n": 1})
        forge.write("event", {"at": UTC_TEXT, "n": 2})
        forge.write("event", {"at": dt.datetime(2024, 5, 2, 10, tzinfo=dt.UTC), "n": 3})
        report = forge.audit("event", verify_keys=True)
        assert report.consistent, _findings(report)
        assert report.stores["cache"]["ok"] == 2


@pytest.fixture
def es_index(elasticsearch_url: str) -> Iterator[tuple[str, Any]]:
    elasticsearch = pytest.importorskip("elasticsearch", reason=driver_missing("elasticsearch"))
    client = elasticsearch.Elasticsearch(elasticsearch_http_url(elasticsearch_url), request_timeout=30)
    index = f"events-{uuid.uuid4().hex[:8]}"
    client.indices.create(index=index, mappings={"properties": {"at": {"type": "date"}, "n": {"type": "long"}}})
    yield index, client
    client.options(ignore_status=404).indices.delete(index=index)
    client.close()


def test_elasticsearch_date_mapped_key_verifies_as_written(elasticsearch_url: str, es_index: tuple[str, Any],
                                                           tmp_path: Path) -> None:
    index, _ = es_index
    source = open_store(elasticsearch_url, index=index, entity_type="event")
    with make_forge(tmp_path, source, ("cache", "memory://"), ids=IDS, types=TYPES) as forge:
        forge.write("event", {"at": ZONED, "n": 1})
        forge.write("event", {"at": UTC_TEXT, "n": 1})  # one instant, another text: another key
        ids = [forge.id_for("event", data={"at": text}) for text in (ZONED, UTC_TEXT)]
        assert ids[0] != ids[1]
        report = forge.audit("event", verify_keys=True)  # before: one false "malformed" finding
        assert report.consistent, _findings(report)
        assert report.stores["cache"]["ok"] == 2
        got = source.get_many("event", ids)
        assert [got[i].data["at"] for i in ids] == [ZONED, UTC_TEXT]  # each as written: two values
