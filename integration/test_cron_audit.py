"""The audit as cron runs it: a fresh environment (PATH, HOME, LANG and what the EnvironmentFile
gives), a config file, ``audit --metrics FILE --json``; real servers (PostgreSQL source, Redis
stores). Each scheduled-run failure gives its documented exit code, a metrics file that says so,
and a one-line summary.

"Down" is a URL to a port nothing listens on (bound, then closed, so no server answers).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from uuid_forge import Forge

from .scaffold import forget_redis_type

SALT = "cron-salt-not-shown-0123456789"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def cron(*args: str, env_file: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The CLI as cron starts it: no inherited environment besides a minimal one."""
    env = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp"), "LANG": "C.UTF-8", **env_file}
    return subprocess.run([sys.executable, "-m", "uuid_forge", *args], capture_output=True, text=True, env=env,
                          timeout=300, check=False)


def metrics(path: Path) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    from prometheus_client.parser import text_string_to_metric_families

    return {(s.name, frozenset((k, v) for k, v in s.labels.items() if k not in ("entity_type", "partition"))): s.value
            for f in text_string_to_metric_families(path.read_text()) for s in f.samples}


def value(found: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    return found[(name, frozenset(labels.items()))]


@pytest.fixture
def site(postgres_url: str, redis_url: str, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A config (PostgreSQL source, a required Redis cache) and one entity type written to it."""
    pytest.importorskip("redis")
    pytest.importorskip("prometheus_client")
    et = f"cron{uuid.uuid4().hex[:8]}"
    cfg = tmp_path / "uuid-forge.toml"

    def configure(extra: str = "", cache: str = redis_url) -> Path:
        cfg.write_text(f'[ids]\nnamespace = "cron.example.com"\n[journal]\npath = "{tmp_path}/journal.sqlite3"\n'
                       f'[write]\nretries = 0\n[stores.db]\nurl = "{postgres_url}"\nrole = "source"\n'
                       f'[stores.cache]\nurl = "{cache}"\n' + extra, encoding="utf-8")
        return cfg

    configure()
    env = {"UUID_FORGE_SALT": SALT, "UUID_FORGE_CONFIG": str(cfg)}
    lines = "".join(json.dumps({"entity_type": et, "key": {"email": f"u{i}@example.com"}, "data": {"n": i}}) + "\n"
                    for i in range(20))
    done = subprocess.run([sys.executable, "-m", "uuid_forge", "write", "--jsonl", "-"], input=lines, text=True,
                          capture_output=True, env={**os.environ, **env}, check=False, timeout=300)
    assert done.returncode == 0, done.stderr
    try:
        yield {"et": et, "env": env, "cfg": cfg, "configure": configure, "prom": tmp_path / "audit.prom",
               "redis_url": redis_url}
    finally:
        configure()
        with Forge.from_config(str(cfg), env={"UUID_FORGE_SALT": SALT}) as forge:
            for h in forge.stores:
                h.adapter.drop(et, prover=forge.prover)
        forget_redis_type(redis_url, et)


def audit(site: dict[str, Any], *extra: str, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any], str]:
    done = cron("audit", "--entity", site["et"], "--metrics", str(site["prom"]), "--json", *extra,
                env_file=site["env"] if env is None else env)
    assert "Traceback" not in done.stderr + done.stdout
    body = json.loads(done.stdout) if done.stdout.strip().startswith("{") else {}
    return done.returncode, body, done.stderr


def test_a_clean_run_exits_0_quietly_with_success_metrics(site: dict[str, Any]) -> None:
    code, body, err = audit(site)
    assert code == 0 and body["consistent"] and body["complete"], err
    assert body["summary"].startswith(f"consistent: audit of {site['et']} against db: consistent (20 source")
    assert err == ""  # quiet when all is well: cron mails nothing but the JSON the job asked for
    found = metrics(site["prom"])
    assert value(found, "uuid_forge_audit_exit_status") == 0
    assert value(found, "uuid_forge_audit_findings", store="cache", **{"class": "ok"}) == 20
    assert value(found, "uuid_forge_audit_last_success_timestamp_seconds") > 0


def test_drift_planted_exits_1_with_the_findings_in_the_metrics(site: dict[str, Any]) -> None:
    import redis

    client = redis.Redis.from_url(site["redis_url"])
    keys = sorted(k for k in client.scan_iter(match=f"*{site['et']}*") if b"__" not in k)
    assert keys, "the write put nothing in Redis"
    client.delete(keys[0])
    client.close()
    code, body, _ = audit(site)
    assert code == 1 and not body["consistent"]
    assert body["summary"].startswith("INCONSISTENT: ") and "cache: 1 missing" in body["summary"]
    found = metrics(site["prom"])
    assert value(found, "uuid_forge_audit_exit_status") == 1
    assert value(found, "uuid_forge_audit_findings", store="cache", **{"class": "missing"}) == 1
    assert value(found, "uuid_forge_audit_last_success_timestamp_seconds") == 0


def test_an_optional_store_down_audits_the_rest_and_exits_2(site: dict[str, Any]) -> None:
    site["configure"](f'[stores.search]\nurl = "redis://127.0.0.1:{closed_port()}/0"\noptional = true\n')
    code, body, _ = audit(site)
    assert code == 2 and body["complete"] is False and set(body["not_audited"]) == {"search"}
    assert body["stores"]["cache"]["ok"] == 20  # the store that answered was audited
    assert body["summary"].startswith("INCOMPLETE: ") and "NOT AUDITED: search" in body["summary"]
    found = metrics(site["prom"])
    assert value(found, "uuid_forge_audit_exit_status") == 2
    assert value(found, "uuid_forge_audit_store_audited", store="search") == 0
    assert value(found, "uuid_forge_audit_store_audited", store="cache") == 1
    assert value(found, "uuid_forge_audit_findings", store="cache", **{"class": "ok"}) == 20


def test_a_required_store_down_exits_2_with_a_failure_metric(site: dict[str, Any]) -> None:
    site["configure"](cache=f"redis://127.0.0.1:{closed_port()}/0")
    code, body, err = audit(site)
    assert code == 2 and body == {}
    assert len(err.strip().splitlines()) == 1 and err.startswith("uuid-forge: error: ")
    found = metrics(site["prom"])
    assert value(found, "uuid_forge_audit_exit_status") == 2
    assert value(found, "uuid_forge_audit_last_success_timestamp_seconds") == 0


def test_a_typo_in_entity_exits_2_with_the_suggestion(site: dict[str, Any]) -> None:
    done = cron("audit", "--entity", site["et"][:-1] + "x", "--metrics", str(site["prom"]), "--json",
                env_file=site["env"])
    body = json.loads(done.stdout)
    assert done.returncode == 2 and body["did_you_mean"] == site["et"]
    assert value(metrics(site["prom"]), "uuid_forge_audit_exit_status") == 2


def test_the_salt_missing_exits_1_with_an_id_config_finding(site: dict[str, Any]) -> None:
    env = {k: v for k, v in site["env"].items() if k != "UUID_FORGE_SALT"}  # the EnvironmentFile was not read
    code, body, err = audit(site, env=env)
    assert code == 1, (body, err)  # one id-config finding per type (docs/cli.md): the IDs would not match
    summary = body.get("summary", "") or err
    assert "\n" not in summary.strip() and SALT not in summary
    found = metrics(site["prom"])
    assert value(found, "uuid_forge_audit_exit_status") == code
    assert value(found, "uuid_forge_audit_last_success_timestamp_seconds") == 0
    assert body["id_config"] and body["id_config"][0]["entity_type"] == site["et"]
    assert "ID configuration differs" in body["summary"] and "; (" not in body["summary"]
    assert value(found, "uuid_forge_audit_id_config_mismatches") == 1  # alerting can see it


def test_an_optional_store_down_with_every_type_and_worker_processes(site: dict[str, Any]) -> None:
    """The default audit (every type, partitions in worker processes) lists the types with the
    optional store down instead of failing on it (a fresh-eyes run found it exiting 2 with no report)."""
    site["configure"](f'[stores.search]\nurl = "redis://127.0.0.1:{closed_port()}/0"\noptional = true\n')
    done = cron("audit", "--workers", "2", "--json", "--metrics", str(site["prom"]), env_file=site["env"])
    assert "Traceback" not in done.stderr + done.stdout and done.stdout.strip().startswith("{"), done.stderr
    body = json.loads(done.stdout)
    assert done.returncode == 2 and set(body["not_audited"]) == {"search"} and body["consistent"] is False
    assert site["et"] in body["entity_types"] and body["stores"]["cache"]["ok"] >= 20
    assert body["summary"].startswith("INCOMPLETE: ") and "NOT AUDITED: search" in body["summary"]
    assert value(metrics(site["prom"]), "uuid_forge_audit_store_audited", store="search") == 0
