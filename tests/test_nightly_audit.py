"""The nightly audit always has an answer: a full audit covers the types the source declares or
holds, and a type only another store holds is a ``stray_type`` finding naming the store and
``--entity`` (exit 1), never exit 2. A store refusing a type --entity names is named.

Files and a SQLite table of the user's own (which holds one type) stand in for the real servers
(integration/test_nightly_audit.py runs the same on PostgreSQL, Redis and files).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from uuid_forge import Forge

from .scaffold import run_cli, write_forge_toml

SALT = "nightly-unit-salt-0123456789"
INVOICE = "abcd0000-0000-5000-8000-000000000000"


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """A user table (source, type user) and files, one user written, one stray invoice file."""
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as raw:
        raw.execute("CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT NOT NULL, name TEXT)")
    cfg = write_forge_toml(
        tmp_path / "uf.toml",
        {"db": {"url": f"sqlite:///{db}", "options": {"table": "users", "entity_type": "user",
                                                      "fields": {"email": "email", "name": "name"}}},
         "files": f"file://{tmp_path / 'files'}"},
        "db", namespace="nightly.example.com", extra='[types.user]\nkey = ["email"]\n')
    line = json.dumps({"entity_type": "user", "key": {"email": "ann@example.com"},
                       "data": {"email": "ann@example.com", "name": "Ann"}})
    code, _, err = run_cli(["write", "-c", str(cfg), "--jsonl", "-"], {"UUID_FORGE_SALT": SALT}, stdin=line + "\n")
    assert code == 0, err
    stray = tmp_path / "files" / "invoice" / "ab" / "cd" / f"{INVOICE}.json"
    stray.parent.mkdir(parents=True)
    stray.write_text('{"total": 12}', encoding="utf-8")
    return cfg


def audit(cfg: Path, *args: str) -> tuple[int, str, str]:
    return run_cli(["audit", "-c", str(cfg), *args], {"UUID_FORGE_SALT": SALT}, columns=200)


def test_a_stray_type_is_a_finding_naming_the_store_not_exit_2(site: Path) -> None:
    code, out, err = audit(site)
    assert code == 1, out + err
    assert "stray type" in out and "'files'" in out and "'invoice'" in out and "--entity invoice" in out
    assert "not accepted" not in out + err
    assert out.rstrip().splitlines()[-1].startswith("INCONSISTENT: audit of user against db: 1 stray type")


def test_the_consistent_types_are_still_audited_beside_a_stray(site: Path, tmp_path: Path) -> None:
    for f in (tmp_path / "files" / "user").rglob("*.json"):
        f.unlink()  # the user's file lost: still found missing
    code, out, _ = audit(site, "--json")
    body = json.loads(out)
    assert code == 1
    assert body["entity_types"] == ["user"]
    assert body["stores"]["files"]["missing"] == 1 and body["stores"]["files"]["stray_type"] == 1
    assert [(s["store"], s["entity_type"], s["count"]) for s in body["stray_types"]] == [("files", "invoice", 1)]


def test_stray_samples_are_masked_unless_show_values(site: Path, tmp_path: Path) -> None:
    other = tmp_path / "files" / "invoice" / "john@example.com.json"
    other.write_text("{}", encoding="utf-8")
    _, out, _ = audit(site, "--json")
    samples = json.loads(out)["stray_types"][0]["samples"]
    assert not any("john" in s for s in samples), samples
    _, out, _ = audit(site, "--json", "--show-values")
    assert any("john@example.com" in s for s in json.loads(out)["stray_types"][0]["samples"])


def test_the_html_report_names_the_stray(site: Path, tmp_path: Path) -> None:
    page = tmp_path / "audit.html"
    code, _, _ = audit(site, "--html", str(page))
    assert code == 1
    text = page.read_text(encoding="utf-8")
    assert "stray type" in text and "invoice" in text and "--entity invoice" in text


def test_an_entity_a_store_refuses_is_named_with_the_store(site: Path) -> None:
    code, out, err = audit(site, "--entity", "invoice")
    assert code == 2
    assert "store 'db' (source" in out + err and "'invoice'" in out + err


def test_without_strays_the_audit_is_consistent(site: Path, tmp_path: Path) -> None:
    for f in (tmp_path / "files" / "invoice").rglob("*.json"):
        f.unlink()
    code, out, _ = audit(site)
    assert code == 0, out


def test_forge_audit_reports_strays_and_a_declared_type_with_no_records(site: Path) -> None:
    with Forge.from_config(str(site), env={"UUID_FORGE_SALT": SALT}) as forge:
        report = forge.audit()
    assert report.entity_types == ["user"] and not report.consistent
    assert report.stray_types[0]["store"] == "files" and report.stray_types[0]["count"] == 1
    assert "stray type" in str(report)


# -- findings name the entity: the key fields beside the ID, masked unless --show-values -----------
def _lose_user_file(tmp_path: Path) -> None:
    for f in (tmp_path / "files" / "user").rglob("*.json"):
        f.unlink()


def test_a_missing_finding_shows_its_key_from_the_source_masked(site: Path, tmp_path: Path) -> None:
    _lose_user_file(tmp_path)
    out_file = tmp_path / "out.json"
    code, out, _ = audit(site, "--output", str(out_file))
    assert code == 1
    line = next(x for x in out.splitlines() if x.lstrip().startswith("missing"))
    assert "email=a••@e••••••.c••" in line and "ann@example.com" not in out
    written = json.loads(out_file.read_text(encoding="utf-8"))
    assert [f["key"] for f in written["findings"]] == [{"email": "a••@e••••••.c••"}]
    code, out, _ = audit(site, "--json", "--show-values")
    assert [f["key"] for f in json.loads(out)["findings"]] == [{"email": "ann@example.com"}]


def test_an_orphan_finding_shows_its_key_from_the_store(site: Path, tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / "app.db") as raw:
        raw.execute("DELETE FROM users")
    code, out, _ = audit(site, "--json", "--show-values")
    assert code == 1
    orphans = [f for f in json.loads(out)["findings"] if f["class"] == "orphan"]
    assert [f["key"] for f in orphans] == [{"email": "ann@example.com"}], out


def test_the_html_report_shows_the_key_masked_or_clear(site: Path, tmp_path: Path) -> None:
    _lose_user_file(tmp_path)
    page = tmp_path / "audit.html"
    audit(site, "--html", str(page))
    text = page.read_text(encoding="utf-8")
    assert "email=a••@e••••••.c••" in text and "ann@example.com" not in text
    audit(site, "--html", str(page), "--show-values")
    assert "email=ann@example.com" in page.read_text(encoding="utf-8")


def test_a_consistent_audit_reads_no_key(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from uuid_forge import entitynames

    for f in (tmp_path / "files" / "invoice").rglob("*.json"):
        f.unlink()
    named: list[int] = []
    real = entitynames._key
    monkeypatch.setattr(entitynames, "_key", lambda *a, **k: named.append(1) or real(*a, **k))
    code, _, _ = audit(site)
    assert code == 0 and not named


# -- validate runs every check opening the stores runs, nothing written --------------------------
def _validate(cfg: Path, *args: str) -> tuple[int, str, str]:
    return run_cli(["validate", "-c", str(cfg), *args], {"UUID_FORGE_SALT": SALT}, columns=300)


def _checks(cfg: Path) -> tuple[int, list[dict[str, str]]]:
    code, out, _ = _validate(cfg, "--json")
    return code, json.loads(out)["checks"]


def test_validate_passes_a_good_configuration_and_lists_each_check(site: Path) -> None:
    code, checks = _checks(site)
    assert code == 0, checks
    named = {(c["store"], c["check"]): c["status"] for c in checks}
    assert named[("db", "options")] == "ok" and named[("db", "table 'users'")] == "ok"
    assert named[("db", "ID-configuration guard")] == "ok" and named[("files", "answers")] == "ok"


@pytest.mark.parametrize("env", [{"UUID_FORGE_SALT": "another-salt-0123456789"},
                                 {"UUID_FORGE_SALT": SALT, "UUID_FORGE_SECRET": "k" * 32}])
def test_validate_fails_a_salt_or_secret_the_source_was_not_written_with(site: Path, env: dict[str, str]) -> None:
    """Every write would refuse this configuration (the marker differs): validate must not pass it."""
    code, out, err = run_cli(["validate", "-c", str(site), "--json"], env, columns=300)
    assert code == 2, out + err
    checks = {(c["store"], c["check"]): c for c in json.loads(out)["checks"]}
    mine = checks[("db", "ID configuration of user")]
    assert mine["status"] == "failed" and "entity type 'user': the" in mine["message"] and "refused" in mine["message"]
    assert all(v not in out + err for v in env.values())  # neither salt nor secret shown
    code, checks_now = _checks(site)  # the salt it was written with: the same marker
    assert code == 0 and {(c["check"], c["status"]) for c in checks_now} >= {("ID configuration of user", "ok")}


def test_validate_names_a_misspelled_option_with_the_close_match(site: Path) -> None:
    text = site.read_text(encoding="utf-8")
    site.write_text(text.replace('url = "file://', 'options = { layuot = "data" }\nurl = "file://'), encoding="utf-8")
    code, out, err = _validate(site)
    assert code == 2
    line = next(x for x in out.splitlines() if "layuot" in x)
    assert line.startswith("failed") and "files: options" in line and "Did you mean 'layout'?" in line
    assert "configuration refused" in err


def test_validate_names_a_mapped_field_whose_column_is_missing(site: Path, tmp_path: Path) -> None:
    before = sorted(p.name for p in tmp_path.iterdir())
    site.write_text(site.read_text(encoding="utf-8").replace('name = "name" }', 'name = "name", nick = "nick" }'),
                    encoding="utf-8")
    code, checks = _checks(site)
    assert code == 2
    failed = [c for c in checks if c["status"] == "failed"]
    assert [(c["store"], c["check"]) for c in failed] == [("db", "table 'users'")]
    assert "no column 'nick'" in failed[0]["message"]
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # nothing written (no journal either)


def test_validate_names_an_unmapped_not_null_column(tmp_path: Path) -> None:
    db = tmp_path / "app.db"
    with sqlite3.connect(db) as raw:
        raw.execute("CREATE TABLE users (id TEXT PRIMARY KEY, email TEXT, tenant TEXT NOT NULL)")
    cfg = write_forge_toml(tmp_path / "uf.toml", {"db": {"url": f"sqlite:///{db}", "options": {
        "table": "users", "entity_type": "user", "fields": {"email": "email"}}}}, "db",
        namespace="nightly.example.com", extra='[types.user]\nkey = ["email"]\n')
    code, checks = _checks(cfg)
    assert code == 2
    bad = next(c for c in checks if c["status"] == "failed")
    assert bad["store"] == "db" and "tenant" in bad["message"] and "NOT NULL" in bad["message"]


def test_validate_says_the_id_configuration_guard_is_off(tmp_path: Path) -> None:
    cfg = write_forge_toml(tmp_path / "uf.toml", {"files": {"url": f"file://{tmp_path / 'raw'}",
                                                            "options": {"layout": "raw"}}}, "files",
                           namespace="nightly.example.com")
    code, out, _ = _validate(cfg)
    line = next(x for x in out.splitlines() if "ID-configuration guard" in x)
    assert line.startswith("off") and "files" in line and "not detected" in line
    assert code == 0
    code, _, _ = _validate(cfg, "--strict")
    assert code == 1


def test_validate_offline_opens_no_store(site: Path) -> None:
    text = site.read_text(encoding="utf-8")
    site.write_text(text.replace('url = "file://', 'options = { layuot = "data" }\nurl = "file://'), encoding="utf-8")
    code, out, _ = _validate(site, "--offline")
    assert code == 0 and "layuot" not in out


# -- unproven entries: the advice readable, the names masked; acknowledged by [audit] unproven --------
LOOKALIKE = "0123abcd-0000-4000-8000-00000000beef"  # another application's file named like an ID


def _plant_unproven(tmp_path: Path) -> None:
    """A file in the user folder, named in our form, holding no key field: not proven ours."""
    for f in (tmp_path / "files" / "invoice").rglob("*.json"):
        f.unlink()
    theirs = tmp_path / "files" / "user" / LOOKALIKE[:2] / LOOKALIKE[2:4] / f"{LOOKALIKE}.json"
    theirs.parent.mkdir(parents=True, exist_ok=True)
    theirs.write_text('{"token": "t"}', encoding="utf-8")


def test_the_unproven_hint_is_readable_and_the_name_masked(site: Path, tmp_path: Path) -> None:
    from uuid_forge.ownership import HOW_TO_PROVE

    _plant_unproven(tmp_path)
    code, out, _ = audit(site)
    assert code == 1
    line = next(x for x in out.splitlines() if x.lstrip().startswith("unproven"))
    assert "store the type's key fields in this store" in out and LOOKALIKE not in out, line
    code, out, _ = audit(site, "--json")
    (found,) = [f for f in json.loads(out)["findings"] if f["class"] == "unproven"]
    assert found["detail"].endswith(HOW_TO_PROVE) and found["id"] != LOOKALIKE and "•" in found["id"]


def test_unproven_fails_the_audit_unless_acknowledged(site: Path, tmp_path: Path) -> None:
    _plant_unproven(tmp_path)
    assert audit(site)[0] == 1  # the default: "fail"
    site.write_text(site.read_text(encoding="utf-8") + '\n[audit]\nunproven = "report"\n', encoding="utf-8")
    code, out, _ = audit(site)
    assert code == 0, out
    assert "unproven" in out and "store the type's key fields" in out  # still listed
    last = out.rstrip().splitlines()[-1]
    assert last.startswith("acknowledged:") and '1 unproven acknowledged ([audit] unproven = "report")' in last
    code, out, _ = audit(site, "--json")
    body = json.loads(out)
    assert code == 0 and body["exit_code"] == 0 and body["stores"]["files"]["unproven"] == 1
    assert body["acknowledged"] == {"unproven": 1} and body["consistent"] is False


def test_acknowledging_unproven_hides_no_other_finding(site: Path, tmp_path: Path) -> None:
    _plant_unproven(tmp_path)
    site.write_text(site.read_text(encoding="utf-8") + '\n[audit]\nunproven = "report"\n', encoding="utf-8")
    for f in (tmp_path / "files" / "user").rglob("*.json"):
        if LOOKALIKE not in f.name:
            f.unlink()  # the user's own file lost: missing, still exit 1
    code, out, _ = audit(site)
    assert code == 1 and out.rstrip().splitlines()[-1].startswith("INCONSISTENT"), out


def test_a_bad_audit_unproven_setting_is_refused_by_name(site: Path) -> None:
    site.write_text(site.read_text(encoding="utf-8") + '\n[audit]\nunproven = "ignore"\n', encoding="utf-8")
    code, out, err = audit(site)
    assert code == 2 and "[audit] unproven" in out + err and "'report'" in out + err
