"""``amqp://``: every record becomes a persistent event message on the user's exchange; an optional
stream queue keeps the history that audits read.

Layouts (DESIGN.md "Layouts"):

* **exchange**: the user's existing exchange, of any type (direct, topic, fanout, headers). When it
  exists it is declared passively, never redeclared (a declare with other arguments would close
  the channel); when it does not, it is created durable, of type ``exchange_type`` (default topic).
* **routing key**: the template ``routing_key`` (default ``{entity_type}.{event}``) with the
  placeholders ``{entity_type}``, ``{event}`` and ``{id}``; ``{event}`` alone routes as a publisher
  that routes by event type does. Checked before any publish: unknown placeholders are refused,
  and a filled-in key must fit an AMQP shortstr (255 bytes).
* **message** (``layout=data``, the default): the body is the entity's data as canonical JSON,
  nothing else, so a consumer that already reads the user's events gets the same shape.
  ``correlation_id`` = the entity ID (36-char string), ``message_id`` = a deterministic event ID
  (:func:`event_id`: a retried publish carries the same one, consumers can drop duplicates),
  ``type`` = the event, header ``x-entity-type`` = the entity type (so an audit finds the type and
  ID without parsing the body). ``layout=envelope`` writes the earlier uuid-forge body
  ``{"id","entity_type","event","fp","data","key"}`` (headers ``x-fingerprint``, ``x-id-scheme``)
  for deployments whose consumers read it; a scan reads both shapes whatever the option says.
  Each layout is a class (:data:`LAYOUTS`) that makes a message's body, type and headers and
  fingerprints a message's body; a scan picks, per message, the layout whose header it carries.
* **history** (optional): a durable stream queue (``stream``, default ``{exchange}.history``;
  ``none`` for no history: publish only, no audit) bound to the exchange so that it sees every
  message: with ``#`` and ``x-match=all`` (topic, fanout, headers) and, unless the routing key
  holds ``{id}``, with each routing key used (direct). Audits read it from the first offset
  without consuming it; the latest message per ID is the store's state, its fingerprint computed
  from the body (never from a header).

Which messages of the stream belong to an entity type: those with ``x-entity-type`` = the type,
and, for messages without that header (the user's own publisher, before uuid-forge), those whose
routing key is the template filled in for the type, the event and the message's correlation_id.
Among them, a correlation_id that is not an ID of this scheme is another application's message
(:class:`ForeignEntry`): reported, never touched (a stream cannot delete anyway).

A message log is append-only (:attr:`~uuid_forge.contract.Adapter.append_only`): no read by ID,
and nothing is ever removed. ``delete`` means that ``delete_many`` publishes a **delete event** per
ID (``message_id`` = ``event_id(id, "deleted", token)``, ``correlation_id`` = the ID, ``type`` and
``{event}`` in the routing key = ``delete_event``, header ``x-deleted`` = true, no entity data); in a
scan an entity whose latest event is its delete event is not held. ``drop`` is refused (a log
cannot forget one type: :meth:`RabbitMQAdapter.delete_topology` removes the whole stream), and
repair never deletes or publishes a delete event for an orphan: it publishes the source's record
again, which becomes the latest message. A scan appends a small end marker to the stream (``type``
= :data:`MARKER_TYPE`, through the default exchange, so only the stream sees it), because AMQP
0-9-1 gives no other exact way to find a stream's end (:meth:`RabbitMQAdapter._read_history`);
it does so only in uuid-forge's own stream (option ``marker``): a stream the user names is never
written, and its audit is refused unless ``marker=true``. docs/stores.md says the same for users. URL:
``amqp://user:pass@host:5672/vhost?exchange=orders&routing_key={event}&event=order.created``
(every option is in :attr:`RabbitMQAdapter.options`; keyword options override the URL; any other
query parameter goes to pika, e.g. ``heartbeat``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import string
import threading
import time
import uuid
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar, NamedTuple
from urllib.parse import urlencode, urlsplit, urlunsplit

import pika
import pika.exceptions
from pika.adapters.utils.connection_workflow import AMQPConnectorException, AMQPConnectorStackTimeout

from uuid_forge.canonical import canonical
from uuid_forge.classify import ANY_VERSIONS, classify
from uuid_forge.contract import BATCH_SIZE, DELETE, SCAN, WRITE, Adapter, Option, ScanItem
from uuid_forge.encodings import check_target
from uuid_forge.envelope import DATA, FP, ID, KEY, envelope_members, envelope_record, json_object
from uuid_forge.errors import (
    ConfigError,
    StoreConfigError,
    StoreError,
    StoreRejectedError,
    StoreUnavailableError,
    TargetError,
    UUIDForgeError,
    ValidationError,
)
from uuid_forge.events import DELETE_EVENT, EVENT_SCHEME, event_id
from uuid_forge.layout import Layout, layout_option
from uuid_forge.record import DELETED, ForeignEntry, MalformedID, Partition, Record, load_json
from uuid_forge.urls import mask_url

__all__ = ["DELETED_HEADER", "EVENT_SCHEME", "LAYOUTS", "MARKER_TYPE", "BrokerUnavailable", "DataLayout",
           "EnvelopeLayout", "Message", "MessageLayout", "RabbitMQAdapter", "event_id"]

#: ``type`` of the end-of-scan markers an audit appends to uuid-forge's own stream (readers skip them)
MARKER_TYPE = "uuid-forge.scan-marker"
#: the header (boolean true) every delete event carries, in every layout, beside its ``type``
DELETED_HEADER = "x-deleted"
EXCHANGE_TYPES = ("topic", "direct", "fanout", "headers")
#: the placeholders a routing-key template may use
PLACEHOLDERS = ("entity_type", "event", "id")
#: a stream name that means "no history stream"
NO_STREAM = ("", "none")

_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,255}")  # AMQP 0-9-1 exchange/queue name grammar
_EVENT = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*")
_SAMPLE_ID = "0" * 36  # every ID is 36 chars in a routing key: its length check needs no real one
_PREFETCH = 1000
_ACK_EVERY = 250
_ID_SCHEME = "x-id-scheme"  # the header only the envelope layout sets: a scan tells the layouts apart by it


class BrokerUnavailable(ConnectionError):
    """The broker refused for now: a queue's node is down or still recovering, or it lacks resources."""


