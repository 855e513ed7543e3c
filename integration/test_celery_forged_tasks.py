"""A task proves nothing by arriving (issue 18, rule 5): tasks forged on the broker, against a real
`celery -A uuid_forge.celery worker` on the real RabbitMQ broker (this suite's vhost) and the Redis
result backend, with the stores of integration/scaffold.py's ``celery_config``.

Anyone who can publish to the broker can send a task, and the stores digest a task carries is not
a secret (it is computed here from the configuration). So:

* a repair task naming real cache keys as "orphans" deletes nothing and says so;
* a task naming an ``output`` path writes nothing there (reports go to the worker's report_dir);
* partition results left in the result backend hold no other application's key names;
* with message signing, a worker refuses an unsigned task before running it.
"""

from __future__ import annotations

import datetime
import json
import secrets
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("celery", reason='Celery is not installed (pip install "uuid-forge[celery]")')

from integration.scaffold import CELERY_ET as ET
from integration.scaffold import CELERY_N as N
from integration.scaffold import Workers, celery_config, forget_celery_run, plant_celery_drift, wait_report
from uuid_forge import Forge
from uuid_forge.settings import load_settings

pytestmark = pytest.mark.slow
FOREIGN_EMAIL = "alice.smith@example.com"


class Setup:
    def __init__(self, config: Path, forge: Forge, workers: Workers, tag: str) -> None:
        self.config, self.forge, self.workers, self.tag = config, forge, workers, tag

    @property
    def cache(self) -> Any:
        return self.forge.stores[1].adapter

    def digest(self) -> str:
        from uuid_forge.celery import stores_digest

        return stores_digest(load_settings(self.config))

    def log(self) -> str:
        return (self.workers.logs / "w1.log").read_text(errors="replace")


def _start(tmp_path: Path, postgres_url: str, redis_url: str, amqp_url: str, executor: str = "") -> Iterator[Setup]:
    import uuid_forge.celery as uf_celery

    tag = "sf" + secrets.token_hex(3)
    config = celery_config(tmp_path, postgres_url, redis_url, amqp_url, tag, executor)
    (tmp_path / "reports").mkdir()
    workers = Workers(config, tmp_path)
    forge = Forge.from_config(str(config))
    try:
        uf_celery.configure(load_settings(config).executor)
        plant_celery_drift(forge)
        forge.stores[1].adapter._client.set(f"{forge.stores[1].adapter.prefix}{ET}:{FOREIGN_EMAIL}", "theirs")
        workers.start("w1")
        workers.wait_ready()
        yield Setup(config, forge, workers, tag)
    finally:
        workers.stop()
        forget_celery_run(forge, tag)
        forge.close()
        from uuid_forge.settings import ExecutorSettings

        uf_celery.configure(ExecutorSettings(broker=amqp_url, backend=redis_url))  # unsigned again for the next


@pytest.fixture
def setup(tmp_path: Path, postgres_url: str, redis_url: str, amqp_url: str) -> Iterator[Setup]:
    yield from _start(tmp_path, postgres_url, redis_url, amqp_url)


def _real_keys(s: Setup, n: int) -> dict[str, uuid.UUID]:
    """``n`` cache keys of entities the source holds (consistent records): raw key -> ID."""
    ids = [r.id for r in s.forge.records([(ET, {"email": f"m{i}@x.org"}, {}) for i in range(200, 200 + n)])]
    keys = {f"{s.cache.prefix}{ET}:{i}": i for i in ids}
    assert all(s.cache._client.exists(k) for k in keys)
    return keys


def _forged_repair(s: Setup, keys: dict[str, uuid.UUID]) -> dict[str, Any]:
    """A repair the attacker writes: each real key as the raw name of an "orphan" whose ID no
    source holds, and each real ID as an orphan by itself, with the guard opened wide."""
    findings = [{"store": "cache", "entity_type": ET, "id": str(uuid.uuid5(uuid.NAMESPACE_DNS, key)),
                 "class": "orphan", "detail": "", "raw": key} for key in keys]
    findings += [{"store": "cache", "entity_type": ET, "id": str(i), "class": "orphan", "detail": "", "raw": None}
                 for i in keys.values()]
    return {"findings": findings, "delete_orphans": True, "max_delete": "100%", "counts": {ET: 10**9},
            "fraction": 1000.0}


def test_a_forged_repair_task_naming_real_cache_keys_deletes_nothing(setup: Setup) -> None:
    from uuid_forge.celery import repair_findings

    keys = _real_keys(setup, 40)
    before = setup.forge.audit(ET)
    outcome = repair_findings.apply_async(args=(setup.digest(), _forged_repair(setup, keys))).get(timeout=60)
    result = outcome["result"]
    assert all(setup.cache._client.exists(k) for k in keys), "a forged task deleted real cache records"
    assert not result["repaired"].get("cache", {}).get("orphans_deleted")
    # it says so: every claim was left alone, counted (never named)
    assert sum(result["not_proven"].values()) == 80, result
    assert "80 finding(s) not acted on" in setup.log() and "not proven by this worker" in setup.log()
    after = setup.forge.audit(ET)
    assert after.stores == before.stores and after.stores["cache"]["ok"] == N - 9


