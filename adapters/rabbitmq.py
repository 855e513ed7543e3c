"""``amqp://``: every record becomes a persistent event message; a stream queue keeps the history.

Layout (DESIGN.md): a durable topic exchange (default ``uuid_forge``), routing key
``{entity_type}.{event}``, ``correlation_id`` = the entity ID (36-char string) and ``message_id`` =
a deterministic event ID (:func:`event_id`), so a retried publish carries the same message_id and
consumers can drop duplicates. A durable stream queue (default ``{exchange}.history``) bound with
``#`` keeps every message; audits read it from the first offset without consuming it.

A message log is append-only, so the adapter declares ``write`` and ``scan`` only: no read by ID,
no delete. A scan appends a small end marker to the stream (``type`` = :data:`MARKER_TYPE`, through
the default exchange, so only the stream sees it); other readers of the stream should skip it. URL: ``amqp://user:pass@host:5672/vhost?exchange=uuid_forge&stream=uuid_forge.history``
(also ``event``, ``timeout``, ``pipeline``, ``declare``, ``batch_size``; keyword options override the
URL; any other query parameter goes to pika, e.g. ``heartbeat``).
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar
from urllib.parse import urlencode, urlsplit, urlunsplit

import pika
import pika.exceptions
from pika.adapters.utils.connection_workflow import AMQPConnectorException, AMQPConnectorStackTimeout

from ..classify import ANY_VERSIONS, classify
from ..encodings import check_target
from ..errors import (
    ConfigError,
    StoreConfigError,
    StoreError,
    StoreRejectedError,
    StoreUnavailableError,
    TargetError,
    ValidationError,
)
from ..events import EVENT_SCHEME, event_id
from ..record import ForeignEntry, MalformedID, Partition, Record, TextFingerprint, held_fingerprint, load_json
from ..urls import mask_url
from ..contract import BATCH_SIZE, SCAN, WRITE, Adapter, Option, ScanItem

__all__ = ["EVENT_SCHEME", "MARKER_TYPE", "BrokerUnavailable", "RabbitMQAdapter", "event_id"]

#: first element of the name hashed into an event ID; bump it only with a new formula
#: ``type`` of the end-of-scan markers this adapter appends to the stream (readers skip them)
MARKER_TYPE = "uuid-forge.scan-marker"

_NAME = re.compile(r"[A-Za-z0-9_.:\-]{1,255}")  # AMQP 0-9-1 exchange/queue name grammar
_EVENT = re.compile(r"[A-Za-z0-9_\-][A-Za-z0-9_.\-]*")
_PREFETCH = 1000
_ACK_EVERY = 250


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


class RabbitMQAdapter(Adapter):
    """Publishes records as event messages with publisher confirms; scans the history stream.

    One AMQP connection per adapter, opened on first use (and reopened after it drops); the
    exchange, stream queue and binding are declared once per connection. pika connections are
    not thread-safe: calls are serialised with a lock.
    """

    name: ClassVar[str] = "rabbitmq"
    capabilities: ClassVar[frozenset[str]] = frozenset({WRITE, SCAN})
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
        Option("exchange", str, "uuid_forge", "the durable topic exchange events are published to ('amq.' names "
               "are reserved)"),
        Option("stream", str, None, "the durable stream queue bound with '#' that keeps the history audits read",
               shown_default="{exchange}.history"),
        Option("event", str, "upserted", "the event name: routing key {entity_type}.{event} and message type"),
        Option("timeout", float, 5.0, "seconds to connect and to wait for publisher confirms", minimum=0,
               exclusive=True),
        Option("pipeline", bool, True, "publish a batch before waiting for its confirms (false: wait for each)"),
        Option("declare", bool, True, "declare the exchange, stream and binding on connect (false: they exist)"),
        BATCH_SIZE,
    )
    driver_query: ClassVar[str] = "pika (`pika.URLParameters`, e.g. `heartbeat`, `connection_attempts`)"

    def __init__(self, url: str, **options: Any) -> None:
        parts = urlsplit(url)
        opts = self.parse_options(url, options)
        theirs = opts.driver_query
        exchange, stream, event = opts["exchange"], opts["stream"], opts["event"]
        super().__init__(url, batch_size=opts["batch_size"])
        self.exchange = _name(exchange, "exchange")
        if self.exchange.startswith("amq."):
            raise ValidationError(f"exchange {self.exchange!r}: names starting with 'amq.' are reserved by AMQP")
        self.stream = _name(stream if stream is not None else f"{self.exchange}.history", "stream")
        self.event = event
        if not isinstance(self.event, str) or not _EVENT.fullmatch(self.event):
            raise ValidationError(f"event {self.event!r}: use letters, digits, '_', '-', '.' (not first)")
        _shortstr(self.event, "event")
        self.timeout: float = opts["timeout"]
        self.pipeline: bool = opts["pipeline"]
        self.declare: bool = opts["declare"]
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
        self._publisher: _Publisher | None = None

    @property
    def id_encoding(self) -> str:
        return "string"

    # -- validation ----------------------------------------------------------------------------
    def check_entity_type(self, entity_type: str) -> str:
        """The base rule, plus: the routing key ``{entity_type}.{event}`` (also the message
        ``type``) must fit an AMQP shortstr (255 bytes), or the broker would close the channel."""
        super().check_entity_type(entity_type)
        _shortstr(f"{entity_type}.{self.event}", "routing key")
        return entity_type

    # -- connection ----------------------------------------------------------------------------
    def _connection(self) -> pika.BlockingConnection:
        """The open connection (reconnecting if it dropped), with the topology declared."""
        if self._conn is not None and self._conn.is_open:
            try:  # notice a close while we were idle (missed heartbeats, broker restart)
                self._conn.process_data_events(0)
            except pika.exceptions.AMQPConnectionError:
                self._conn = None
        if self._conn is None or not self._conn.is_open:
            self._conn, self._publisher, self._declared = None, None, False
            try:
                self._conn = pika.BlockingConnection(self._params)
            except pika.exceptions.AMQPConnectionError as err:
                cause = err.args[0] if err.args else None
                if isinstance(getattr(cause, "exception", None), TimeoutError):
                    raise TimeoutError(f"connecting timed out after {self.timeout}s: {cause}") from None
                raise
        if self.declare and not self._declared:
            channel = self._conn.channel()
            try:
                channel.exchange_declare(self.exchange, "topic", durable=True)
                channel.queue_declare(self.stream, durable=True, arguments={"x-queue-type": "stream"})
                channel.queue_bind(self.stream, self.exchange, "#")
            finally:
                if channel.is_open:
                    channel.close()
            self._declared = True
        return self._conn

    def _publishing(self) -> _Publisher:
        conn = self._connection()
        if self._publisher is None or not self._publisher.channel.is_open:
            self._publisher = _Publisher(conn, self.pipeline, self.timeout)
        return self._publisher

    def _ping(self) -> None:
        with self._lock, _transient():
            self._connection().process_data_events(0)  # raises if the server went away

    def _close(self) -> None:
        with self._lock:
            conn, self._conn, self._publisher = self._conn, None, None
            if conn is not None and conn.is_open:
                conn.close()

    def delete_topology(self) -> None:
        """Delete this adapter's exchange and history stream, with every message in it.

        A message log cannot forget one entity type, so this is all or nothing: for tests, demos
        and decommissioning.
        """
        with self._errors("delete_topology"), self._lock:
            channel = self._connection().channel()
            try:
                channel.queue_delete(self.stream)
                channel.exchange_delete(self.exchange)
            finally:
                if channel.is_open:
                    channel.close()
            self._declared = False

    # -- writing -------------------------------------------------------------------------------
    def _put(self, entity_type: str, records: list[Record]) -> None:
        """Publish one batch and return only when the broker has confirmed every message."""
        routing_key, event = f"{entity_type}.{self.event}", self.event
        head = f'"entity_type":{json.dumps(entity_type)},"event":{json.dumps(event)}'
        now = int(time.time())

        def messages() -> Iterator[tuple[str, str, bytes, pika.BasicProperties]]:
            for r in records:
                ident, fp, key = str(r.id), r.fingerprint, r.key_json
                body = f'{{"id":"{ident}",{head},"fp":{json.dumps(fp)},"data":{r.data_json},"key":{key or "null"}}}'
                yield self.exchange, routing_key, body.encode(), pika.BasicProperties(
                    content_type="application/json", delivery_mode=2, correlation_id=ident,
                    message_id=str(event_id(r.id, event, fp)), type=routing_key, timestamp=now,
                    headers={"x-entity-type": entity_type, "x-fingerprint": fp, "x-id-scheme": "uuid-forge/1"})

        batch = list(messages())  # encode every key before the first publish: a bad key fails cleanly
        with self._lock, _transient():
            returned, nacked = self._publish_confirmed(batch)
        if returned:
            self._raise_unroutable(returned)
        if nacked:
            raise StoreError(f"{self.url()}: the broker rejected (nacked) {nacked} message(s)", store=self.url())

    def _raise_unroutable(self, returned: int) -> None:
        """Messages came back unroutable: a retry helps only if the history stream exists.

        Just after a broker restart the stream exists but is not yet available, and publishes to
        its exchange come back unroutable; that passes, so it is StoreUnavailableError (retried,
        then journaled). A stream that does not exist (``declare=false`` and nobody declared it)
        will not appear by itself, so that is a plain StoreError.
        """
        head = f"{self.url()}: {returned} message(s) returned unroutable by exchange {self.exchange!r}"
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
    def _scan(self, entity_type: str, partition: Partition) -> Iterator[ScanItem]:
        """The latest fingerprint of each entity of ``entity_type`` in the stream, within ``partition``.

        The whole stream is read (a log has no index by type or ID), and the latest event per
        entity wins, so this holds one entry per entity of the partition in memory (a few hundred
        bytes each): an audit reads :meth:`scan_log` instead, which keeps nothing. A
        ``correlation_id`` that is not the lowercase 36-char UUID string is reported as
        :class:`MalformedID`.
        """
        latest: dict[uuid.UUID | str, ScanItem] = {}

        def collect(item: ScanItem) -> None:
            ident = item[0]
            key = ident if isinstance(ident, uuid.UUID) else (ident.id or ident.raw) \
                if isinstance(ident, MalformedID) else f"foreign:{ident.raw}"
            if isinstance(key, str) or partition.contains(key):
                latest[key] = item

        self._read_log(entity_type, collect)
        yield from latest.values()

    def scan_log(self, entity_type: str, handle: Callable[[ScanItem], None]) -> None:
        """Call ``handle`` with every event of ``entity_type`` in the stream as a scan item, oldest
        first, keeping none: the audit spills the latest per entity to disk (uuid_forge.logspill),
        so its memory does not grow with the stream."""
        self._require(SCAN)
        self.check_entity_type(entity_type)
        with self._errors(f"scan_log({entity_type})"):
            self._read_log(entity_type, handle)

    def _read_log(self, entity_type: str, handle: Callable[[ScanItem], None]) -> None:
        def each(props: pika.BasicProperties, body: bytes) -> None:
            headers = props.headers or {}
            if headers.get("x-entity-type") == entity_type:
                ident = _entity_id(props.correlation_id, self.id_versions)
                # the fingerprint of the data the message carries, never its x-fingerprint header
                handle((ident, None if isinstance(ident, ForeignEntry) else _body_fp(body)))

        self._read_history(each)

    def _entity_types(self) -> Iterable[str]:
        types: set[str] = set()
        self._read_history(lambda props, _: types.add(str((props.headers or {}).get("x-entity-type") or "")))
        types.discard("")
        return types

    def _read_history(self, handle: Callable[[pika.BasicProperties, bytes], None]) -> None:
        """Feed the properties and body of every message in the stream, oldest first, to ``handle``.

        A stream never says "end": over AMQP 0-9-1 a consumer just waits for more, and
        queue.declare-ok reports 0 messages for streams. So we first append a marker (a tiny
        message sent through the default exchange, so it lands in this stream only, confirmed, so
        it is stored after everything confirmed before it) and read from the first offset until
        that marker arrives. This is exact, unlike an idle timeout, which would silently cut a
        scan short on a slow broker. If no message arrives for ``timeout`` seconds, the scan
        fails instead.
        """
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
                    handle(props, body)
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


def _body_fp(body: bytes) -> str | None:
    """The fingerprint of the ``data`` in a message body.

    Our bodies are ``{"id":…,…,"fp":…,"data":<canonical text>,"key":<key>}``: the data's text is
    hashed as it is (a TextFingerprint) once the small key at the end is checked to be JSON; a
    body in any other shape (another producer's) is parsed whole.
    """
    start = body.find(b'"data":')
    end = body.rfind(b',"key":')
    if 0 < start < end and body[-1:] == b"}" and body[:7] == b'{"id":"':
        try:
            _KEY_DECODER.decode(body[end + 7:-1].decode("utf-8"))
            return TextFingerprint(body[start + 7:end])
        except ValueError:
            pass
    try:
        doc = load_json(body)
    except ValueError:
        return None
    return held_fingerprint(doc.get("data")) if isinstance(doc, dict) else None


_KEY_DECODER = json.JSONDecoder()


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


def _shortstr(value: str, what: str) -> None:
    try:
        check_target(value, "amqp-shortstr", what)
    except TargetError as err:
        raise ValidationError(str(err)) from None