@contextlib.contextmanager
def _transient() -> Iterator[None]:
    """Channel closes that mean "try again later" become :class:`BrokerUnavailable` (retried by
    write-through); other broker refusals (wrong topology, no rights) stay plain errors."""
    try:
        yield
    except pika.exceptions.ChannelClosedByBroker as err:
        if err.reply_code == 506 or (err.reply_code == 404 and "down or inaccessible" in err.reply_text):
            raise BrokerUnavailable(f"({err.reply_code}) {err.reply_text}") from None
        raise


class _ProbeFilter(logging.Filter):
    """Hides pika's warning about the channel a passive declare of a missing exchange closes:
    that 404 is how we learn the exchange must be created, not a problem (this thread only)."""

    local = threading.local()

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(self.local, "probing", False)


_PROBE = _ProbeFilter()
logging.getLogger("pika.channel").addFilter(_PROBE)


@contextlib.contextmanager
def _probing() -> Iterator[None]:
    _PROBE.local.probing = True
    try:
        yield
    finally:
        _PROBE.local.probing = False


def _template_fields(template: str) -> list[str]:
    """The placeholders of a routing-key template; ValidationError for any other, or a format spec."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise ValidationError(f"routing_key {template!r}: {err} (write a literal brace as {{{{ or }}}})") from None
    fields = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            raise ValidationError(f"routing_key {template!r}: unknown placeholder {{{name}}}; use "
                                  + ", ".join(f"{{{p}}}" for p in PLACEHOLDERS))
        if spec or conversion:
            raise ValidationError(f"routing_key {template!r}: {{{name}}} takes no format spec or conversion")
        fields.append(name)
    return fields


class Message(NamedTuple):
    """What a layout puts in one record's message; the adapter adds the routing key and the
    properties every message has (correlation_id, message_id, persistence, timestamp)."""

    body: bytes
    type: str
    headers: dict[str, Any]


#: a message as a scan reads it: (its headers, its body)
Delivered = tuple[Mapping[str, Any], bytes]


class MessageLayout(Layout):
    """What a message of one record holds, and how its data's fingerprint is read back from it."""

    #: the header only this layout's messages carry, so that a scan reads every layout's messages
    #: whatever the option says; None: the layout of messages that carry no such header
    mark: ClassVar[str | None] = None

    def __init__(self, store: RabbitMQAdapter) -> None:
        self.store = store  # its event and routing key; fingerprints go through its view


    def reads(self, headers: Mapping[str, Any]) -> bool:
        """Whether a message with these headers is in this layout."""
        return self.mark is None or self.mark in headers

    @abstractmethod
    def encode(self, record: Record) -> Message:
        """The body, type and headers of ``record``'s message."""

    @abstractmethod
    def encode_delete(self, entity_type: str, ident: uuid.UUID) -> Message:
        """The body (no entity data), type and headers of the delete event of ``ident``."""


class DataLayout(MessageLayout):
    """The body is the entity's data as canonical JSON, nothing else: the shape a consumer of the
    user's own events already reads."""

    name: ClassVar[str] = "data"
    doc: ClassVar[str] = ("the entity's data as canonical JSON, nothing else "
                          "(e.g. {\"email\":\"a@example.com\",\"total\":12.5}), with the ID in correlation_id and the "
                          "type in the x-entity-type header")

    def encode(self, record: Record) -> Message:
        return Message(record.data_json.encode(), self.store.event, {"x-entity-type": record.entity_type})

    def encode_delete(self, entity_type: str, ident: uuid.UUID) -> Message:
        """An empty body: the ID is the correlation_id, and no data of a deleted entity goes out."""
        return Message(b"", self.store.delete_event, {"x-entity-type": entity_type, DELETED_HEADER: True})

    def decode(self, entity_type: str, ident: uuid.UUID, stored: Delivered) -> Record:
        data = load_json(stored[1])
        if not isinstance(data, dict):
            raise TypeError("the message body is not a JSON object")
        return Record(entity_type, ident, data, None, fingerprint=self.fingerprint(stored))

    def fingerprint(self, stored: Delivered) -> str | None:
        """The body as it is (we publish canonical text): only a body that differs is parsed."""
        return self.store.fingerprint_text(stored[1])

    def owned_fields(self, record: Record) -> frozenset[str]:
        return frozenset(record.data)


