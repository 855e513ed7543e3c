"""Issue 13: a backfill written in chunks by several processes journals each chunk's failures in
the configured journal, and ``replay`` finds and finishes them (against real Redis).

The cache is optional and down during the backfill (its URL points at a closed port through the
environment, as a cron job's override would); it comes back for the replay.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

from .scaffold import run_cli

N = 3000


def _config(tmp_path: Path, redis_url: str, et: str) -> Path:
    path = tmp_path / "uuid-forge.toml"
    path.write_text(
        '[ids]\nnamespace = "backfill.uuid-forge.test"\n\n'
        f'[journal]\npath = "{tmp_path / "journal.sqlite3"}"\n\n'
        '[write]\nretries = 1\nbackoff = 0.01\nbatch_size = 500\n\n'
        f'[stores.db]\nurl = "sqlite:///{tmp_path / "db.sqlite3"}"\nrole = "source"\n\n'
        f'[stores.cache]\nurl = "{redis_url}"\noptional = true\noptions = {{ prefix = "{et}" }}\n',
        encoding="utf-8")
    return path


def test_chunked_backfill_journals_an_optional_outage_and_replay_finishes_it(tmp_path: Path, redis_url: str) -> None:
    et = f"bf{uuid.uuid4().hex[:8]}"
    config = _config(tmp_path, redis_url, et)
    lines = [json.dumps({"entity_type": et, "key": {"email": f"b{i}@x.org"}, "data": {"n": i}}) for i in range(N)]
    (tmp_path / "in.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    down = {"UUID_FORGE_STORE_CACHE_URL": "redis://127.0.0.1:1/0"}

    wrote = run_cli("write", "-c", str(config), "--jsonl", str(tmp_path / "in.jsonl"), "--workers", "3", "--json",
                    env=down)
    assert wrote.returncode == 0, wrote.stderr  # the cache is optional: journaled, not fatal
    body = json.loads(wrote.stdout)
    assert body["entities"] == N and body["stores"]["db"]["written"] == N
    assert body["stores"]["cache"]["written"] == 0 and body["stores"]["cache"]["pending"] == N

    journal = run_cli("journal", "-c", str(config), "--json", env=down)
    assert journal.returncode == 0, journal.stderr
    held = json.loads(journal.stdout)
    assert held["journal"] == str(tmp_path / "journal.sqlite3")  # every chunk's failures in the configured journal
    assert held["stores"]["cache"]["pending"] == N and held["stores"]["db"]["pending"] == 0

    before = run_cli("audit", "-c", str(config), "--entity", et, "--json", "--workers", "1")
    assert before.returncode == 1 and json.loads(before.stdout)["stores"]["cache"]["missing"] == N

    replay = run_cli("replay", "-c", str(config), "--json")
    assert replay.returncode == 0, replay.stderr
    after = run_cli("audit", "-c", str(config), "--entity", et, "--json", "--workers", "1")
    assert after.returncode == 0, after.stdout
    assert json.loads(after.stdout)["stores"]["cache"]["ok"] == N

    import redis

    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{et}:*", count=1000))
    assert len(keys) >= N
    client.delete(*keys)
