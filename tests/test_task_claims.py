"""A repair task's findings are claims the worker proves again (uuid_forge.tasks.repair_claimed),
the [executor] options a worker takes its paths and signing from, and what a Celery result may
hold (uuid_forge.celery.hidden). The same against real workers: integration/test_celery_forged_tasks.py.
"""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.scaffold import write_forge_toml
from uuid_forge import Forge
from uuid_forge.errors import ConfigError
from uuid_forge.settings import load_settings
from uuid_forge.tasks import TASKS, repair_claimed

ET = "member"


@pytest.fixture
def forge(tmp_path: Path) -> Any:
    config = write_forge_toml(tmp_path / "uf.toml", {"db": f"sqlite:///{tmp_path}/src.db",
                                                     "files": f"file://{tmp_path}/files?fsync=false"},
                              "db", namespace="claims.uuid-forge.test",
                              extra=f'[types.{ET}]\nkey = ["email"]\n')  # records hold their key: orphans provable
    f = Forge.from_config(str(config))
    f.write_many([(ET, {"email": f"m{i}@x.org"}, {"email": f"m{i}@x.org", "n": i}) for i in range(20)])
    yield f
    f.close()


def _path(forge: Forge, ident: uuid.UUID) -> str:
    s = str(ident)
    return f"{ET}/{s[:2]}/{s[2:4]}/{s}.json"


def _ids(forge: Forge, n: int) -> list[uuid.UUID]:
    return [r.id for r in forge.records([(ET, {"email": f"m{i}@x.org"}, {}) for i in range(n)])]


def test_the_repair_task_is_the_re_proving_one() -> None:
    assert TASKS["repair_findings"] is repair_claimed


def test_raw_names_and_ids_the_source_holds_are_not_acted_on(forge: Forge) -> None:
    root = forge.stores[1].adapter.root
    ids = _ids(forge, 10)
    claims = [{"store": "files", "entity_type": ET, "id": str(uuid.uuid4()), "class": "orphan", "raw": _path(forge, i)}
              for i in ids]
    claims += [{"store": "files", "entity_type": ET, "id": str(i), "class": "orphan", "raw": None} for i in ids]
    claims += [{"store": "db", "entity_type": ET, "id": str(ids[0]), "class": "orphan"},  # the source
               {"store": "nowhere", "entity_type": ET, "id": str(ids[0]), "class": "orphan"},
               {"store": "files", "entity_type": ET, "id": "../../etc", "class": "missing"},
               {"store": "files", "entity_type": ET, "id": str(ids[0]), "class": "foreign", "raw": "x"},
               "not even a finding"]
    out = repair_claimed(forge, claims, delete_orphans=True, max_delete="100%", counts={ET: 10**9}, fraction=50)
    assert all(os.path.exists(os.path.join(root, _path(forge, i))) for i in ids)
    assert not out["repaired"].get("files", {}).get("orphans_deleted")
    assert sum(out["not_proven"].values()) == len(claims)
    assert forge.audit(ET).consistent


def test_what_is_proven_is_repaired(forge: Forge) -> None:
    """A real orphan (its key fields rebuild its ID) and a real missing record are repaired as in
    one process; a real wrongly encoded orphan is found again by the worker's own scan, whatever
    name the claim gave, but cannot be read back to be proven ours: kept, and reported unproven."""
    root = forge.stores[1].adapter.root
    ids = _ids(forge, 3)
    orphan = forge.records([(ET, {"email": "gone@x.org"}, {"email": "gone@x.org", "n": 1})])[0]
    forge.stores[1].adapter.put_many([orphan])
    upper = forge.records([(ET, {"email": "upper@x.org"}, {"email": "upper@x.org", "n": 2})])[0]
    forge.stores[1].adapter.put_many([upper])
    right = os.path.join(root, _path(forge, upper.id))
    wrong = os.path.join(os.path.dirname(right), str(upper.id).upper() + ".json")
    shutil.move(right, wrong)
    os.remove(os.path.join(root, _path(forge, ids[0])))
    claims = [{"store": "files", "entity_type": ET, "id": str(orphan.id), "class": "orphan", "raw": None},
              {"store": "files", "entity_type": ET, "id": str(upper.id), "class": "orphan", "raw": "anything"},
              {"store": "files", "entity_type": ET, "id": str(ids[0]), "class": "missing", "raw": None}]
    out = repair_claimed(forge, claims, delete_orphans=True, max_delete=None, counts={})
    assert out["repaired"]["files"]["orphans_deleted"] == 1 and out["repaired"]["files"]["rewritten"] == 1
    assert not os.path.exists(os.path.join(root, _path(forge, orphan.id))) and os.path.exists(wrong)
    after = forge.audit(ET)
    assert after.stores["files"]["unproven"] == 1 and after.stores["files"]["missing"] == 0
    assert after.stores["files"]["orphan"] == 0 and after.stores["files"]["ok"] == 20