class EnvelopeLayout(MessageLayout):
    """uuid-forge's earlier body ``{"id","entity_type","event","fp","data","key"}``, marked by the
    ``x-id-scheme`` header; its ``fp`` and ``x-fingerprint`` are written for old readers, never trusted."""

    name: ClassVar[str] = "envelope"
    doc: ClassVar[str] = ("uuid-forge's earlier body {\"id\",\"entity_type\",\"event\",\"fp\",\"data\",\"key\"}, "
                          "for consumers that read it")
    mark: ClassVar[str | None] = _ID_SCHEME
    MEMBERS: ClassVar[frozenset[str]] = frozenset((ID, "entity_type", "event", FP, DATA, KEY))

    def encode(self, record: Record) -> Message:
        ident, entity_type, event = str(record.id), record.entity_type, self.store.event
        members = envelope_members(record)  # data then key, last: a scan finds the data's text by them
        body = json_object(((ID, f'"{ident}"'), ("entity_type", json.dumps(entity_type)), ("event", json.dumps(event)),
                            (FP, members[FP]), (DATA, members[DATA]), (KEY, members[KEY])))
        headers = {"x-entity-type": entity_type, "x-fingerprint": record.fingerprint, _ID_SCHEME: "uuid-forge/1"}
        return Message(body.encode(), self.store.routing_key_for(entity_type, ident), headers)

    def encode_delete(self, entity_type: str, ident: uuid.UUID) -> Message:
        """``{"id","entity_type","event"}``: the envelope without ``fp``, ``data`` or ``key``."""
        text, event = str(ident), self.store.delete_event
        body = json_object(((ID, f'"{text}"'), ("entity_type", json.dumps(entity_type)), ("event", json.dumps(event))))
        headers = {"x-entity-type": entity_type, DELETED_HEADER: True, _ID_SCHEME: "uuid-forge/1"}
        return Message(body.encode(), self.store.routing_key_for(entity_type, text, event), headers)

    def decode(self, entity_type: str, ident: uuid.UUID, stored: Delivered) -> Record:
        return envelope_record(entity_type, ident, load_json(stored[1]), self.fingerprint(stored))

    def fingerprint(self, stored: Delivered) -> str | None:
        """The data's text as stored when the body is one we wrote, else its parsed ``data``."""
        data = self._data(stored[1])
        if isinstance(data, bytes):
            return self.store.fingerprint_text(data)
        try:
            return self.store.fingerprint_text(canonical(data)) if isinstance(data, Mapping) else None
        except (UUIDForgeError, ValueError, TypeError, RecursionError):
            return self.store.fingerprint_data(data)  # no canonical form: equal to no source's data

    def owned_fields(self, record: Record) -> frozenset[str]:
        return self.MEMBERS

    @staticmethod
    def _data(body: bytes) -> bytes | Any:
        """The ``data`` of an envelope body: its text as stored when the body is one we wrote
        (``{"id":…,…,"data":<canonical text>,"key":<key>}``, checked by parsing the small key at the
        end), else the parsed value of its ``data`` (None when the body is no JSON object)."""
        start = body.find(b'"data":')
        end = body.rfind(b',"key":')
        if 0 < start < end and body[-1:] == b"}" and body[:7] == b'{"id":"':
            try:
                _KEY_DECODER.decode(body[end + 7:-1].decode("utf-8"))
                return body[start + 7:end]
            except ValueError:
                pass
        try:
            doc = load_json(body)
        except ValueError:
            return None
        return doc.get(DATA) if isinstance(doc, dict) else None


#: the ``layout`` option's values and the class each one selects
LAYOUTS: dict[str, type[MessageLayout]] = {"data": DataLayout, "envelope": EnvelopeLayout}
_KEY_DECODER = json.JSONDecoder()


