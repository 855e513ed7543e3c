"""Idempotent consumers: process each ``message_id`` once, however often it is delivered.

Write-through gives every event a deterministic ``message_id`` (see :mod:`uuid_forge.events`), so
retries, replays and redeliveries of the same event carry the same ID. A consumer claims the ID in
Redis with ``SET key 1 NX EX ttl`` before processing: the first claim wins, every later delivery is
a duplicate. A handler that fails gives its claim back, so a redelivery can try again.

The Redis call lives in the Redis adapter (``RedisAdapter.claim``/``release``); this module only
decides what to do with the answer.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any, Protocol, TypeVar, runtime_checkable

from .errors import ValidationError
from .registry import open_store

T = TypeVar("T")


@runtime_checkable
class Claims(Protocol):
    """A store that can claim a key once until it expires (the Redis adapter)."""

    def claim(self, key: str, ttl: int) -> bool: ...

    def release(self, key: str) -> None: ...

    def close(self) -> None: ...

__all__ = ["IdempotentConsumer"]


class IdempotentConsumer:
    """Deduplicates messages by ID with a Redis-backed claim that expires after ``ttl`` seconds."""

    def __init__(self, store: Any, *, ttl: int = 7 * 24 * 3600, namespace: str = "uf:seen") -> None:
        opened = open_store(store) if isinstance(store, str) else store
        if not isinstance(opened, Claims):
            raise ValidationError(f"{opened!r} cannot claim message IDs; use a redis:// store")
        self.store: Claims = opened
        if not isinstance(ttl, int) or ttl <= 0:
            raise ValidationError(f"ttl must be a positive number of seconds, got {ttl!r}")
        self.ttl = ttl
        self.namespace = namespace
        self.processed = 0
        self.duplicates = 0

    def _key(self, message_id: str | uuid.UUID) -> str:
        text = str(message_id)
        if not text or len(text) > 255:
            raise ValidationError(f"message_id must be 1-255 characters, got {len(text)}")
        return f"{self.namespace}:{text}"

    def first_time(self, message_id: str | uuid.UUID) -> bool:
        """Claim ``message_id``; True only for the first claim within the TTL."""
        return bool(self.store.claim(self._key(message_id), self.ttl))

    def forget(self, message_id: str | uuid.UUID) -> None:
        """Give a claim back (after a failed handler), so a redelivery is processed."""
        self.store.release(self._key(message_id))

    def handle(self, message_id: str | uuid.UUID, handler: Callable[[], T]) -> T | None:
        """Run ``handler`` once per message ID; duplicates return None without running it."""
        if not self.first_time(message_id):
            self.duplicates += 1
            return None
        try:
            result = handler()
        except BaseException:
            self.forget(message_id)
            raise
        self.processed += 1
        return result

    def close(self) -> None:
        self.store.close()
