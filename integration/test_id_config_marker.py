"""Issue 10, finding 7: wrong keys must not pass silently (the ID-configuration marker).

A real PostgreSQL source and a real Redis store, driven through the real command line with the
environment a scheduled job would have. A first run writes under salt S; a later run without the
salt, or with another secret, must be refused before any store is touched (counted with the raw
drivers), an audit must say so in one finding, and ``ids accept`` must let a deliberate change
through.
"""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.scaffold import driver_missing

pytest.importorskip("psycopg", reason=driver_missing("psycopg"))
pytest.importorskip("redis", reason=driver_missing("redis"))
import psycopg
import redis

from uuid_forge import Forge

try:
    from uuid_forge.idmarker import META_TYPE, marker_id
except ImportError:  # the code before the marker (to see these tests fail there): no marker to clean up
    META_TYPE = ""

from .scaffold import FAST_WRITE, forget_redis_type, run_cli, write_forge_toml

SALT = "salt-S-never-printed"
SECRET_1 = "secret-one-never-printed"
SECRET_2 = "secret-two-never-printed"
N = 40


def run(*args: str, env: dict[str, str], stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The CLI as cron runs it: only the UUID_FORGE_* variables given, nothing inherited."""
    return run_cli(*args, env=env, stdin=stdin, salt=None, timeout=120)


def assert_one_clean_line(done: subprocess.CompletedProcess[str]) -> None:
    text = done.stdout + done.stderr
    for secret in (SALT, SECRET_1, SECRET_2):
        assert secret not in text
    assert "Traceback" not in text
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr


class Setup:
    def __init__(self, path: Path, et: str, pg: str, redis_url: str) -> None:
        self.path, self.et, self.pg, self.redis_url = path, et, pg, redis_url

    def rows(self) -> int:
        """Rows in the source's table for the type, counted with psycopg itself."""
        with psycopg.connect(self.pg.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
            found = conn.execute("SELECT to_regclass(%s)", (f'"uf_{self.et}"',)).fetchone()
            if found is None or found[0] is None:
                return 0
            return conn.execute(f'SELECT count(*) FROM "uf_{self.et}"').fetchone()[0]  # type: ignore[index]

    def keys(self) -> int:
        """Keys of the type in Redis, counted with redis-py itself."""
        client = redis.Redis.from_url(self.redis_url)
        try:
            return sum(1 for _ in client.scan_iter(match=f"{self.et}:*", count=1000))
        finally:
            client.close()

    def write(self, env: dict[str, str], start: int = 0, count: int = N) -> subprocess.CompletedProcess[str]:
        lines = "".join(json.dumps({"entity_type": self.et, "key": {"email": f"u{i}@example.com"}, "data": {"n": i}})
                        + "\n" for i in range(start, start + count))
        return run("write", "-c", str(self.path), "--jsonl", "-", "--json", env=env, stdin=lines)


@pytest.fixture
def setup(postgres_url: str, redis_url: str, tmp_path: Path) -> Iterator[Setup]:
    et = f"sf{uuid.uuid4().hex[:8]}"
    path = write_forge_toml(tmp_path / "uuid-forge.toml", {"db": postgres_url, "cache": redis_url}, "db",
                            namespace="safety-f.uuid-forge.test", write={**FAST_WRITE, "retries": 0})
    yield Setup(path, et, postgres_url, redis_url)
    with Forge.from_config(str(path), env={}) as forge:
        for h in forge.stores:
            if h.name != "down":
                h.adapter.drop(et, prover=forge.prover)
        if META_TYPE:
            forge.source.adapter.delete_many(META_TYPE, [marker_id(et)])
    forget_redis_type(redis_url, et)


def test_salt_unset_under_cron_is_refused_and_writes_nothing(setup: Setup) -> None:
    first = setup.write({"UUID_FORGE_SALT": SALT})
    assert first.returncode == 0, first.stderr
    assert setup.rows() == N and setup.keys() == N

    cron = setup.write({}, start=0, count=N + 5)  # the same keys and five new ones, the salt missing
    assert cron.returncode == 2, "written under new IDs: " + cron.stdout[-200:]
    assert_one_clean_line(cron)
    assert "the source was written with a salt and none is set now" in cron.stderr
    assert "UUID_FORGE_SALT" in cron.stderr and setup.et in cron.stderr
    assert setup.rows() == N and setup.keys() == N  # no duplicate row, no new key: nothing written anywhere

    single = run("write", "-c", str(setup.path), setup.et, "-k", "email=u1@example.com", env={"UUID_FORGE_SALT": "other"})
    assert_one_clean_line(single)
    assert single.returncode == 2 and "the salt differs from the one this source was written with" in single.stderr
    assert setup.rows() == N and setup.keys() == N
    nothing = run("replay", "-c", str(setup.path), env={"UUID_FORGE_SALT": SALT})
    assert nothing.returncode == 0 and "nothing to replay" in nothing.stdout  # the refusal journaled nothing


def test_another_secret_is_refused_and_named(setup: Setup) -> None:
    first = setup.write({"UUID_FORGE_SALT": SALT, "UUID_FORGE_SECRET": SECRET_1})
    assert first.returncode == 0, first.stderr

    other = setup.write({"UUID_FORGE_SALT": SALT, "UUID_FORGE_SECRET": SECRET_2})
    assert other.returncode == 2, "written under new IDs: " + other.stdout[-200:]
    assert_one_clean_line(other)
    assert "the secret differs from the one this source was written with" in other.stderr
    assert "salt" not in other.stderr.split("refused")[0]  # only what differs is named

    missing = setup.write({"UUID_FORGE_SALT": SALT})
    assert_one_clean_line(missing)
    assert missing.returncode == 2 and "written with a secret and none is set now" in missing.stderr
    assert setup.rows() == N and setup.keys() == N


def test_audit_under_wrong_config_is_one_finding(setup: Setup) -> None:
    assert setup.write({"UUID_FORGE_SALT": SALT}).returncode == 0
    good = run("audit", "-c", str(setup.path), "-e", setup.et, "--verify-keys", "--json", env={"UUID_FORGE_SALT": SALT})
    assert good.returncode == 0 and json.loads(good.stdout)["id_config"] == []

    wrong = {"UUID_FORGE_SALT": SALT, "UUID_FORGE_SECRET": SECRET_2}
    audit = run("audit", "-c", str(setup.path), "-e", setup.et, "--json", env=wrong)
    assert audit.returncode == 1, audit.stderr
    report = json.loads(audit.stdout)
    assert report["consistent"] is False and report["findings"] == []
    assert [(c["entity_type"], c["differs"]) for c in report["id_config"]] == [(setup.et, ["secret_added"])]

    verify = run("audit", "-c", str(setup.path), "-e", setup.et, "--verify-keys", env=wrong)
    assert verify.returncode == 1
    assert "Traceback" not in verify.stdout + verify.stderr and SECRET_2 not in verify.stdout
    summary = [ln for ln in verify.stdout.splitlines() if "do not match their keys" in ln]
    assert len(summary) == 1 and f"{N} of {N} stored IDs" in summary[0]
    assert "the ID configuration differs" in summary[0] and "secret" in summary[0]
    assert not [ln for ln in verify.stdout.splitlines() if ln.strip().startswith("malformed")]  # no per-record lines
    as_json = json.loads(run("audit", "-c", str(setup.path), "-e", setup.et, "--verify-keys", "--json", env=wrong).stdout)
    assert as_json["findings"] == [] and as_json["id_config"][0]["verify_keys"] == {"checked": N, "mismatched": N}

    repair = run("audit", "-c", str(setup.path), "-e", setup.et, "--repair", "--apply", env=wrong)
    assert_one_clean_line(repair)
    assert repair.returncode == 2 and "repair refused" in repair.stderr


def test_replay_under_wrong_config_is_refused(setup: Setup) -> None:
    text = setup.path.read_text()
    setup.path.write_text(text + '\n[stores.down]\nurl = "redis://127.0.0.1:1/0"\noptional = true\n')
    first = setup.write({"UUID_FORGE_SALT": SALT}, count=3)
    assert first.returncode == 0 and json.loads(first.stdout)["stores"]["down"]["status"] == "journaled"
    replay = run("replay", "-c", str(setup.path), env={})
    assert_one_clean_line(replay)
    assert replay.returncode == 2 and "replay refused" in replay.stderr and "none is set now" in replay.stderr
    still = run("replay", "-c", str(setup.path), "--json", env={"UUID_FORGE_SALT": SALT})
    assert json.loads(still.stdout)["pending_after"] == {"down": 3}  # the right config goes on as before


def test_accept_records_a_deliberate_rotation(setup: Setup) -> None:
    assert setup.write({"UUID_FORGE_SALT": SALT}).returncode == 0
    rotated = {"UUID_FORGE_SALT": "salt-T-rotated"}
    assert setup.write(rotated).returncode == 2

    status = run("ids", "status", "-c", str(setup.path), "-e", setup.et, "--json", env=rotated)
    assert status.returncode == 1 and json.loads(status.stdout)[0]["differs"] == ["salt"]
    plan = run("ids", "accept", "-c", str(setup.path), "-e", setup.et, env=rotated)
    assert plan.returncode == 1 and "would record" in plan.stdout and "add --yes" in plan.stdout
    assert setup.write(rotated).returncode == 2  # the plan recorded nothing

    assert "needs --rotate" in plan.stdout and "rebuilds none of the" in plan.stdout
    refused = run("ids", "accept", "-c", str(setup.path), "-e", setup.et, "--yes", env=rotated)
    assert_one_clean_line(refused)  # the salt in use rebuilds none of the IDs the source holds: not a repair
    assert refused.returncode == 2 and "--rotate" in refused.stderr
    assert setup.write(rotated).returncode == 2

    done = run("ids", "accept", "-c", str(setup.path), "-e", setup.et, "--rotate", "--yes", env=rotated)
    assert done.returncode == 0, done.stderr
    assert "recorded" in done.stdout and "the salt differs" in done.stdout and "salt-T" not in done.stdout
    assert "as a rotation" in done.stdout
    after = setup.write(rotated, start=N, count=5)
    assert after.returncode == 0, after.stderr
    assert setup.rows() == N + 5 and setup.keys() == N + 5
    assert run("ids", "status", "-c", str(setup.path), "-e", setup.et, env=rotated).returncode == 0
    old = setup.write({"UUID_FORGE_SALT": SALT}, count=1)
    assert old.returncode == 2 and "the salt differs" in old.stderr  # now the old salt is the wrong one
    help_text = run("ids", "accept", "--help", env={}).stdout
    assert "Existing IDs keep their old values" in help_text and "re-key" in help_text
