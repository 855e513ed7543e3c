"""--metrics FILE: Prometheus text for node_exporter, checked with prometheus_client's own parser.

Embedded stores only (SQLite source, files), so these run without servers; an unreachable
optional Redis (a closed port) stands for a store that is down.
"""

from __future__ import annotations

import json
import os
import re
import stat
import sys
import time
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("prometheus_client")
from prometheus_client.parser import text_string_to_metric_families

from uuid_forge import metrics

from .scaffold import write_forge_toml
from .test_cli import run

SALT = {"UUID_FORGE_SALT": "metrics-test-salt-0123456789"}


def samples(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """(name, sorted labels without the audit scope) -> value, parsed by prometheus_client."""
    out = {}
    for family in text_string_to_metric_families(path.read_text()):
        for s in family.samples:
            labels = tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("entity_type", "partition")))
            out[(s.name, labels)] = s.value
    return out


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


def config(tmp_path: Path, optional_down: bool = False) -> str:
    stores: dict[str, Any] = {"db": f"sqlite:///{tmp_path}/db.sqlite3",
                              "files": {"url": f"file://{tmp_path}/files", "options": {"fsync": False}}}
    if optional_down:
        stores["down"] = {"url": "redis://127.0.0.1:1/0?socket_timeout=0.5", "optional": True}
    return str(write_forge_toml(tmp_path / "uuid-forge.toml", stores, "db", namespace="metrics.example.com",
                                write={"retries": 0, "backoff": 0.01}))


def write_users(tmp_path: Path, conf: str, n: int = 20, metrics_file: Path | None = None) -> tuple[int, str]:
    lines = "".join(json.dumps({"entity_type": "user", "key": {"email": f"u{i}@example.com"}, "data": {"n": i}}) + "\n"
                    for i in range(n))
    (tmp_path / "users.jsonl").write_text(lines)
    extra = ["--metrics", str(metrics_file)] if metrics_file else []
    code, out, _ = run(["write", "-c", conf, "--jsonl", str(tmp_path / "users.jsonl"), "--json", *extra], SALT)
    return code, out


def test_write_metrics_equal_the_report(tmp_path: Path) -> None:
    conf = config(tmp_path)
    prom = tmp_path / "write.prom"
    before = time.time()
    code, out = write_users(tmp_path, conf, 20, prom)
    assert code == 0
    report = json.loads(out)
    found = samples(prom)
    assert value(found, "uuid_forge_write_entities") == report["entities"] == 20
    for store, s in report["stores"].items():
        assert value(found, "uuid_forge_write_records", store=store, outcome="written") == s["written"] == 20
        assert value(found, "uuid_forge_write_records", store=store, outcome="pending") == 0
        assert value(found, "uuid_forge_write_journal_pending_entries", store=store) == 0
        assert value(found, "uuid_forge_write_journal_dead_letters", store=store) == 0
    assert value(found, "uuid_forge_write_exit_status") == 0
    last = value(found, "uuid_forge_write_last_success_timestamp_seconds")
    assert before - 1 <= last <= time.time() + 1 and last == value(found, "uuid_forge_write_last_run_timestamp_seconds")
    assert value(found, "uuid_forge_write_duration_seconds") > 0
    mode = stat.S_IMODE(prom.stat().st_mode)
    assert mode == 0o644  # node_exporter reads it as another user; it holds counts, no data
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary file left
    assert "metrics-test-salt" not in prom.read_text() and "@example.com" not in prom.read_text()


def test_audit_metrics_equal_the_report_and_failure_keeps_last_success(tmp_path: Path) -> None:
    conf = config(tmp_path)
    assert write_users(tmp_path, conf, 30)[0] == 0
    prom = tmp_path / "audit.prom"
    code, out, _ = run(["audit", "-c", conf, "--json", "--metrics", str(prom)], SALT)
    assert code == 0
    ok_time = value(samples(prom), "uuid_forge_audit_last_success_timestamp_seconds")
    assert ok_time > 0 and value(samples(prom), "uuid_forge_audit_entities") == 30

    victims = sorted((tmp_path / "files").rglob("*.json"))[:3]
    for v in victims:  # drift behind uuid-forge's back
        v.unlink()
    time.sleep(0.05)
    code, out, _ = run(["audit", "-c", conf, "--json", "--metrics", str(prom)], SALT)
    assert code == 1
    report = json.loads(out)
    found = samples(prom)
    for store, counts in report["stores"].items():
        for cls, n in counts.items():
            assert value(found, "uuid_forge_audit_findings", store=store, **{"class": cls}) == n
    assert value(found, "uuid_forge_audit_findings", store="files", **{"class": "missing"}) == 3
    assert value(found, "uuid_forge_audit_exit_status") == 1
    assert value(found, "uuid_forge_audit_partitions") == report["partitions"]
    assert value(found, "uuid_forge_audit_last_success_timestamp_seconds") == ok_time  # kept: not consistent
    assert value(found, "uuid_forge_audit_last_run_timestamp_seconds") > ok_time

    # a run that cannot even start (here: its config file is gone) still writes its file, exit 2,
    # with the last success kept for staleness alerts
    os.rename(conf, conf + ".moved")
    code, _, err = run(["audit", "-c", conf, "--metrics", str(prom)], SALT)
    assert code == 2 and "not found" in err
    found = samples(prom)
    assert value(found, "uuid_forge_audit_exit_status") == 2
    assert value(found, "uuid_forge_audit_last_success_timestamp_seconds") == ok_time
    assert not any(name == "uuid_forge_audit_findings" for name, _ in found)  # nothing was audited


