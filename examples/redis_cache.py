"""Cache-aside with Redis under deterministic keys, with a TTL (uuid-forge 0.1's "Redis caching" pattern).

Any service can compute a user's cache key from the email alone (no lookup), so whichever service
loads the profile first fills the cache for all the others. Run: python examples/redis_cache.py
(URL from UUID_FORGE_TEST_REDIS_URL, default redis://127.0.0.1:6379/15).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from uuid_forge import IDConfig, Namespace, Record, StoreUnavailableError, UUIDGenerator, open_store

URL = os.environ.get("UUID_FORGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ids = UUIDGenerator(IDConfig(namespace=Namespace("users.myapp.com"), salt="v1"))
database_loads = 0


def load_profile_from_database(email: str) -> dict[str, Any]:
    """Stands in for the slow source of truth."""
    global database_loads
    database_loads += 1
    return {"email": email, "name": "John Example", "plan": "pro"}


def get_or_load(cache: Any, email: str) -> dict[str, Any]:
    user_id = ids.generate("user", email=email)  # the same key in every service, no lookup needed
    hit = cache.get_many("user", [user_id]).get(user_id)
    if hit is not None:
        print(f"  hit  {cache.key_of('user', user_id)}")
        return dict(hit.data)
    profile = load_profile_from_database(email)
    cache.put_many([Record("user", user_id, profile, {"email": email})])
    print(f"  miss {cache.key_of('user', user_id)}: loaded from the database, cached for {cache.ttl}s")
    return profile


def main() -> None:
    # a per-run key prefix keeps this demo apart from anything else on a shared server
    cache = open_store(URL, ttl=300, prefix=f"uf-example-{os.getpid()}:")
    try:
        cache.ping()
    except StoreUnavailableError as err:
        sys.exit(f"Redis is not reachable: {err}")
    email = "john@example.com"
    user_id = ids.generate("user", email=email)
    try:
        print(f"user {email} -> {user_id}")
        first = get_or_load(cache, email)
        second = get_or_load(cache, email)  # e.g. another service: same key, served from the cache
        key = cache.key_of("user", user_id)
        print(f"  TTL of {key}: {cache.client.ttl(key)}s")
        assert first == second and database_loads == 1
        print(f"database loads: {database_loads} for 2 requests")
    finally:
        cache.delete_many("user", [user_id])
        cache.client.delete(f"{cache.prefix}uf:types")
        cache.close()


if __name__ == "__main__":
    main()
