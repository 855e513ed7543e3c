"""The RabbitMQ adapter's delete events and end-marker rule, without a server (issue 19).

Nothing here connects: the URL points at a closed port, so a test that reached the network would
fail with StoreUnavailableError instead of the error it expects.
"""

from __future__ import annotations

import json
import uuid

import pytest

from .scaffold import driver_missing

pytest.importorskip("pika", reason=driver_missing("pika"))
from uuid_forge.adapters.rabbitmq import DELETED_HEADER, MARKER_TYPE, RabbitMQAdapter

from uuid_forge.contract import DELETE, SCAN, WRITE
from uuid_forge.errors import StoreConfigError, ValidationError
from uuid_forge.events import event_id

URL = "amqp://guest:guest@127.0.0.1:1/v?exchange=orders"  # port 1: nothing listens
IDENT = uuid.UUID("8c80c705-e05e-599e-9b9f-9b4707306b56")
TOKEN = "2026-12-06T20:00:00.000000Z"


def test_delete_events_are_a_capability_of_an_append_only_log() -> None:
    store = RabbitMQAdapter(URL)
    assert store.capabilities == {WRITE, SCAN, DELETE} and store.append_only
    assert RabbitMQAdapter(URL, stream="none").capabilities == {WRITE, DELETE}


@pytest.mark.parametrize("layout", ["data", "envelope"])
def test_the_delete_event_of_each_layout(layout: str) -> None:
    store = RabbitMQAdapter(URL, layout=layout)
    exchange, routing_key, body, props = store._delete_message("user", IDENT, TOKEN)
    assert (exchange, routing_key) == ("orders", "user.deleted")  # the type's routing-key pattern, event "deleted"
    assert props.message_id == str(event_id(IDENT, "deleted", TOKEN)) != str(event_id(IDENT, "deleted", "later"))
    assert props.correlation_id == str(IDENT) and props.delivery_mode == 2
    assert props.headers[DELETED_HEADER] is True and props.headers["x-entity-type"] == "user"
    if layout == "data":
        assert body == b"" and props.type == "deleted" and props.content_type is None
    else:
        assert json.loads(body) == {"id": str(IDENT), "entity_type": "user", "event": "deleted"}
        assert props.type == "user.deleted" and props.content_type == "application/json"


def test_delete_event_name_and_routing() -> None:
    store = RabbitMQAdapter(URL, routing_key="{event}", event="order.created", delete_event="order.deleted")
    _, routing_key, _, props = store._delete_message("order", IDENT, TOKEN)
    assert routing_key == props.type == "order.deleted"
    assert props.message_id == str(event_id(IDENT, "deleted", TOKEN))  # whatever the event's name
    with pytest.raises(ValidationError, match="consumers could not tell a delete from a write"):
        RabbitMQAdapter(URL, event="changed", delete_event="changed")
    with pytest.raises(ValidationError, match="delete_event 'no spaces'"):
        RabbitMQAdapter(URL, delete_event="no spaces")


def test_a_delete_without_a_token_is_refused_before_anything_is_sent() -> None:
    with pytest.raises(ValidationError, match="needs token="):
        RabbitMQAdapter(URL).delete_many("user", [IDENT])


def test_drop_is_refused_with_the_reason() -> None:
    from uuid_forge.errors import StoreError

    class FakeProver:  # drop is refused before any proof is asked for
        pass

    with pytest.raises(StoreError, match="cannot remove one entity type's messages.*x-max-age"):
        RabbitMQAdapter(URL).drop("user", prover=FakeProver())  # type: ignore[arg-type]


@pytest.mark.parametrize(("query", "marker"), [
    ("", True),  # the default stream {exchange}.history, declared by uuid-forge: its own
    ("&declare=false", False),  # declared by someone else
    ("&stream=orders.history", False),  # named by the user, even with the default's name
    ("&stream=theirs&marker=true", True),  # the user allows it
    ("&marker=false", False),
])
def test_the_end_marker_goes_only_to_uuid_forges_own_stream(query: str, marker: bool) -> None:
    store = RabbitMQAdapter(URL + query)
    assert store.marker is marker
    if not marker:  # refused before connecting, binding or writing anything
        with pytest.raises(StoreConfigError, match=f"without writing to it.*{MARKER_TYPE}.*marker=true"):
            list(store.scan("user"))