def test_a_claim_re_read_as_something_else_is_not_acted_on(forge: Forge) -> None:
    """A "missing" whose ID the source lacks but the store holds is an orphan now: never deleted
    on a claim that asked for a rewrite."""
    stray = forge.records([(ET, {"email": "stray@x.org"}, {"n": 1})])[0]
    forge.stores[1].adapter.put_many([stray])
    out = repair_claimed(forge, [{"store": "files", "entity_type": ET, "id": str(stray.id), "class": "missing"}],
                         delete_orphans=True, max_delete="100%")
    assert out["not_proven"] == {"no longer true when re-read": 1}
    assert forge.stores[1].adapter.get_many(ET, [stray.id])


def test_executor_paths_and_signing_come_in_threes(tmp_path: Path) -> None:
    def config(lines: str) -> Path:
        return write_forge_toml(tmp_path / "uf.toml", {"db": f"sqlite:///{tmp_path}/src.db"}, "db",
                                namespace="claims.uuid-forge.test", extra=f"[executor]\n{lines}")

    got = load_settings(config('report_dir = "reports"\nsigning_key = "k.pem"\nsigning_certificate = "c.pem"\n'
                               'signing_certs = "certs"\n')).executor
    assert got.report_dir == str(tmp_path / "reports") and got.signed and got.signing_certs == str(tmp_path / "certs")
    with pytest.raises(ConfigError, match="signing_certificate, signing_certs missing"):
        load_settings(config('signing_key = "k.pem"\n'))


def test_results_hold_no_foreign_names_and_no_values() -> None:
    celery = pytest.importorskip("uuid_forge.celery", reason="Celery is not installed")
    ours = "0b7e2a52-6c8a-5e9f-a9e4-ae8e99a53cbe"
    partial = {"foreign_samples": {"cache": [[0, 0, 0, "member: app:member:alice.smith@example.com"]]},
               "findings": [[0, 0, 0, {"store": "files", "entity_type": ET, "id": ours, "class": "stale",
                                       "detail": "x", "raw": None, "fields": ["n"], "values": {"n": {"store": 1}}}],
                            [0, 0, 1, {"store": "files", "entity_type": ET, "id": ours, "class": "malformed",
                                       "detail": "", "raw": f"{ET}/0b/7e/{ours.upper()}.json"}],
                            [0, 0, 2, {"store": "cache", "entity_type": ET, "id": ours, "class": "unproven",
                                       "detail": "key 'app:member:bob@example.com'", "raw": f"session:{ours}"}]],
               "warnings": [[0, 0, 0, "store 'cache' holds 'carol@example.com'"]]}
    text = repr(celery.hidden({"result": partial}))
    for word in ("alice", "bob", "carol", "example", "'values'", f"session:{ours}"):
        assert word not in text
    assert ours.upper() in text and "a••••.s••••@e••••••.c••" in text
    error = celery.hidden({"error": "ValidationError", "message": "keys ['app:member:dave@example.com'] refused"})
    assert "dave" not in error["message"]