def test_repair_metrics_show_what_is_left_and_what_was_done(tmp_path: Path) -> None:
    conf = config(tmp_path)
    assert write_users(tmp_path, conf, 10)[0] == 0
    for v in sorted((tmp_path / "files").rglob("*.json"))[:2]:
        v.unlink()
    prom = tmp_path / "audit.prom"
    code, _, _ = run(["audit", "-c", conf, "--repair", "--apply", "--metrics", str(prom)], SALT)
    found = samples(prom)
    assert value(found, "uuid_forge_audit_repaired_records", store="files", action="rewritten") == 2
    assert value(found, "uuid_forge_audit_findings", store="files", **{"class": "missing"}) == 0  # after repair
    assert value(found, "uuid_forge_audit_exit_status") == code


def test_audit_scope_labels_keep_two_audits_apart(tmp_path: Path) -> None:
    conf = config(tmp_path)
    assert write_users(tmp_path, conf, 5)[0] == 0
    prom = tmp_path / "user.prom"
    assert run(["audit", "-c", conf, "-e", "user", "-p", "1/2", "--metrics", str(prom)], SALT)[0] == 0
    families = list(text_string_to_metric_families(prom.read_text()))
    assert all(s.labels["entity_type"] == "user" and s.labels["partition"] == "1/2"
               for f in families for s in f.samples)


def test_journal_pending_and_replay_metrics(tmp_path: Path) -> None:
    pytest.importorskip("redis")
    conf = config(tmp_path, optional_down=True)
    prom = tmp_path / "write.prom"
    code, _ = write_users(tmp_path, conf, 4, prom)
    assert code == 0  # an optional store down: journaled, not a failure
    found = samples(prom)
    assert value(found, "uuid_forge_write_records", store="down", outcome="pending") == 4
    assert value(found, "uuid_forge_write_journal_pending_entries", store="down") == 4
    assert value(found, "uuid_forge_write_journal_pending_entries", store="files") == 0
    replay = tmp_path / "replay.prom"
    code, _, _ = run(["replay", "-c", conf, "--metrics", str(replay)], SALT)
    assert code == 1  # still down
    found = samples(replay)
    assert value(found, "uuid_forge_replay_exit_status") == 1
    assert value(found, "uuid_forge_replay_journal_pending_entries", store="down") == 4
    assert value(found, "uuid_forge_replay_last_success_timestamp_seconds") == 0  # never succeeded


def test_failed_write_is_visible(tmp_path: Path) -> None:
    conf = config(tmp_path)
    prom = tmp_path / "write.prom"
    (tmp_path / "bad.jsonl").write_text('{"entity_type": "user", "key": {"email": "a@example.com"}}\n{oops\n')
    code, _, err = run(["write", "-c", conf, "--jsonl", str(tmp_path / "bad.jsonl"), "--metrics", str(prom)], SALT)
    assert code == 2 and "line 2" in err
    assert value(samples(prom), "uuid_forge_write_exit_status") == 2


def test_symlink_at_metrics_path_is_refused_before_any_work(tmp_path: Path) -> None:
    conf = config(tmp_path)
    target = tmp_path / "precious.txt"
    target.write_text("keep me")
    link = tmp_path / "audit.prom"
    link.symlink_to(target)
    code, _, err = run(["audit", "-c", conf, "--metrics", str(link)], SALT)
    assert code == 2 and "symbolic link" in err and "--metrics" in err
    assert target.read_text() == "keep me" and link.is_symlink()
    assert not (tmp_path / "db.sqlite3").exists()  # refused before the forge was opened


def test_missing_folder_is_refused_before_any_work(tmp_path: Path) -> None:
    conf = config(tmp_path)
    code, _, err = run(["audit", "-c", conf, "--metrics", str(tmp_path / "nope" / "a.prom")], SALT)
    assert code == 2 and "--metrics" in err and "does not exist" in err
    assert not (tmp_path / "db.sqlite3").exists()


def test_write_is_atomic_old_file_kept_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    prom = tmp_path / "audit.prom"
    prom.write_text("# old\nuuid_forge_audit_exit_status 0.0\n")
    run_ = metrics.MetricsRun("audit", str(prom))

    def broken(src: str, dst: str) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", broken)
    with pytest.raises(Exception, match="No space left"):
        run_.write(2)
    assert prom.read_text() == "# old\nuuid_forge_audit_exit_status 0.0\n"
    assert [p.name for p in tmp_path.iterdir()] == ["audit.prom"]  # the temporary file is gone
    monkeypatch.undo()
    inode = prom.stat().st_ino
    run_.write(2)
    assert prom.stat().st_ino != inode  # replaced by rename, never rewritten in place