class RabbitMQAdapter(Adapter):
    """Publishes records as event messages with publisher confirms; scans the history stream.

    One AMQP connection per adapter, opened on first use (and reopened after it drops); the
    exchange, stream queue and binding are declared once per connection. pika connections are
    not thread-safe: calls are serialised with a lock.
    """

    name: ClassVar[str] = "rabbitmq"
    #: DELETE: delete_many publishes a delete event per ID (nothing is removed: see append_only)
    capabilities: ClassVar[frozenset[str]] = frozenset({WRITE, SCAN, DELETE})
    append_only: ClassVar[bool] = True
    #: a scan reads the whole stream: an audit reads it once (scan_log), not once per partition
    partitioned_scan: ClassVar[bool] = False
    # A channel closed *by the broker* (404, 406, 403: wrong topology or rights) is not listed:
    # retrying cannot fix it, so it surfaces as a plain StoreError with the broker's reply text;
    # the transient ones (a queue's node down, 506) arrive as BrokerUnavailable (an OSError).
    connection_errors: ClassVar[tuple[type[BaseException], ...]] = (
        pika.exceptions.AMQPConnectionError,  # StreamLostError, ConnectionClosed, wrong state, ...
        pika.exceptions.ChannelWrongStateError,
        pika.exceptions.ChannelClosedByClient,
        AMQPConnectorException,
        OSError,
    )
    timeout_errors: ClassVar[tuple[type[BaseException], ...]] = (
        AMQPConnectorStackTimeout,
        pika.exceptions.AMQPHeartbeatTimeout,
        pika.exceptions.ConnectionBlockedTimeout,
        TimeoutError,  # also socket.timeout
    )

    def _classify(self, err: BaseException) -> type[StoreError] | None:
        """Credentials, vhost access and missing or mismatched topology are the store's; a message
        over the broker's size limit (406 ... max size) the record's."""
        if isinstance(err, (pika.exceptions.ProbableAuthenticationError, pika.exceptions.ProbableAccessDeniedError,
                            pika.exceptions.AuthenticationError)):
            return StoreConfigError
        if isinstance(err, (pika.exceptions.ChannelClosedByBroker, pika.exceptions.ConnectionClosedByBroker)):
            text = str(getattr(err, "reply_text", "")).lower()
            if err.reply_code == 406 and ("size" in text or "too large" in text):
                return StoreRejectedError
            if err.reply_code in (403, 404, 406, 530):
                return StoreConfigError
        return super()._classify(err)

    options: ClassVar[tuple[Option, ...]] = (
        Option("exchange", str, "uuid_forge", "the exchange events are published to: your existing one, of any "
               "type (declared passively, never redeclared), or a new durable one of exchange_type. 'amq.' "
               "names are reserved. Example: exchange=orders.events"),
        Option("exchange_type", str, "topic", "the type the exchange is created with when it does not exist yet "
               "(an existing exchange keeps its own type). Example: exchange_type=direct",
               choices=EXCHANGE_TYPES),
        Option("routing_key", str, "{entity_type}.{event}", "the routing key of every message, a template with "
               "the placeholders {entity_type}, {event} and {id} (the entity ID), at most 255 bytes filled in. "
               "Examples: '{event}' (route by event type, as a publisher of order.created does), "
               "'{entity_type}.{event}' (user.upserted), 'orders.{id}'. A scan also reads the messages of your "
               "own publisher (no x-entity-type header) whose routing key is the template filled in for the type"),
        Option("event", str, "upserted", "the event name: {event} in the routing key, the message's type, and "
               "part of its deterministic message_id. Example: event=order.created"),
        Option("delete_event", str, DELETE_EVENT, "the event name of a delete event: {event} in its routing key "
               "and the message's type (it also carries the header x-deleted=true). Example: "
               "delete_event=order.deleted"),
        layout_option(LAYOUTS, "data", "what a message body holds (a scan reads every layout's messages)."),
        Option("stream", str, None, "the durable stream queue bound to the exchange that keeps every message: "
               "audits read the latest message per ID from it. 'none' (or empty): no history, publish only, "
               "and the store cannot be audited. Example: stream=orders.history",
               shown_default="{exchange}.history"),
        Option("marker", bool, None, "whether an audit may append one end marker message (type "
               f"{MARKER_TYPE}, through the default exchange: this stream alone gets it) to find where the "
               "stream ends; AMQP 0-9-1 has no other exact way. The default stream {exchange}.history, declared "
               "by uuid-forge, is uuid-forge's own: yes. A stream you name with stream= (or declare=false) is "
               "yours: never written to, and its audit is refused, unless marker=true",
               shown_default="true for uuid-forge's own stream, false for yours"),
        Option("timeout", float, 5.0, "seconds to connect and to wait for publisher confirms", minimum=0,
               exclusive=True),
        Option("pipeline", bool, True, "publish a batch before waiting for its confirms (false: wait for each)"),
        Option("declare", bool, True, "declare the exchange (passively when it exists), the stream and its "
               "bindings on connect (false: they exist as they should)"),
        BATCH_SIZE,
    )
    driver_query: ClassVar[str] = "pika (`pika.URLParameters`, e.g. `heartbeat`, `connection_attempts`)"

    def __init__(self, url: str, **options: Any) -> None:
        parts = urlsplit(url)
        opts = self.parse_options(url, options)
        theirs = opts.driver_query
        super().__init__(url, batch_size=opts["batch_size"])
        self.exchange = _name(opts["exchange"], "exchange")
        if self.exchange.startswith("amq."):
            raise ValidationError(f"exchange {self.exchange!r}: names starting with 'amq.' are reserved by AMQP")
        self.exchange_type: str = opts["exchange_type"]
        self.layout: MessageLayout = LAYOUTS[opts["layout"]](self)
        # a scan reads the messages of every layout, whatever the option says: the marked ones by their mark
        self._readers = sorted((cls(self) for cls in LAYOUTS.values()), key=lambda reader: reader.mark is None)
        stream = opts["stream"]
        self.stream: str | None = (None if stream is not None and stream.strip().lower() in NO_STREAM
                                   else _name(stream if stream is not None else f"{self.exchange}.history", "stream"))
        if self.stream is None:
            self.capabilities = frozenset({WRITE, DELETE})  # type: ignore[misc]  # no history: nothing to scan
        self.event: str = _event(opts["event"], "event")
        self.delete_event: str = _event(opts["delete_event"], "delete_event")
        if self.delete_event == self.event:
            raise ValidationError(f"delete_event {self.delete_event!r} is the write event too: consumers could not "
                                  "tell a delete from a write; name another (e.g. 'deleted')")
        self.routing_key: str = opts["routing_key"]
        self._per_id = "id" in _template_fields(self.routing_key)
        if self._per_id and self.stream is not None and self.exchange_type == "direct":
            raise ValidationError(f"routing_key {self.routing_key!r} holds {{id}}: a direct exchange cannot route "
                                  "every ID to the history stream; use a topic exchange, or stream=none")
        self.timeout: float = opts["timeout"]
        self.pipeline: bool = opts["pipeline"]
        self.declare: bool = opts["declare"]
        #: the audit may append its end marker: to uuid-forge's own stream (the default name, declared
        #: by the adapter) unless told otherwise, to a stream the user names only when told so
        self.marker: bool = opts["marker"] if opts["marker"] is not None else (stream is None and self.declare)
        try:
            self._params = pika.URLParameters(urlunsplit(parts._replace(query=urlencode(theirs))))
        except ValueError as err:
            raise ConfigError(f"{mask_url(url)}: {err}") from None
        given = {k for k, _ in theirs}
        # A server that accepts TCP but never speaks AMQP must fail within seconds, not hang.
        for setting, value in (("socket_timeout", self.timeout), ("stack_timeout", self.timeout),
                               ("blocked_connection_timeout", self.timeout), ("connection_attempts", 1)):
            if setting not in given:
                setattr(self._params, setting, value)
        self._lock = threading.RLock()
        self._conn: pika.BlockingConnection | None = None
        self._declared = False
        self._bound: set[str] = set()  # routing keys the stream is bound with on this connection
        self._created_exchange = False  # only an exchange this adapter created may be deleted by it
        self._publisher: _Publisher | None = None

    @property
    def id_encoding(self) -> str:
        return "string"


    # -- validation ----------------------------------------------------------------------------
    def routing_key_for(self, entity_type: str, ident: str = _SAMPLE_ID, event: str | None = None) -> str:
        """The routing key template filled in (``ident`` only matters when it holds ``{id}``), for
        ``event`` (default: the write event)."""
        return self.routing_key.format(entity_type=entity_type, event=event or self.event, id=ident)

    def check_entity_type(self, entity_type: str) -> str:
        """The base rule, plus: the routing key filled in for this type (with a 36-char ID) must fit
        an AMQP shortstr (255 bytes), or the broker would close the channel."""
        super().check_entity_type(entity_type)
        _shortstr(self.routing_key_for(entity_type), "routing key")
        _shortstr(self.routing_key_for(entity_type, event=self.delete_event), "routing key")
        return entity_type

    # -- connection ----------------------------------------------------------------------------
    def _connection(self, declare: bool = True) -> pika.BlockingConnection:
        """The open connection (reconnecting if it dropped), with the topology declared (unless
        ``declare`` is False: a probe, which must create nothing on the broker)."""
        if self._conn is not None and self._conn.is_open:
            try:  # notice a close while we were idle (missed heartbeats, broker restart)
                self._conn.process_data_events(0)
            except pika.exceptions.AMQPConnectionError:
                self._conn = None
        if self._conn is None or not self._conn.is_open:
            self._conn, self._publisher, self._declared = None, None, False
            self._bound = set()
            try:
                self._conn = pika.BlockingConnection(self._params)
            except pika.exceptions.AMQPConnectionError as err:
                cause = err.args[0] if err.args else None
                if isinstance(getattr(cause, "exception", None), TimeoutError):
                    raise TimeoutError(f"connecting timed out after {self.timeout}s: {cause}") from None
                raise
        if declare and self.declare and not self._declared:
            self._declare_topology(self._conn)
            self._declared = True
        return self._conn

    def _declare_topology(self, conn: pika.BlockingConnection) -> None:
        """The exchange (passively if it exists: the user's, as it is), our stream and its binding."""
        channel = conn.channel()
        try:
            try:
                with _probing():
                    channel.exchange_declare(self.exchange, passive=True)
            except pika.exceptions.ChannelClosedByBroker as err:
                if err.reply_code != 404:
                    raise
                channel = conn.channel()  # a failed passive declare closes its channel
                channel.exchange_declare(self.exchange, self.exchange_type, durable=True)
                self._created_exchange = True
            if self.stream is not None:
                self._declare_stream(channel)
                # '#' routes everything on a topic exchange (fanout ignores keys), x-match=all with
                # no other header matches everything on a headers exchange; direct: see _bind
                channel.queue_bind(self.stream, self.exchange, "#", arguments={"x-match": "all"})
                if not ({"entity_type", "id"} & set(_template_fields(self.routing_key))):
                    # one key for every type ('{event}'): bound now, so that the user's own
                    # publisher's messages reach the stream before uuid-forge publishes any
                    key = self.routing_key_for("")
                    channel.queue_bind(self.stream, self.exchange, key)
                    self._bound.add(key)
        finally:
            if channel.is_open:
                channel.close()

    def _declare_stream(self, channel: Any) -> None:
        """Declare the history stream, or say clearly why an existing queue of that name is not one."""
        try:
            channel.queue_declare(self.stream, durable=True, arguments={"x-queue-type": "stream"})
        except pika.exceptions.ChannelClosedByBroker as err:
            if err.reply_code != 406:
                raise
            what = "is not a stream queue" if "x-queue-type" in err.reply_text else "has other arguments"
            raise StoreConfigError(f"{self.url()}: queue {self.stream!r} exists but {what} ({err.reply_text}); "
                                   "name another stream, or declare=false to use it as it is",
                                   store=self.url()) from None

    def _bind(self, routing_keys: set[str]) -> None:
        """Bind the stream with each routing key not bound yet on this connection: on a direct
        exchange (whose type an existing exchange does not tell) only an exact key routes to it."""
        todo = routing_keys - self._bound
        if not todo or self.stream is None or not self.declare:
            return
        channel = self._connection().channel()
        try:
            for key in sorted(todo):
                channel.queue_bind(self.stream, self.exchange, key)
                self._bound.add(key)
        finally:
            if channel.is_open:
                channel.close()

    def _publishing(self) -> _Publisher:
        conn = self._connection()
        if self._publisher is None or not self._publisher.channel.is_open:
            self._publisher = _Publisher(conn, self.pipeline, self.timeout)
        return self._publisher

    def _ping(self) -> None:
        with self._lock, _transient():
            self._connection().process_data_events(0)  # raises if the server went away

    def _probe(self) -> None:
        with self._lock, _transient():
            self._connection(declare=False).process_data_events(0)  # validate and stores create nothing

    def _close(self) -> None:
        with self._lock:
            conn, self._conn, self._publisher = self._conn, None, None
            if conn is not None and conn.is_open:
                conn.close()

    def delete_topology(self) -> None:
        """Delete this adapter's history stream, with every message in it, and its exchange if
        this adapter created it (a user's existing exchange is theirs: it stays).

        A message log cannot forget one entity type, so this is all or nothing: for tests, demos
        and decommissioning.
        """
        with self._errors("delete_topology"), self._lock:
            channel = self._connection().channel()
            try:
                if self.stream is not None:
                    channel.queue_delete(self.stream)
                if self._created_exchange:
                    channel.exchange_delete(self.exchange)
            finally:
                if channel.is_open:
                    channel.close()
            self._declared = False
            self._bound = set()

    # -- writing -------------------------------------------------------------------------------
    def _put(self, entity_type: str, records: list[Record]) -> None:
        """Publish one batch and return only when the broker has confirmed every message."""
        self._publish_batch([self._message(entity_type, r) for r in records])  # every body encoded first

    def _delete(self, entity_type: str, ids: list[uuid.UUID]) -> int:
        """Publish one delete event per ID, confirmed like writes; return how many were published.

        Nothing is removed (a stream is append-only): the event tells consumers, and it ends the
        entity's history, so an audit no longer counts the ID as held. ``message_id`` is
        ``event_id(id, "deleted", token)``: a retry of the same deletion (same token) carries the
        same one, a later deletion of a re-created entity a new one.
        """
        token = self._delete_token
        if not token:
            raise ValidationError(f"{self.url()}: delete_many({entity_type!r}) needs token=, naming the deletion "
                                  "(Forge.delete passes the tombstone's time): a delete event's message_id is made "
                                  "from it, so that consumers drop a retried one and not a later deletion")
        self._publish_batch([self._delete_message(entity_type, ident, token) for ident in ids])
        return len(ids)

    def _drop(self, entity_type: str) -> None:
        """Refused: a message log cannot forget one entity type, and publishing a delete event for
        everything a scan finds would tell every consumer that those entities were deleted."""
        raise StoreError(f"{self.url()}: drop({entity_type!r}) refused: a message log cannot remove one entity "
                         "type's messages (they stay until the stream's retention, x-max-age or "
                         "x-max-length-bytes, ages them out); delete entities with Forge.delete (a delete "
                         "event each), or remove the whole stream with delete_topology()", store=self.url())

    def _publish_batch(self, batch: list[tuple[str, str, bytes, pika.BasicProperties]]) -> None:
        """Publish (binding the stream to each routing key where needed) and wait for every confirm."""
        with self._lock, _transient():
            if not self._per_id:
                self._bind({routing_key for _, routing_key, _, _ in batch})
            returned, nacked = self._publish_confirmed(batch)
        if returned:
            self._raise_unroutable(returned)
        if nacked:
            raise StoreError(f"{self.url()}: the broker rejected (nacked) {nacked} message(s)", store=self.url())

    def _message(self, entity_type: str, r: Record) -> tuple[str, str, bytes, pika.BasicProperties]:
        """(exchange, routing key, body, properties) of one record in the configured layout."""
        ident = str(r.id)
        message = self.layout.encode(r)
        return self.exchange, self.routing_key_for(entity_type, ident), message.body, pika.BasicProperties(
            content_type="application/json", delivery_mode=2, correlation_id=ident,
            message_id=str(event_id(r.id, self.event, r.fingerprint)), timestamp=int(time.time()),
            type=message.type, headers=message.headers)

    def _delete_message(self, entity_type: str, ident: uuid.UUID, token: str
                        ) -> tuple[str, str, bytes, pika.BasicProperties]:
        """(exchange, routing key, body, properties) of the delete event of ``ident``."""
        text = str(ident)
        message = self.layout.encode_delete(entity_type, ident)
        return self.exchange, self.routing_key_for(entity_type, text, self.delete_event), message.body, \
            pika.BasicProperties(content_type="application/json" if message.body else None, delivery_mode=2,
                                 correlation_id=text, message_id=str(event_id(ident, DELETE_EVENT, token)),
                                 timestamp=int(time.time()), type=message.type, headers=message.headers)

    def _raise_unroutable(self, returned: int) -> None:
        """Messages came back unroutable: a retry helps only if the history stream exists.

        Just after a broker restart the stream exists but is not yet available, and publishes to
        its exchange come back unroutable; that passes, so it is StoreUnavailableError (retried,
        then journaled). A stream that does not exist (``declare=false`` and nobody declared it)
        will not appear by itself, so that is a plain StoreError. Without a stream, nobody was
        bound to receive them yet: retried, then journaled, until a consumer binds a queue.
        """
        head = f"{self.url()}: {returned} message(s) returned unroutable by exchange {self.exchange!r}"
        if self.stream is None:
            raise StoreUnavailableError(f"{head}: no queue is bound to receive them (and no history stream "
                                        "is configured)", store=self.url())
        with self._lock, _transient():
            channel = self._connection().channel()
            try:
                channel.queue_declare(self.stream, passive=True)
            except pika.exceptions.ChannelClosedByBroker as err:
                if err.reply_code == 404 and "down or inaccessible" not in err.reply_text:
                    raise StoreError(f"{head}: its history stream {self.stream!r} does not exist; declare and "
                                     "bind it, or let the adapter do it (declare=true)", store=self.url()) from None
                raise
            finally:
                if channel.is_open:
                    channel.close()
        raise StoreUnavailableError(f"{head}, though stream {self.stream!r} exists: it may be starting up "
                                    "(retrying), or not bound to the exchange", store=self.url())

    def _publish_confirmed(self, messages: Iterable[tuple[str, str, bytes, pika.BasicProperties]]) -> tuple[int, int]:
        """Publish (mandatory) and wait for every confirm; return how many were (returned, nacked)."""
        publisher = self._publishing()
        try:
            for exchange, routing_key, body, properties in messages:
                publisher.publish(exchange, routing_key, body, properties)
            return publisher.wait()
        except BaseException:
            self._publisher = None  # its confirm bookkeeping is unknown now: start afresh
            publisher.close()
            raise

    # -- reading the history -------------------------------------------------------------------
    def erasure_limits(self, entity_type: str) -> list[str]:
        """A stream is append-only and consumers keep what they received: say so plainly."""
        limits = [("consumers that already received the entity's messages (queues bound to exchange "
                  f"{self.exchange!r}, their databases) keep their copies: they must act on the delete event "
                  "themselves")]
        if self.stream is not None:
            limits.insert(0, f"stream {self.stream!r} is append-only: the entity's earlier messages, with its data, "
                             "stay in it until the stream's retention (x-max-age or x-max-length-bytes, by queue "
                             "argument or policy) drops the segments that hold them; no message can be removed "
                             "sooner. The delete event ends the entity's history there, and audits then count it "
                             "deleted")
        return [*limits, *super().erasure_limits(entity_type)]

    def _scan(self, entity_type: str, partition: Partition) -> Iterator[ScanItem]:
        """The latest fingerprint of each entity of ``entity_type`` in the stream, within ``partition``.

        The whole stream is read (a log has no index by type or ID), and the latest event per
        entity wins (an entity whose latest event is its delete event is not listed), so this
        holds one entry per entity of the partition in memory (a few hundred bytes each): an
        audit reads :meth:`scan_log` instead, which keeps nothing. A
        ``correlation_id`` that is not the lowercase 36-char UUID string is reported as
        :class:`MalformedID`.
        """
        latest: dict[uuid.UUID | str, ScanItem] = {}

        def collect(item: ScanItem) -> None:
            ident = item[0]
            key = ident if isinstance(ident, uuid.UUID) else (ident.id or ident.raw) \
                if isinstance(ident, MalformedID) else f"foreign:{ident.raw}"
            if item[1] == DELETED:  # a delete event ends the entity's history: not held
                latest.pop(key, None)
            elif isinstance(key, str) or partition.contains(key):
                latest[key] = item

        self._read_log(entity_type, collect)
        yield from latest.values()

    def scan_log(self, entity_type: str, handle: Callable[[ScanItem], None]) -> None:
        """Call ``handle`` with every event of ``entity_type`` in the stream as a scan item, oldest
        first, keeping none: the audit spills the latest per entity to disk (uuid_forge.logspill),
        so its memory does not grow with the stream. A delete event comes as ``(id, DELETED)``
        (uuid_forge.record): from there on the entity is not held, until a later write."""
        self._require(SCAN)
        self.check_entity_type(entity_type)
        with self._errors(f"scan_log({entity_type})"):
            self._read_log(entity_type, handle)

    def _read_log(self, entity_type: str, handle: Callable[[ScanItem], None]) -> None:
        self._refuse_unmarked()
        if not self._per_id:
            keys = {self.routing_key_for(entity_type), self.routing_key_for(entity_type, event=self.delete_event)}
            with self._lock, _transient():  # from now on the user's own messages of this type reach the stream
                self._bind(keys)

        def each(props: pika.BasicProperties, routing_key: str, body: bytes) -> None:
            headers = props.headers or {}
            owner = headers.get("x-entity-type")
            if owner is None:  # the user's own publisher: the routing key says whose it is, its type which event
                deleted = props.type == self.delete_event
                raw = str(props.correlation_id or "")
                if routing_key != self.routing_key_for(entity_type, raw, self.delete_event if deleted else None):
                    return
            elif owner != entity_type:
                return
            else:
                deleted = headers.get(DELETED_HEADER) is True
            ident = _entity_id(props.correlation_id, self.id_versions)
            if isinstance(ident, ForeignEntry):
                handle((ident, None))
            elif deleted:
                handle((ident, DELETED))
            else:  # the fingerprint of the data the message carries, never its x-fingerprint header
                handle((ident, self._body_fp(headers, body)))

        self._read_history(each)

    def _body_fp(self, headers: Mapping[str, Any], body: bytes) -> str | None:
        """The fingerprint of the data a message carries, read by the layout it was written in."""
        reader = next(r for r in self._readers if r.reads(headers))
        return reader.fingerprint((headers, body))

    def _entity_types(self) -> Iterable[str]:
        types: set[str] = set()
        self._read_history(lambda props, _key, _body: types.add(str((props.headers or {}).get("x-entity-type") or "")))
        types.discard("")
        return types

    def _refuse_unmarked(self) -> None:
        """Raise before anything is read or bound when the audit may not append its end marker."""
        if not self.marker:
            raise StoreConfigError(
                f"{self.url()}: cannot audit stream {self.stream!r} without writing to it: over AMQP 0-9-1 a reader "
                "cannot tell where a stream ends, so an audit appends one end marker message (type "
                f"{MARKER_TYPE}), and this stream is yours (named with stream=, or declare=false), so nothing is "
                "written to it. Either audit uuid-forge's own history stream (leave stream= out: "
                f"{self.exchange}.history, bound to the same exchange, gets every message from then on), or allow "
                "the marker here with marker=true (your other readers of the stream then see it and should skip "
                "that type)", store=self.url())

    def _read_history(self, handle: Callable[[pika.BasicProperties, str, bytes], None]) -> None:
        """Feed the properties, routing key and body of every message in the stream, oldest first,
        to ``handle``.

        A stream never says "end" over AMQP 0-9-1: a consumer just waits for more; a delivery
        carries its own ``x-stream-offset`` but never the stream's last one; queue.declare-ok
        reports 0 messages for a stream (RabbitMQ 3.10) or a statistics figure refreshed every
        few seconds (later versions); basic.get is refused. Only the stream protocol and the
        node's own tools know the committed offset. So we append a marker (a tiny message sent
        through the default exchange, so it lands in this stream only, confirmed, so it is stored
        after everything confirmed before it) and read from the first offset until that marker
        arrives. This is exact, unlike an idle timeout, which would silently cut a scan short on
        a slow broker. If no message arrives for ``timeout`` seconds, the scan fails instead.

        The marker is a write, so it goes only to a stream of uuid-forge's own (:attr:`marker`);
        the audit of a stream the user named is refused, with the reason, unless ``marker=true``.
        """
        assert self.stream is not None  # SCAN is declared only with a stream
        self._refuse_unmarked()
        with self._lock, _transient():
            marker = str(uuid.uuid4())
            returned, nacked = self._publish_confirmed([("", self.stream, b"", pika.BasicProperties(
                type=MARKER_TYPE, message_id=marker, delivery_mode=2, timestamp=int(time.time())))])
            if returned or nacked:
                raise StoreError(f"{self.url()}: could not append the end marker to stream {self.stream!r} "
                                 f"({'no such queue' if returned else 'nacked'})", store=self.url())
            conn = self._connection()
            channel = conn.channel()
            state = {"done": False, "seen": 0, "unacked": 0}

            def on_message(ch: Any, method: Any, props: pika.BasicProperties, body: bytes) -> None:
                state["seen"] += 1
                state["unacked"] += 1
                if state["done"]:
                    return
                if props.type == MARKER_TYPE and props.message_id == marker:
                    state["done"] = True
                elif props.type != MARKER_TYPE:
                    handle(props, method.routing_key, body)
                if state["done"] or state["unacked"] >= _ACK_EVERY:  # streams need acks to keep credit
                    ch.basic_ack(method.delivery_tag, multiple=True)
                    state["unacked"] = 0

            try:
                channel.basic_qos(prefetch_count=_PREFETCH)
                channel.basic_consume(self.stream, on_message, arguments={"x-stream-offset": "first"})
                progress = time.monotonic()
                while not state["done"]:
                    before = state["seen"]
                    conn.process_data_events(time_limit=self.timeout)
                    if state["seen"] != before:
                        progress = time.monotonic()
                    elif time.monotonic() - progress >= self.timeout:
                        raise TimeoutError(f"stream {self.stream!r} delivered nothing for {self.timeout}s "
                                           f"before the end marker ({state['seen']} messages read)")
            finally:
                _close_consumer(channel)


