"""Fast checks (no servers) of store views: projections, ignored fields, datetime precision, and
datetime text compared as the text it is, as the ID scheme hashes it (uuid_forge.view, uuid_forge.record).

Both stores are the in-process memory adapter (a fake store,
edited here through its dict, as another program would edit a real one).
"""

from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import pytest

from uuid_forge import Forge, IDConfig, Namespace, open_store
from uuid_forge.errors import ConfigError
from uuid_forge.record import Record, data_fingerprint, fingerprint_of
from uuid_forge.settings import parse_settings
from uuid_forge.view import FULL, FieldView

from .scaffold import make_forge

IDS = IDConfig(namespace=Namespace("view.uuid-forge.test"), salt="view-n-fast")
ET = "user"


def _forge(tmp_path: Path, view: FieldView) -> tuple[Forge, Any]:
    target = open_store("memory://")  # the fake store
    target.view = view
    return make_forge(tmp_path, open_store("memory://"), ("cache", target), ids=IDS, journal="j.sqlite3"), target


def _settings(text: str):
    import tomllib

    return parse_settings(tomllib.loads(text), "forge.toml", env={})


def _rows(n: int) -> list[tuple[str, dict, dict]]:
    return [(ET, {"email": f"u{i}@x.org"}, {"email": f"u{i}@x.org", "name": f"U{i}", "plan": "pro", "n": i})
            for i in range(n)]


def _cached(fake: Any, ident: uuid.UUID) -> dict:
    return dict(fake._data[ET][ident].data)


def _edit(fake: Any, ident: uuid.UUID, data: dict) -> None:
    fake._data[ET][ident] = Record(ET, ident, data)


def test_a_projected_store_holds_only_its_fields_and_audits_clean(tmp_path: Path) -> None:
    forge, db = _forge(tmp_path, FieldView(projection=("name", "email")))
    with forge:
        rows = _rows(5)
        forge.write_many(rows)
        recs = forge.records(rows)
        assert _cached(db, recs[0].id) == {"email": "u0@x.org", "name": "U0"}  # nothing else was sent
        assert forge.audit(ET).consistent
        # an edit inside the projection is still found, and named
        _edit(db, recs[1].id, {"email": "u1@x.org", "name": "Mallory"})
        report = forge.audit(ET)
        assert [(f.id, f.kind, f.fields) for f in report.findings] == [(str(recs[1].id), "stale", ("name",))]
        # repair writes the projection back, and the re-check sees it consistent
        repaired = forge.audit(ET, repair=True)
        assert repaired.repaired["cache"]["rewritten"] == 1
        assert _cached(db, recs[1].id) == {"email": "u1@x.org", "name": "U1"}
        assert forge.audit(ET).consistent


def test_a_projected_store_with_a_field_outside_its_projection_is_compared_on_the_projection(tmp_path: Path) -> None:
    forge, db = _forge(tmp_path, FieldView(projection=("name",)))
    with forge:
        rows = _rows(2)
        forge.write_many(rows)
        rec = forge.records(rows)[0]
        _edit(db, rec.id, {"name": "U0", "cached_at": "whenever"})  # outside the projection
        assert forge.audit(ET).consistent


def test_ignored_fields_are_the_stores_own_and_never_compared(tmp_path: Path) -> None:
    forge, db = _forge(tmp_path, FieldView(ignore_fields=("indexed_at",)))
    with forge:
        rows = _rows(3)
        forge.write_many(rows)
        recs = forge.records(rows)
        _edit(db, recs[0].id, {**_cached(db, recs[0].id), "indexed_at": "2024-01-01T00:00:00Z"})
        assert forge.audit(ET).consistent
        _edit(db, recs[1].id, {**_cached(db, recs[1].id), "n": 99, "indexed_at": "x"})
        findings = forge.audit(ET).findings
        assert [(f.kind, f.fields) for f in findings] == [("stale", ("n",))]


def test_without_a_view_an_added_field_is_stale(tmp_path: Path) -> None:
    """The control: the same edit as above, with no view, is a finding (the views above hide nothing else)."""
    forge, db = _forge(tmp_path, FULL)
    with forge:
        rows = _rows(2)
        forge.write_many(rows)
        rec = forge.records(rows)[0]
        _edit(db, rec.id, {**_cached(db, rec.id), "indexed_at": "x"})
        assert [(f.kind, f.fields) for f in forge.audit(ET).findings] == [("stale", ("indexed_at",))]


