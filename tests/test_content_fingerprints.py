"""Fast checks (no servers) that audits fingerprint the data each store holds, not its ``fp``.

SQLite and the file store are edited behind uuid-forge's back (with sqlite3 and plain file
writes); the stored fingerprint is left as it was. See integration/test_content_fingerprints.py for every store.
"""

from __future__ import annotations

import decimal
import json
import sqlite3
import uuid
from pathlib import Path

import pytest

from uuid_forge import IDConfig, Namespace
from uuid_forge.audit import diff_fields
from uuid_forge.canonical import canonical
from uuid_forge.record import TextFingerprint, fingerprint_of, load_json, same_fingerprint

from .scaffold import make_forge

IDS = IDConfig(namespace=Namespace("content.uuid-forge.test"), salt="content-h-fast")
ET = "user"


def test_text_fingerprint_is_the_canonical_one_and_ignores_reformatting() -> None:
    data = {"a": decimal.Decimal("12345678901234567890.125"), "b": 1e-7, "c": [1, 2.5], "d": {"e": "é"}}
    text = canonical(data)
    assert TextFingerprint(text) == fingerprint_of(text) == TextFingerprint(text.encode())
    assert canonical(load_json(text)) == text  # no digit lost on the way back
    reformatted = TextFingerprint('{ "d": {"e": "\\u00e9"}, "c": [1, 2.50],\n "b": 1E-7, "a": 12345678901234567890.1250 }')
    assert reformatted != fingerprint_of(text) and same_fingerprint(reformatted, fingerprint_of(text))
    changed = TextFingerprint(text.replace("2.5", "2.6"))
    assert not same_fingerprint(changed, fingerprint_of(text))
    assert not same_fingerprint(TextFingerprint("not json"), fingerprint_of(text))
    assert not same_fingerprint(None, None)


def test_diff_fields_names_nested_missing_and_extra_fields() -> None:
    src = {"name": "A", "n": 2, "address": {"city": "Paris", "zip": "1"}, "gone": 1}
    got = {"name": "A", "n": 2.0, "address": {"city": "Lyon", "zip": "1"}, "new": True}
    assert [(p, how) for p, how, *_ in diff_fields(src, got)] == [
        ("address.city", "differs"), ("gone", "missing"), ("new", "extra")]


@pytest.mark.parametrize("kind", ["sqlite", "file"])
def test_content_edit_behind_our_back_is_stale_with_the_field_named_and_repaired(kind: str, tmp_path: Path) -> None:
    target_url = f"sqlite:///{tmp_path}/t.db" if kind == "sqlite" else f"file://{tmp_path}/files?fsync=false"
    with make_forge(tmp_path, f"sqlite:///{tmp_path}/s.db", (kind, target_url), ids=IDS, journal="j.sqlite3") as forge:
        rows = [(ET, {"email": f"u{i}@x.org"}, {"name": f"U{i}", "email": f"u{i}@x.org", "n": i}) for i in range(10)]
        forge.write_many(rows)
        recs = forge.records(rows)

        def read(ident: uuid.UUID) -> dict:
            if kind == "sqlite":
                with sqlite3.connect(tmp_path / "t.db") as conn:
                    return json.loads(conn.execute(f"SELECT data FROM uf_{ET} WHERE id=?", (ident.hex,)).fetchone()[0])
            s = str(ident)
            return json.loads((tmp_path / "files" / ET / s[:2] / s[2:4] / f"{s}.json").read_text())

        def write(ident: uuid.UUID, data: dict) -> None:
            if kind == "sqlite":
                with sqlite3.connect(tmp_path / "t.db") as conn:
                    conn.execute(f"UPDATE uf_{ET} SET data=? WHERE id=?", (json.dumps(data), ident.hex))
                return
            s = str(ident)
            path = tmp_path / "files" / ET / s[:2] / s[2:4] / f"{s}.json"
            path.write_text(json.dumps(data, indent=1))  # the data as a JSON document, reformatted

        write(recs[1].id, {**read(recs[1].id), "name": "Mallory"})
        write(recs[2].id, {k: v for k, v in read(recs[2].id).items() if k != "email"})
        write(recs[3].id, {**read(recs[3].id), "n": 33})
        write(recs[4].id, read(recs[4].id))  # reformatted only: not a difference

        report = forge.audit(ET)
        got = {f.id: (f.kind, f.fields) for f in report.findings}
        assert got == {str(recs[1].id): ("stale", ("name",)), str(recs[2].id): ("stale", ("email",)),
                       str(recs[3].id): ("stale", ("n",))}
        assert all("Mallory" not in f.detail and f.values is None for f in report.findings)
        shown = {f.id: f.values for f in forge.audit(ET, show_values=True).findings}
        assert shown[str(recs[1].id)] == {"name": {"store": "Mallory", "source": "U1"}}
        assert shown[str(recs[3].id)] == {"n": {"store": 33, "source": 3}}

        assert forge.audit(ET, repair=True).repaired[kind]["rewritten"] == 3
        assert [read(r.id) for r in recs[1:4]] == [r.json_data for r in recs[1:4]]
        assert forge.audit(ET).consistent


def test_cli_show_values(tmp_path: Path) -> None:
    """``uuid-forge audit --show-values`` puts the values in the JSON; without it they stay out."""
    from .test_cli import run

    conf = tmp_path / "uuid-forge.toml"
    conf.write_text('[stores.db]\nurl = "sqlite:///db.sqlite3"\nrole = "source"\n\n'
                    f'[stores.files]\nurl = "file://{tmp_path}/files"\noptions = {{ fsync = false }}\n',
                    encoding="utf-8")
    code, _, err = run(["write", "-c", str(conf), ET, "-k", "email=a@x.org", "-d", "name=Ann"])
    assert code == 0, err
    [path] = (tmp_path / "files" / ET).rglob("*.json")
    doc = json.loads(path.read_text())
    path.write_text(json.dumps({**doc, "name": "Eve"}))
    code, out, _ = run(["audit", "-c", str(conf), "--json"])
    finding = json.loads(out)["findings"][0]
    assert code == 1 and finding["fields"] == ["name"] and "values" not in finding and "Eve" not in out
    code, out, _ = run(["audit", "-c", str(conf), "--json", "--show-values"])
    assert json.loads(out)["findings"][0]["values"] == {"name": {"store": "Eve", "source": "Ann"}}
    code, out, _ = run(["audit", "-c", str(conf)])
    assert "fields differ: name" in out and "Eve" not in out