def test_a_forged_task_with_an_output_path_writes_nothing_there(setup: Setup, tmp_path: Path) -> None:
    from uuid_forge.celery import audit, merge_audit
    from uuid_forge.partial import audit_partition, plan

    victims = [tmp_path / "victim-audit.txt", tmp_path / "victim-merge.txt"]
    for v in victims:
        v.write_text("precious\n")
    audit.delay(ET, str(victims[0])).get(timeout=60)
    first = wait_report(tmp_path / "reports")  # the chord finished: its report is in the worker's folder
    outcomes = [{"result": audit_partition(setup.forge, t)} for t in plan(setup.forge, [ET])]
    merged = merge_audit.apply_async(args=(outcomes, [ET], str(victims[1]))).get(timeout=60)
    assert [v.read_text() for v in victims] == ["precious\n", "precious\n"]
    assert merged["report"] and Path(merged["report"]).parent == tmp_path / "reports" and Path(merged["report"]) != first
    assert json.loads(first.read_text())["stores"]["cache"]["missing"] == 9
    assert setup.log().count("names an output path: ignored") == 2


def test_partition_results_in_the_backend_hold_no_foreign_names(setup: Setup) -> None:
    from uuid_forge.celery import CeleryExecutor, audit_partition
    from uuid_forge.distributed import audit_on
    from uuid_forge.partial import plan

    tasks = plan(setup.forge, [ET])
    sent = [audit_partition.apply_async(args=(setup.digest(), {"task": t, "show_values": True})) for t in tasks]
    partials = [r.get(timeout=120) for r in sent]
    # the partition tasks skip Redis, which one more task reads once (uuid_forge.onepass): seen, counted once
    assert sum(p["result"]["stores"].get("cache", {}).get("foreign", 0) for p in partials) == 2
    backend = setup.cache._client
    stored = b"".join(backend.get(f"celery-task-meta-{r.id}") or b"" for r in sent)
    assert stored.count(b'"foreign_samples"') == len(sent)  # the results are there, as they are kept for a day
    for word in (b"alice", b"smith", b"example.com", b"not-an-id", b'"values"'):
        assert word not in stored, f"{word!r} left in the result backend"
    report = audit_on(CeleryExecutor(str(setup.config), 1), setup.forge, ET)
    assert report.stores["cache"]["foreign"] == 2 and report.stores["cache"]["missing"] == 9
    assert any(t.startswith(f"{ET}: ") and t.endswith(":a••••.s••••@e••••••.c••")
               for t in report.foreign_samples["cache"]), report.foreign_samples


# -- message signing ---------------------------------------------------------------------------------
def _key_and_certificate(folder: Path, name: str) -> tuple[Path, Path]:
    """A throwaway RSA key and self-signed certificate (PEM) for Celery's ``auth`` serializer."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.x509.oid import NameOID

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    now = datetime.datetime.now(datetime.UTC)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1)).sign(key, hashes.SHA256()))
    key_path, cert_path = folder / f"{name}.key", folder / f"{name}.pem"
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    key_path.chmod(0o600)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    return key_path, cert_path


@pytest.fixture
def signed(tmp_path: Path, postgres_url: str, redis_url: str, amqp_url: str) -> Iterator[Setup]:
    pytest.importorskip("cryptography", reason="Celery's message signing needs the cryptography package")
    certs = tmp_path / "trusted"
    certs.mkdir()
    key, cert = _key_and_certificate(tmp_path, "uuid-forge")
    (certs / cert.name).write_bytes(cert.read_bytes())
    yield from _start(tmp_path, postgres_url, redis_url, amqp_url,
                      f'signing_key = "{key}"\nsigning_certificate = "{cert}"\nsigning_certs = "{certs}"\n')


def test_signed_workers_refuse_an_unsigned_task(signed: Setup, amqp_url: str, redis_url: str) -> None:
    from celery import Celery

    from uuid_forge.celery import CeleryExecutor
    from uuid_forge.distributed import audit_on

    s = signed
    keys = _real_keys(s, 40)
    attacker = Celery("attacker", broker=amqp_url, backend=redis_url)
    attacker.conf.update(task_serializer="json", accept_content=["json"])
    forged = attacker.send_task("uuid_forge.repair_findings", args=[s.digest(), _forged_repair(s, keys)],
                                queue=f"uf_test_{s.tag}")
    deadline = time.time() + 30
    while "untrusted content" not in s.log() and time.time() < deadline:
        time.sleep(0.2)
    assert "Refusing to deserialize untrusted content of type json" in s.log(), s.log()[-3000:]
    assert f"Task uuid_forge.repair_findings[{forged.id}] received" not in s.log()
    assert all(s.cache._client.exists(k) for k in keys)
    # the signed coordinator's tasks are run: the audit through the signed worker is the usual one
    report = audit_on(CeleryExecutor(str(s.config), 1), s.forge, ET)
    assert report.stores["cache"]["missing"] == 9 and report.stores["files"]["stale"] == 8
    assert "Task uuid_forge.audit_partition[" in s.log()
    attacker.close()