def test_datetime_precision_compares_at_the_stores_precision(tmp_path: Path) -> None:
    when = dt.datetime(2024, 5, 1, 10, 0, 0, 123456, tzinfo=dt.UTC)
    forge, db = _forge(tmp_path, FieldView(datetime_precision="ms"))
    with forge:
        rows = [(ET, {"email": "a@x.org"}, {"email": "a@x.org", "at": when})]
        forge.write_many(rows)
        rec = forge.records(rows)[0]
        _edit(db, rec.id, {"email": "a@x.org", "at": "2024-05-01T10:00:00.123000Z"})  # what BSON keeps
        assert forge.audit(ET).consistent
        _edit(db, rec.id, {"email": "a@x.org", "at": "2024-05-01T10:00:00.124000Z"})  # a real difference
        assert [f.fields for f in forge.audit(ET).findings] == [("at",)]


def test_datetime_text_is_text_and_an_aware_datetime_is_its_utc_text() -> None:
    """The one value rule (docs/data-model.md): equal exactly when the ID scheme's canonical form is."""
    utc = {"at": dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.UTC)}
    assert data_fingerprint({"at": "2024-05-01T08:00:00Z"}) == data_fingerprint(utc)
    for text in ("2024-05-01T10:00:00+02:00", "2024-05-01T10:00:00.000+0200", "2024-05-01 08:00Z",
                 "2024-05-01T08:00:00+00:00", "2024-05-01T08:00:00"):
        assert data_fingerprint({"at": text}) != data_fingerprint(utc), text


def test_views_from_the_configuration(tmp_path: Path) -> None:
    text = (f'[stores.db]\nurl = "sqlite:///{tmp_path}/s.db"\nrole = "source"\n\n'
            f'[stores.cache]\nurl = "sqlite:///{tmp_path}/c.db"\nprojection = ["name", "email"]\n'
            'ignore_fields = []\ndatetime_precision = "ms"\n')
    settings = _settings(text)
    cache = next(s for s in settings.stores if s.name == "cache")
    assert cache.view == FieldView(projection=("name", "email"), datetime_precision="ms")
    with Forge.from_settings(settings) as forge:
        assert forge.stores[1].adapter.view == cache.view and forge.source.adapter.view == FULL


@pytest.mark.parametrize("extra, says", [
    ('projection = "name"', "expected a list of field names"),
    ('datetime_precision = "ns"', "expected one of us, ms, s"),
    ('projection = ["a"]\nignore_fields = ["a"]', "both projected and ignored"),
])
def test_bad_views_name_the_store(tmp_path: Path, extra: str, says: str) -> None:
    text = (f'[stores.db]\nurl = "sqlite:///{tmp_path}/s.db"\nrole = "source"\n\n'
            f'[stores.cache]\nurl = "sqlite:///{tmp_path}/c.db"\n{extra}\n')
    with pytest.raises(ConfigError, match=says) as err:
        _settings(text)
    assert "cache" in str(err.value)


def test_the_source_cannot_hold_a_projection(tmp_path: Path) -> None:
    text = f'[stores.db]\nurl = "sqlite:///{tmp_path}/s.db"\nrole = "source"\nprojection = ["name"]\n'
    with pytest.raises(ConfigError, match="source of truth holds every field"):
        _settings(text)


def test_a_zero_fraction_is_another_text() -> None:
    utc = {"at": dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.UTC)}
    assert data_fingerprint({"at": "2024-05-01T08:00:00.000000Z"}) != data_fingerprint(utc)  # as in a key
    assert data_fingerprint({"at": "2024-05-01T08:00:00.000001Z"}) != data_fingerprint(utc)


def test_stale_fields_name_a_datetime_text_that_differs_from_the_instant() -> None:
    """The field diff agrees with the fingerprints: offset text and its UTC instant are two values."""
    from uuid_forge.audit import diff_fields

    utc = dt.datetime(2024, 5, 1, 8, 0, tzinfo=dt.UTC)
    source = {"created_at": "2024-05-01T10:00:00+02:00", "name": "Ann"}
    assert [p for p, *_ in diff_fields(source, {"created_at": utc, "name": "Ann"})] == ["created_at"]
    assert [p for p, *_ in diff_fields({"created_at": "2024-05-01T08:00:00Z"}, {"created_at": utc})] == []