def _close_consumer(channel: Any) -> None:
    """Close a stream consumer's channel without basic.cancel.

    pika's BlockingChannel.close cancels the consumer and rejects every delivery still on its
    way; a stream answers basic.reject by closing the whole connection (540 NOT_IMPLEMENTED).
    Messages after our end marker may well be in flight, so close the underlying channel
    directly: the broker drops unacknowledged stream deliveries on channel close.
    """
    impl = getattr(channel, "_impl", None)
    if impl is not None and hasattr(channel, "_flush_output"):
        if impl.is_open:
            impl.close()
            channel._flush_output(lambda: channel.is_closed)
    elif channel.is_open:
        try:
            channel.close()
        except pika.exceptions.ConnectionClosedByBroker:
            pass  # the 540 above: the read is complete, and the next call reconnects


class _Publisher:
    """One confirm-mode channel. Every message is confirmed before :meth:`wait` returns.

    pika's BlockingChannel waits for each confirm in turn (one round trip per message, about
    2k msg/s on localhost). With ``pipeline`` (the default) the batch is published on the
    underlying asynchronous channel and the confirms are collected afterwards, about 5-10 times
    faster. That path uses two pika internals (``BlockingChannel._impl`` and ``_flush_output``,
    stable since pika 1.0); ``pipeline=False`` keeps to the public API.
    """

    def __init__(self, conn: pika.BlockingConnection, pipeline: bool, timeout: float) -> None:
        self.conn, self.timeout = conn, timeout
        self.channel = conn.channel()
        self.pipeline = pipeline and hasattr(self.channel, "_impl") and hasattr(self.channel, "_flush_output")
        self._returned = 0
        self._nacked = 0
        self._last_tag = 0  # delivery tags count up from 1 on a confirm-mode channel
        self._low = 1
        self._unconfirmed: set[int] = set()
        if not self.pipeline:
            self.channel.confirm_delivery()
            return
        impl = self.channel._impl
        selected: list[Any] = []
        impl.confirm_delivery(self._on_confirm, callback=selected.append)
        self.channel._flush_output(lambda: bool(selected))
        impl.add_on_return_callback(self._on_return)

    def publish(self, exchange: str, routing_key: str, body: bytes, properties: pika.BasicProperties) -> None:
        if not self.pipeline:
            try:
                self.channel.basic_publish(exchange, routing_key, body, properties, mandatory=True)
            except pika.exceptions.UnroutableError:
                self._returned += 1
            except pika.exceptions.NackError:
                self._nacked += 1
            return
        self.channel._impl.basic_publish(exchange, routing_key, body, properties, mandatory=True)
        self._last_tag += 1
        self._unconfirmed.add(self._last_tag)

    def wait(self) -> tuple[int, int]:
        """Drive I/O until every message published is confirmed; return (returned, nacked) since
        the last wait. Raises TimeoutError if no confirm arrives for ``timeout`` seconds."""
        while self._unconfirmed:
            left = len(self._unconfirmed)
            deadline = time.monotonic() + self.timeout
            timer = self.conn.call_later(self.timeout, lambda: None)  # wakes the I/O loop at the deadline
            try:
                self.channel._flush_output(
                    lambda left=left, deadline=deadline: len(self._unconfirmed) < left or time.monotonic() >= deadline)
            finally:
                self.conn.remove_timeout(timer)
            if len(self._unconfirmed) == left:
                raise TimeoutError(f"no publisher confirm for {self.timeout}s ({left} messages unconfirmed)")
        counts, self._returned, self._nacked = (self._returned, self._nacked), 0, 0
        return counts

    def close(self) -> None:
        try:
            if self.channel.is_open:
                self.channel.close()
        except pika.exceptions.AMQPError:
            pass  # the connection is gone already; nothing to release

    def _on_confirm(self, frame: Any) -> None:
        method = frame.method
        tag = method.delivery_tag
        done = ([t for t in range(self._low, tag + 1) if t in self._unconfirmed] if method.multiple
                else [tag] if tag in self._unconfirmed else [])
        if method.multiple:
            self._low = max(self._low, tag + 1)
        self._unconfirmed.difference_update(done)
        if isinstance(method, pika.spec.Basic.Nack):
            self._nacked += len(done)

    def _on_return(self, channel: Any, method: Any, properties: Any, body: bytes) -> None:
        self._returned += 1  # RabbitMQ sends basic.return before the message's basic.ack


def _entity_id(raw: Any, versions: frozenset[int] = ANY_VERSIONS) -> uuid.UUID | MalformedID | ForeignEntry:
    """The entity ID in a ``correlation_id``; a MalformedID for an ID of ours in the wrong form;
    a ForeignEntry for anything else (no correlation_id, another application's)."""
    if raw is None or raw == "":
        return ForeignEntry(raw="", reason="message has no correlation_id: not ours, left alone")
    text = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
    return classify(text, "string", versions=versions, where="correlation_id")


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str) or not _NAME.fullmatch(value):
        raise ValidationError(f"{what} name {value!r}: use 1-255 chars of letters, digits, '_', '-', '.', ':'")
    return value


def _event(value: Any, what: str) -> str:
    """An event name as an option gives it: letters, digits, '_', '-', '.', fitting a shortstr."""
    if not isinstance(value, str) or not _EVENT.fullmatch(value):
        raise ValidationError(f"{what} {value!r}: use letters, digits, '_', '-', '.' (not first)")
    _shortstr(value, what)
    return value


def _shortstr(value: str, what: str) -> None:
    try:
        check_target(value, "amqp-shortstr", what)
    except TargetError as err:
        raise ValidationError(str(err)) from None
