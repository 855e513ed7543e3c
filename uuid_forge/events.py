"""Deterministic event IDs: a retry of the same event carries the same ``message_id``.

The event ID depends only on the entity ID, the event type and the data fingerprint, so a
publisher that retries (or a write-through that is replayed) sends the same ID again and a
consumer can drop duplicates. A new version of the data is a new event with a new ID.

A delete event has no data: its third part is the token naming the deletion (write-through
passes the tombstone's time), so a retry of the same deletion carries the same ID and a later
deletion of a re-created entity a new one: ``event_id(entity_id, DELETE_EVENT, token)``.
"""

from __future__ import annotations

import json
import uuid

EVENT_SCHEME = "uuid-forge-event/1"
#: the event name in a delete event's ID (whatever event name its message carries)
DELETE_EVENT = "deleted"


def event_id(entity_id: uuid.UUID, event: str, fingerprint: str) -> uuid.UUID:
    """``uuid5(entity_id, ["uuid-forge-event/1", event, fingerprint])`` as compact JSON;
    ``fingerprint`` is the data's for a write, the deletion's token for a delete."""
    if not isinstance(entity_id, uuid.UUID):
        raise TypeError(f"entity_id must be a uuid.UUID, got {type(entity_id).__name__}")
    return uuid.uuid5(entity_id, json.dumps([EVENT_SCHEME, event, fingerprint], separators=(",", ":"),
                                            ensure_ascii=False))
