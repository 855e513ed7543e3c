"""The command line against real servers: stores, write, replay, audit and demo with a config file."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from uuid_forge import Forge

from .scaffold import FAST_WRITE, forget_redis_type, run_cli, write_forge_toml

SECRET_PW = "hunter2-pw"


def cli(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, stdin=stdin, salt="cli-salt-not-shown")


@pytest.fixture
def config(postgres_url: str, redis_url: str, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    et = f"cli{uuid.uuid4().hex[:8]}"
    pg = postgres_url.replace("postgres@", f"postgres:{SECRET_PW}@", 1)  # trust auth ignores it; we must hide it
    path = write_forge_toml(tmp_path / "uuid-forge.toml",
                            {"db": pg, "cache": redis_url, "files": f"file://{tmp_path}/files?fsync=false"},
                            "db", namespace="cli.uuid-forge.test", write=FAST_WRITE)
    yield path, et
    with Forge.from_config(str(path)) as forge:
        for h in forge.stores:
            h.adapter.drop(et, prover=forge.prover)
    forget_redis_type(redis_url, et)  # the drop above proves nothing without the CLI's salt


def assert_clean(done: subprocess.CompletedProcess[str]) -> None:
    text = done.stdout + done.stderr
    assert SECRET_PW not in text and "cli-salt-not-shown" not in text
    assert "Traceback" not in text


def test_write_audit_repair_cycle(config: tuple[Path, str]) -> None:
    path, et = config
    stores = cli("stores", "-c", str(path), "--json")
    assert_clean(stores)
    assert stores.returncode == 0 and all(r["reachable"] for r in json.loads(stores.stdout))

    one = cli("write", "-c", str(path), et, "-k", "email=john@example.com", "-d", "name=John", "-d", "age:=42",
              "--json")
    assert_clean(one)
    assert one.returncode == 0 and json.loads(one.stdout)["complete"] is True

    lines = "".join(json.dumps({"entity_type": et, "key": {"email": f"u{i}@example.com"}, "data": {"n": i}}) + "\n"
                    for i in range(500))
    (path.parent / "people.jsonl").write_text(lines)
    many = cli("write", "-c", str(path), "--jsonl", str(path.parent / "people.jsonl"), "--json")
    assert_clean(many)
    assert many.returncode == 0 and json.loads(many.stdout)["entities"] == 500

    clean = cli("audit", "-c", str(path), "--entity", et, "--json")
    assert clean.returncode == 0 and json.loads(clean.stdout)["stores"]["cache"]["ok"] == 501

    with Forge.from_config(str(path), env={"UUID_FORGE_SALT": "cli-salt-not-shown"}) as forge:  # drift behind our back
        cache = forge.stores[1].adapter
        cache.delete_many(et, [forge.id_for(et, {"email": "u1@example.com"})])
    drift = cli("audit", "-c", str(path), "--entity", et)
    assert_clean(drift)
    assert drift.returncode == 1 and "INCONSISTENT: " in drift.stdout and "cache: 1 missing" in drift.stdout
    plan = cli("audit", "-c", str(path), "--entity", et, "--repair")
    assert plan.returncode == 1 and "rewrite 1 record(s)" in plan.stdout and "dry run" in plan.stdout
    fixed = cli("audit", "-c", str(path), "--entity", et, "--repair", "--apply", "--json")
    assert_clean(fixed)
    assert fixed.returncode == 0 and json.loads(fixed.stdout)["after_repair"]["consistent"] is True

    replay = cli("replay", "-c", str(path))
    assert replay.returncode == 0 and "nothing to replay" in replay.stdout


def test_bad_jsonl_line_writes_nothing(config: tuple[Path, str]) -> None:
    path, et = config
    good = json.dumps({"entity_type": et, "key": {"email": "a@example.com"}, "data": {}})
    bad = json.dumps({"entity_type": et, "key": {"email": "b@example.com"}, "data": {"ratio": float("nan")}})
    (path.parent / "bad.jsonl").write_text(good + "\n" + bad + "\n")
    done = cli("write", "-c", str(path), "--jsonl", str(path.parent / "bad.jsonl"))
    assert_clean(done)
    assert done.returncode == 2 and "bad.jsonl line 2" in done.stderr and "not a finite number" in done.stderr
    audit = cli("audit", "-c", str(path), "--entity", et, "--json")
    # nothing written anywhere: no store knows the type at all
    assert audit.returncode == 2 and "neither the configuration nor any store knows" in json.loads(audit.stdout)["error"]


def test_jsonl_duplicate_member_or_deep_line_writes_nothing(config: tuple[Path, str]) -> None:
    """Issue 18: a member repeated in a line (last one used to win) or a line nested 10,000 levels
    (an unhandled RecursionError) is refused with its file and line; no store gets anything."""
    path, et = config
    good = json.dumps({"entity_type": et, "key": {"email": "a@example.com"}, "data": {"name": "A"}})
    head = '{"entity_type": "' + et + '", "key": {"email": "b@example.com"}, "data": '
    twice = head + '{"name": "B", "name": "hidden-B"}}'
    deep = head + '{"v": ' + "[" * 10_000 + "]" * 10_000 + "}}"
    for bad, reason in ((twice, 'member "name" appears twice'), (deep, "nesting deeper than 100 levels")):
        (path.parent / "bad.jsonl").write_text(good + "\n" + good.replace("a@", "z@") + "\n" + bad + "\n")
        done = cli("write", "-c", str(path), "--jsonl", str(path.parent / "bad.jsonl"))
        assert_clean(done)
        assert done.returncode == 2 and f"bad.jsonl line 3: {reason}" in done.stderr, done.stderr
        assert "hidden-B" not in done.stderr and "unexpected" not in done.stderr
    with Forge.from_config(str(path), env={"UUID_FORGE_SALT": "cli-salt-not-shown"}) as forge:
        for h in forge.stores:  # PostgreSQL, Redis and files: not one record, not even the good lines'
            assert et not in h.adapter.entity_types(), h.name
    audit = cli("audit", "-c", str(path), "--entity", et, "--json")
    assert audit.returncode == 2 and "neither the configuration nor any store knows" in json.loads(audit.stdout)["error"]


def test_optional_store_down_is_journaled_and_replay_says_so(config: tuple[Path, str]) -> None:
    path, et = config
    text = path.read_text().replace('[stores.files]', '[stores.down]\nurl = "redis://user:hunter2-pw@127.0.0.1:1/0"\n'
                                    'optional = true\n\n[stores.files]')
    path.write_text(text)
    done = cli("write", "-c", str(path), et, "-k", "email=x@example.com", "--json")
    assert_clean(done)
    assert done.returncode == 0
    report = json.loads(done.stdout)
    assert report["ok"] is True and report["stores"]["down"]["status"] == "journaled"
    stores = cli("stores", "-c", str(path))
    assert_clean(stores)
    assert "no" in stores.stdout
    replay = cli("replay", "-c", str(path), "--json")
    assert_clean(replay)
    assert replay.returncode == 1 and json.loads(replay.stdout)["pending_after"] == {"down": 1}
    path.write_text(text.replace('[stores.down]\nurl = "redis://user:hunter2-pw@127.0.0.1:1/0"\noptional = true\n\n', ""))
    gone = cli("replay", "-c", str(path))
    assert gone.returncode == 2 and "no longer has" in gone.stderr


def test_demo_against_real_servers(config: tuple[Path, str]) -> None:
    path, _ = config
    done = cli("demo", "-c", str(path), "--users", "200", "--orders", "50", "--json")
    assert_clean(done)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["ok"] and result["final_audit"]["consistent"]
    kinds = {(p["store"], p["class"]) for p in result["planted"]}
    assert {("cache", "missing"), ("cache", "orphan"), ("cache", "stale"), ("files", "malformed")} <= kinds
