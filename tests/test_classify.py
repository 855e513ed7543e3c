"""uuid_forge.classify: ours, ours in the wrong form, or someone else's (issue 10, findings 2 and 3)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from uuid_forge import ForeignEntry, IDConfig, MalformedID, Namespace, UUIDGenerator, encode
from uuid_forge.classify import ANY_VERSIONS, classify, parse_id, scheme_versions
from uuid_forge.entitytypes import EntityType
from uuid_forge.ids import SCHEME_LEGACY

from .scaffold import make_forge

V5 = UUIDGenerator(IDConfig(namespace=Namespace("classify.uuid-forge.test"))).generate("user", "a")
V8 = UUIDGenerator(IDConfig(secret="s3cret-for-tests")).generate("user", "a")
V4 = uuid.UUID("7570842a-fbec-40d3-ae25-3f1c2bda326b")


@pytest.mark.parametrize("text", [
    "session-abc", "42", "42:prefs", "README.txt", "legacy-42", "invoice-2024-001", "other-app-doc",
    "user:" + str(V5), "", "0" * 39, str(V5)[:-1], str(V5) + "x", "urn:uuid:" + str(V5)[:-1],
])
def test_other_applications_names_are_foreign(text: str) -> None:
    found = classify(text, "string", raw=f"user:{text}")
    assert isinstance(found, ForeignEntry) and found.raw == f"user:{text}" and "not ours" in found.reason


@pytest.mark.parametrize("form", ["string", "hex", "base64url"])
def test_the_expected_form_is_the_id(form: str) -> None:
    assert classify(str(encode(V5, form)), form) == V5


@pytest.mark.parametrize("text, form", [
    (str(V5).upper(), "upper-case string"), (V5.hex, "hex"), (V5.hex.upper(), "upper-case hex"),
    ("urn:uuid:" + str(V5), "urn"), ("{" + str(V5) + "}", "braced string"),
    (str(encode(V5, "base64url")), "base64url"), (str(encode(V5, "base32")), "base32"),
    (str(encode(V5, "base32")).upper(), "upper-case base32"),
])
def test_our_id_in_another_form_is_malformed(text: str, form: str) -> None:
    found = classify(text, "string", raw="k")
    assert isinstance(found, MalformedID) and found.id == V5 and f"in {form} form" in found.reason
    assert parse_id(text) == (V5, form)


def test_versions_decide_whose_a_uuid_is() -> None:
    assert isinstance(classify(str(V4).upper(), "string"), ForeignEntry)  # a v4 is never ours
    assert isinstance(classify(V8.hex, "string", versions=frozenset({5})), ForeignEntry)
    assert isinstance(classify(V8.hex, "string", versions=frozenset({8})), MalformedID)
    assert isinstance(classify(V5.hex, "string", versions=frozenset({8})), ForeignEntry)
    assert isinstance(classify(uuid.UUID(int=42).hex, "string"), ForeignEntry)  # not the RFC variant
    assert classify(str(V4), "string") == V4  # the store's own encoding is read as an ID whatever its version


def test_scheme_versions() -> None:
    assert scheme_versions(None) == ANY_VERSIONS == frozenset({5, 8})
    assert scheme_versions(IDConfig()) == frozenset({5})
    assert scheme_versions(IDConfig(scheme=SCHEME_LEGACY)) == frozenset({5})
    assert scheme_versions(IDConfig(secret="k")) == frozenset({8})


def test_repair_keeps_a_foreign_file_and_fixes_a_malformed_one(tmp_path: Path) -> None:
    """The file store and a SQLite source, no servers: the issue's README.txt survives a repair."""
    forge = make_forge(tmp_path, ("db", f"sqlite:///{tmp_path / 'src.db'}"),
                       ("files", f"file://{tmp_path / 'files'}?fsync=false"),
                       ids=IDConfig(namespace=Namespace("classify.uuid-forge.test")), journal="j.db",
                       types=[EntityType("user", key=("n",))])  # the files keep the key field: provably ours
    with forge:
        forge.write_many([("user", {"n": i}, {"n": i}) for i in range(5)])
        ident = forge.id_for("user", {"n": 0})
        s = str(ident)
        good = tmp_path / "files" / "user" / s[0:2] / s[2:4] / f"{s}.json"
        good.rename(good.with_name(f"{s.upper()}.json"))
        readme = tmp_path / "files" / "user" / "ab" / "cd" / "README.txt"
        readme.parent.mkdir(parents=True)
        readme.write_bytes(b"notes")
        report = forge.audit("user", repair=True)
        assert readme.read_bytes() == b"notes"
        assert report.stores["files"]["foreign"] == 1 and report.stores["files"]["malformed"] == 1
        assert report.foreign_samples == {"files": ["user: user/ab/cd/README.txt"]}
        assert good.exists() and not good.with_name(f"{s.upper()}.json").exists()
        after = forge.audit("user")
        assert after.consistent and after.stores["files"]["foreign"] == 1 and after.stores["files"]["ok"] == 5
        assert after.to_dict()["stores"]["files"]["foreign"] == 1
        forge.drop("user", stores=["files"])  # a directory shared with others: the proven files go, README stays
        assert readme.read_bytes() == b"notes" and not good.exists()


def test_a_malformed_entry_whose_id_the_source_lacks_is_unproven_and_kept(tmp_path: Path) -> None:
    """Ours in the wrong form, and the source lacks it: not a rewrite the source cannot feed (the
    plan used to promise "rewrite 1" and repair did nothing, for ever). A name in the wrong form
    cannot be read back to prove the entry ours (issue 18), so it is "unproven": reported with how
    to make it provable, and kept even with --delete-orphans (it used to be deleted by its raw name)."""
    forge = make_forge(tmp_path, ("db", f"sqlite:///{tmp_path / 'src.db'}"),
                       ("files", f"file://{tmp_path / 'files'}?fsync=false"),
                       ids=IDConfig(namespace=Namespace("classify.uuid-forge.test")), journal="j.db")
    with forge:
        forge.write_many([("user", {"n": 1}, {"n": 1})])
        stray = forge.id_for("user", {"n": 999})  # an ID of ours, never written to the source
        s = str(stray)
        path = tmp_path / "files" / "user" / s[0:2] / s[2:4] / f"{s.upper()}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text('{"fp":"x","id":"' + s + '","key":null,"data":{}}')
        report = forge.audit("user", repair=True)
        assert report.stores["files"]["unproven"] == 1 and report.stores["files"]["malformed"] == 0
        assert report.stores["files"]["orphan"] == 0
        assert [f.kind for f in report.findings] == ["unproven"] and "wrong form" in report.findings[0].detail
        assert report.repaired.get("files", {}).get("malformed_removed", 0) == 0 and path.exists()
        plan = forge.audit("user", repair=True, dry_run=True, delete_orphans=True).plan
        assert [(r.store, r.rewrite, r.delete) for r in plan.rows if r.rewrite or r.delete] == []
        done = forge.audit("user", repair=True, delete_orphans=True)
        assert done.repaired.get("files", {}).get("orphans_deleted", 0) == 0 and path.exists()
        assert forge.audit("user").stores["files"]["unproven"] == 1