def test_last_success_read_back_only_from_matching_labels(tmp_path: Path) -> None:
    prom = tmp_path / "a.prom"
    prom.write_text(metrics.render("audit", status=0, now=100.0, last_success=100.0,
                                   scope={"entity_type": "user", "partition": "*"}))
    name = "uuid_forge_audit_last_success_timestamp_seconds"
    assert metrics.read_value(str(prom), name, {"entity_type": "user", "partition": "*"}) == 100.0
    assert metrics.read_value(str(prom), name, {"entity_type": "order", "partition": "*"}) is None
    prom.write_text("not { prometheus")
    assert metrics.read_value(str(prom), name) is None  # unreadable old file: 0, never a crash


def test_missing_prometheus_client_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    conf = config(tmp_path)
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # as if not installed
    code, _, err = run(["audit", "-c", conf, "--metrics", str(tmp_path / "a.prom")], SALT)
    assert code == 2 and "uuid-forge[metrics]" in err and "Traceback" not in err
    assert not (tmp_path / "a.prom").exists()
    assert run(["audit", "-c", conf], SALT)[0] == 0  # without --metrics nothing needs it


def test_delete_metrics_equal_the_report_and_erase_and_purge_write_theirs(tmp_path: Path) -> None:
    conf = config(tmp_path)
    with open(conf, "a", encoding="utf-8") as fh:  # a declared type: its key fields prove each file ours
        fh.write('[types.user]\nkey = ["email"]\n')
    for i in range(4):
        code, out, err = run(["write", "-c", conf, "user", "-d", f"email=u{i}@example.com", "-d", "name=N"], SALT)
        assert code == 0, out + err
    prom = tmp_path / "delete.prom"
    code, out, err = run(["delete", "-c", conf, "--entity", "user", "--key", "email=u0@example.com", "--json",
                          "--metrics", str(prom)], SALT)
    assert code == 0, out + err
    report, found = json.loads(out), samples(prom)
    assert value(found, "uuid_forge_delete_entities") == report["entities"] == 1
    for store, s in report["stores"].items():
        assert value(found, "uuid_forge_delete_records", store=store, outcome="deleted") == s["deleted"] == 1, (store, s)
    assert value(found, "uuid_forge_delete_exit_status") == 0
    assert "@example.com" not in prom.read_text()
    for extra in (["--entity", "user", "--key", "email=u1@example.com", "--erase"], ["--purge-expired"]):
        prom.unlink()
        code, out, err = run(["delete", "-c", conf, *extra, "--metrics", str(prom)], SALT)
        assert code == 0 and "unknown command" not in err, out + err
        assert value(samples(prom), "uuid_forge_delete_exit_status") == 0


def test_hashed_counters_in_the_metrics_and_the_page_equal_the_report(tmp_path: Path) -> None:
    """Two SQLite stores hash what they hold alike (uuid_forge.rangehash): the audit settles most
    records by hashes; the counters --json shows are the metrics' and the HTML page's."""
    import sqlite3

    stores = {"db": f"sqlite:///{tmp_path}/db.sqlite3", "mirror": f"sqlite:///{tmp_path}/mirror.sqlite3"}
    conf = str(write_forge_toml(tmp_path / "uuid-forge.toml", stores, "db", namespace="metrics.example.com",
                                write={"retries": 0, "backoff": 0.01}))
    assert write_users(tmp_path, conf, 3000)[0] == 0
    with sqlite3.connect(tmp_path / "mirror.sqlite3") as db:  # drift behind uuid-forge's back
        db.execute("DELETE FROM uf_user WHERE id IN (SELECT id FROM uf_user ORDER BY id LIMIT 2)")
    prom, page = tmp_path / "audit.prom", tmp_path / "audit.html"
    code, out, _ = run(["audit", "-c", conf, "--json", "--metrics", str(prom), "--html", str(page)], SALT)
    assert code == 1
    report = json.loads(out)
    assert report["stores"]["mirror"]["missing"] == 2
    hashed = report["hashed"]["mirror"]
    assert hashed["hashed_records"] > 0 and hashed["read_records"] > 0  # both paths were taken
    assert hashed["hashed_records"] + hashed["read_records"] >= 2998
    found = samples(prom)
    for counter, n in hashed.items():
        assert value(found, "uuid_forge_audit_hashed", store="mirror", counter=counter) == n
    text = page.read_text()
    assert "Compared by hashes" in text
    row = text.split("Compared by hashes", 1)[1].split("</table>", 1)[0]
    cells = [int(c.replace(",", "")) for c in re.findall(r'<td class="n">([\d,]+)</td>', row)]
    assert cells == [hashed[k] for k in ("hashed_ranges", "hashed_records", "read_ranges", "read_records")]
