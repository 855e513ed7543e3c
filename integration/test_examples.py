"""Every runnable example in examples/ runs to completion against the real servers."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# example -> the session fixtures (servers) it needs, and a line its output must contain
NEEDS: dict[str, tuple[tuple[str, ...], str]] = {
    "postgres_user_repository.py": (("postgres_url",), "after repair: consistent: True; rows in users: 4"),
    "mongo_document_store.py": (("mongodb_url",), "after repair: consistent: True"),
    "redis_cache.py": (("redis_url",), "after repair: consistent: True"),
    "rabbitmq_publisher.py": (("amqp_url",), "4 deliveries, 2 orders processed"),
    "file_manager.py": ((), "after repair: consistent: True"),
    "order_flow.py": (("postgres_url", "redis_url", "amqp_url", "elasticsearch_url", "mongodb_url"),
                      "audit: consistent"),
    "consistency_validator.py": (("postgres_url", "redis_url"), "after repair: consistent: True"),
}
ENV_OF = {"postgres_url": "UUID_FORGE_TEST_POSTGRES_URL", "redis_url": "UUID_FORGE_TEST_REDIS_URL",
          "amqp_url": "UUID_FORGE_TEST_AMQP_URL", "mongodb_url": "UUID_FORGE_TEST_MONGODB_URL",
          "elasticsearch_url": "UUID_FORGE_TEST_ELASTICSEARCH_URL"}


def test_every_example_is_listed() -> None:
    assert sorted(p.name for p in EXAMPLES.glob("*.py")) == sorted(NEEDS)


@pytest.mark.parametrize("name", sorted(NEEDS))
def test_example_runs(name: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """... and leaves no temporary folder behind (its database of record and journal hold entity data)."""
    fixtures, expected = NEEDS[name]
    env = {k: v for k, v in os.environ.items() if not k.startswith("UUID_FORGE_")}
    (tmp_path / "tmp").mkdir()
    env["TMPDIR"] = str(tmp_path / "tmp")  # where tempfile makes the example's folders
    for fixture in fixtures:
        env[ENV_OF[fixture]] = request.getfixturevalue(fixture)
    done = subprocess.run([sys.executable, str(EXAMPLES / name)], capture_output=True, text=True, env=env,
                          timeout=180, check=False)
    assert done.returncode == 0, f"{name} failed:\n{done.stdout}\n{done.stderr}"
    assert done.stdout.strip(), f"{name} printed nothing"
    assert expected in done.stdout
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in (tmp_path / "tmp").iterdir()) == [], f"{name} left temporary files"
