"""``redis://`` and ``rediss://``: one Redis key per record, the ID in the key, the data as the value.

Layouts (DESIGN.md "Layouts"): the shape is the user's, declared in the store's options.

* Key: ``key_pattern`` (default ``{type}:{id}``, so type ``user`` gives ``user:<uuid>``), with
  ``{type}`` and ``{id}`` placeholders; ``prefix`` is always joined in front by ``:`` (``prefix=app``
  gives ``app:user:<uuid>``; one that already ends in ``:`` is not doubled). The ID is the
  lowercase 36-char string, or the 22-char base64url form (``id_format=base64url``). A pattern
  must hold ``{id}`` once and ``{type}`` at most once, no glob characters, and ``{type}`` set off
  by a character no entity type has (``:``, ``/``, ``|``...), so one type's SCAN MATCH never
  catches another type's keys.
* Value (``layout=``, one class per layout in :data:`LAYOUTS`):
  - ``data`` (default; ``json`` is its old name): the data as one JSON string, ``SET key json``
    (``SET ... EX ttl`` with a ``ttl``), readable with a plain ``GET``; the seed's
    ``SETEX user:<id> 3600 <json.dumps(...)>`` is this layout. Written as canonical JSON; read
    with every digit (Decimals stay exact).
  - ``hash``: a flat hash, one field per top-level data field, each value the canonical JSON of
    that field's value (``HGET user:<id> age`` gives ``42``, a number; a name gives ``"Ann"``). A
    field set by hand to text that is no JSON (``HSET user:<id> name Ann``) reads as that text.
    Redis has no empty hash, so empty data is refused in this layout.
  - ``envelope``: uuid-forge 0.x's hash ``{fp, data, key}`` (``data``/``key`` canonical JSON);
    ``fp`` is a write-time hint no audit trusts.
  Only the data is stored in ``data`` and ``hash``: records read back have ``key=None`` (the
  audit checks IDs against the entity type's declared key fields in the data).

Writes own only their fields (issue 18, rule 3; docs/stores.md "Redis: what a write owns"): with
a ``projection`` or ``ignore_fields``, a write keeps the fields under a key that the view does not
own. ``data`` SETs through a script when the stored object holds none of those (one round trip),
else merges in Python and writes with a compare-and-set script, redone for keys changed meanwhile;
``hash`` HSETs and HDELs owned fields only, in one script per key; ``envelope`` owns its three
members and HSETs only them.

Every fingerprint comes from the data read (``fingerprint_text`` of the JSON string as stored,
``fingerprint_data`` of a hash's fields), never from a stored ``fp``. ``ttl=`` seconds gives the
"Redis cache with TTL" pattern: every key written expires on its own (a rewrite sets it again).

Ownership is by key name (uuid_forge.classify): a key under a type's pattern whose ID part is no ID
of ours in any form (``user:session-abc``, ``user:42:prefs``, another tenant's ``acme:user:...``)
is foreign: reported, never deleted or overwritten, not even by ``drop``. A key whose name is an
ID of ours but which holds the wrong Redis type (a hash where the layout wants a string) is an
unreadable record of ours: stale in an audit, rewritten by repair. ``{prefix}:uf:types`` is a set
of the types written; scans never need it (keys a seed wrote without it are found by SCAN MATCH on
the pattern). ``entity_types()``: with a prefix, the recorded types plus every type a key under the
prefix names (one SCAN of the prefix: keys of the pattern's shape with an ID of ours, so a stray
``app:invoice:<uuid>`` set by hand is found); without a prefix (a shared database, where a name
proves nothing) the recorded types only.

Options (keyword or URL query), e.g. ``redis://127.0.0.1:6379/0?key_pattern=cache:{type}:{id}&ttl=3600``:
see ``uuid-forge adapters --options redis``.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import re
import threading
import uuid
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from functools import partial
from queue import Empty, Queue
from typing import Any, ClassVar, Protocol
from urllib.parse import urlencode, urlsplit, urlunsplit

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from uuid_forge.canonical import canonical
from uuid_forge.cellsums import BITS, CellSums
from uuid_forge.classify import classify
from uuid_forge.contract import BATCH_SIZE, SCAN, Adapter, Option, ScanItem
from uuid_forge.envelope import DATA, FP, KEY, envelope_members, envelope_record
from uuid_forge.errors import (
    OptionError,
    StoreConfigError,
    StoreError,
    StoreRejectedError,
    StoreUnavailableError,
    UUIDForgeError,
    ValidationError,
)
from uuid_forge.jsonmerge import load_verbatim, merged_text
from uuid_forge.layout import Layout, layout_option
from uuid_forge.rangehash import hex_digest
from uuid_forge.record import ForeignEntry, MalformedID, Partition, RawEntry, Record, load_json
from uuid_forge.urls import mask_text
from uuid_forge.view import FieldView

__all__ = ["GONE", "ID_FORMATS", "LAYOUTS", "DataLayout", "EnvelopeLayout", "Fingerprints", "HashLayout", "IdText",
           "RedisAdapter", "RedisLayout", "WrongType", "check_key_pattern"]

log = logging.getLogger("uuid_forge.adapters")

DEFAULT_PATTERN = "{type}:{id}"
_STRING = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_B64URL = re.compile(r"[A-Za-z0-9_-]{21}[AQgw]")  # canonical: the last char carries 2 bits + 4 zero bits
_GLOB = re.compile(r"([*?\[\]\\])")
_BRACES = re.compile(r"\{[^{}]*\}|[{}]")
_TYPE_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")
GONE = object()  # a key SCAN listed that expired or was deleted before its value was read

Key = bytes | str  # a key as SCAN gives it (bytes) or as built here (str)
Command = Callable[..., Any]  # a pipeline's execute_command


# -- the ID in a key -----------------------------------------------------------------------------
def _b64(u: uuid.UUID) -> str:
    return base64.urlsafe_b64encode(u.bytes)[:22].decode("ascii")


def _from_b64(text: str) -> uuid.UUID:
    return uuid.UUID(bytes=base64.urlsafe_b64decode(text + "=="))


@dataclass(frozen=True)
class IdText:
    """One text form of the ID in a key (option ``id_format``): writing it, and reading it back."""

    name: str
    text: Callable[[uuid.UUID], str]
    #: the canonical text of an ID in this form; anything else goes to uuid_forge.classify
    pattern: re.Pattern[str]
    parse: Callable[[str], uuid.UUID]
    #: the text sorts like the ID's number, so a partition's range is two string comparisons
    ordered: bool


ID_FORMATS: dict[str, IdText] = {
    "string": IdText("string", str, _STRING, uuid.UUID, ordered=True),
    "base64url": IdText("base64url", _b64, _B64URL, _from_b64, ordered=False),
}


def check_key_pattern(pattern: str) -> tuple[str, str]:
    """The parts of ``pattern`` before and after ``{id}``, or OptionError saying what is wrong.

    Refused: no ``{id}`` or two; ``{type}`` twice; any other ``{...}``; glob characters (they
    would widen SCAN MATCH); a ``{type}`` touching a character an entity type may hold, or
    ``{id}`` (type ``a`` would then MATCH the keys of type ``ab``).
    """
    def bad(reason: str) -> OptionError:
        return OptionError(f"redis option key_pattern={pattern!r}: {reason} (e.g. '{{type}}:{{id}}', "
                           "'cache:{type}:{id}', '{type}:{id}:profile')", adapter="redis", option="key_pattern")

    tokens = _BRACES.findall(pattern)
    unknown = sorted({t for t in tokens if t not in ("{type}", "{id}")})
    if unknown:
        raise bad(f"unknown placeholder or stray brace {', '.join(unknown)}: only {{type}} and {{id}}")
    if tokens.count("{id}") != 1:
        raise bad("must hold {id} exactly once")
    if tokens.count("{type}") > 1:
        raise bad("may hold {type} at most once")
    glob = sorted(set(_GLOB.findall(pattern)))
    if glob:
        raise bad(f"holds the glob character(s) {' '.join(glob)}, which would widen SCAN MATCH")
    if "{type}" in pattern:
        at = pattern.index("{type}")
        before, after = pattern[:at], pattern[at + len("{type}"):]
        for neighbour in (before[-1:], after[:1]):
            if neighbour and (neighbour in _TYPE_CHARS or neighbour in "{}"):
                raise bad("{type} must be set off by a separator no entity type holds (':', '/', '|', '#', ...), "
                          "or one type's keys would match another's")
    before, after = pattern.split("{id}")
    return before, after


def _ahead(pages: Iterator[Any], depth: int = 4) -> Iterator[Any]:
    """``pages`` read by a thread of their own, up to ``depth`` ahead: the server works on the next
    page while this thread handles the last (the socket wait releases the GIL). The reader's error
    is raised here; leaving early stops the reader after its current page."""
    queue: Queue[Any] = Queue(depth)
    stop = threading.Event()
    done = object()

    def read() -> None:
        try:
            for page in pages:
                if stop.is_set():
                    return
                queue.put(page)
            queue.put(done)
        except BaseException as err:  # noqa: BLE001 - handed to the consumer, raised there
            queue.put(_Failed(err))

    reader = threading.Thread(target=read, name="uuid-forge-redis-pages", daemon=True)
    reader.start()
    try:
        while (item := queue.get()) is not done:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        stop.set()
        while reader.is_alive():  # unblock a reader waiting on a full queue
            with contextlib.suppress(Empty):
                queue.get_nowait()
            reader.join(0.05)


@dataclass(frozen=True)
class _Failed:
    error: BaseException


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "replace") if isinstance(value, bytes) else value


# -- reading many keys in one round trip -----------------------------------------------------------
@dataclass(frozen=True)
class WrongType:
    """What a read found under a key of ours that holds another Redis type than its layout writes."""

    what: str  # e.g. "holds a Redis hash"


def _strings(client: redis.Redis, keys: Sequence[Key]) -> list[Any]:
    """MGET: bytes for a string, None for an absent key, and the Redis type's name (str) for a
    key holding another type (MGET says nil for those: TYPE tells them from absent keys)."""
    values: list[Any] = list(client.execute_command("MGET", *keys)) if keys else []
    missing = [n for n, v in enumerate(values) if v is None]
    if missing:
        pipe = client.pipeline(transaction=False)
        for n in missing:
            pipe.execute_command("TYPE", keys[n])
        for n, kind in zip(missing, pipe.execute()):
            kind = _text(kind)
            if kind != "none":
                values[n] = kind
    return values


def _pipelined(client: redis.Redis, keys: Sequence[Key], *args: str) -> list[Any]:
    """One command per key in one round trip; a WRONGTYPE comes back as its exception."""
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.execute_command(args[0], key, *args[1:])
    return pipe.execute(raise_on_error=False)


def _raise_first(replies: Iterable[Any]) -> None:
    """Raise the first error among a pipeline's replies (``execute(raise_on_error=False)``)."""
    for reply in replies:
        if isinstance(reply, Exception):
            raise reply


# -- writes that own only their fields (issue 18, rule 3) ------------------------------------------
# Each script gets the rule of FieldView.owns as one argument, a JSON array: "p" and the projection
# (the names owned), or "i" and ignore_fields (the names not owned). Scripts run atomically on the server: no other
# client's command lands between their read and their write.

#: layout=data, the fast path: SET the record when the stored JSON object holds only fields we own
#: (or the key is absent, or holds another type or no JSON object: rewritten); 0 when it holds
#: another application's field, or text cjson cannot read: then Python merges (_DATA_CAS).
#: ARGV: the new JSON, ttl or '', the rule
_DATA_FAST = """
local held = redis.pcall('GET', KEYS[1])
if type(held) == 'string' then
  local ok, doc = pcall(cjson.decode, held)
  if not ok then return 0 end
  if type(doc) == 'table' then
    local rule, listed = cjson.decode(ARGV[3]), {}
    for i = 2, #rule do listed[rule[i]] = true end
    local projection = rule[1] == 'p'
    for name in pairs(doc) do
      if type(name) ~= 'string' or (listed[name] == true) ~= projection then return 0 end
    end
  end
end
if ARGV[2] ~= '' then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) else redis.call('SET', KEYS[1], ARGV[1]) end
return 1
"""

#: layout=data, after a merge in Python: SET only if the key still holds what the merge read (the
#: SHA-1 of the string read, or '' when no string was read); 0 when another writer changed it.
#: ARGV: the merged JSON, ttl or '', sha1 or ''
_DATA_CAS = """
local kind = redis.call('TYPE', KEYS[1])['ok']
if ARGV[3] == '' then
  if kind == 'string' then return 0 end
elseif kind ~= 'string' or redis.sha1hex(redis.call('GET', KEYS[1])) ~= ARGV[3] then
  return 0
end
if ARGV[2] ~= '' then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) else redis.call('SET', KEYS[1], ARGV[1]) end
return 1
"""

#: layout=hash: HDEL the owned fields the record no longer has, HSET its fields, set or clear the
#: TTL; fields we do not own stay. A key of ours holding another Redis type is rewritten.
#: ARGV: ttl or '', the rule, then field, value pairs
_HASH_MERGE = """
local key = KEYS[1]
local first = 3
local kind = redis.call('TYPE', key)['ok']
if kind == 'hash' then
  local rule, listed, new, gone = cjson.decode(ARGV[2]), {}, {}, {}
  for i = 2, #rule do listed[rule[i]] = true end
  for i = first, #ARGV, 2 do new[ARGV[i]] = true end
  local projection = rule[1] == 'p'
  for _, name in ipairs(redis.call('HKEYS', key)) do
    if not new[name] and (listed[name] == true) == projection then gone[#gone + 1] = name end
  end
  for i = 1, #gone, 1000 do redis.call('HDEL', key, unpack(gone, i, math.min(i + 999, #gone))) end
elseif kind ~= 'none' then
  redis.call('DEL', key)
end
for i = first, #ARGV, 1000 do redis.call('HSET', key, unpack(ARGV, i, math.min(i + 999, #ARGV))) end
if ARGV[1] ~= '' then redis.call('EXPIRE', key, ARGV[1]) else redis.call('PERSIST', key) end
return 1
"""

#: the audit's hashes of one SCAN page (layout=data, uuid_forge.rangehash): per key, the sha1 hex of
#: its ID's 32 hex digits (ARGV, decoded from the key name in Python) followed by the string held;
#: 0 for a key gone since SCAN listed it, 1 for a key of another Redis type (never an error)
#: (one MGET, which says nil for another type too; EXISTS tells those apart: 4x faster than a GET per key)
_DIGESTS = """
local held = redis.call('MGET', unpack(KEYS))
local out = {}
for i = 1, #KEYS do
  local value = held[i]
  if value then
    out[i] = redis.sha1hex(ARGV[i] .. value)
  elseif redis.call('EXISTS', KEYS[i]) == 1 then
    out[i] = 1
  else
    out[i] = 0
  end
end
return out
"""

# One SCAN page of one type's keys, walked on the server (uuid_forge.cellsums). ARGV: cursor, MATCH
# pattern, COUNT, the text before and after the ID, mode, wanted cells. A key of ours has the
# shape ``head .. 36 characters .. tail`` (the string id_format; whether those 36 are a canonical
# ID is checked in Python, which classifies anything else as a scan does). Mode "sum": each such
# key's value hashed as _DIGESTS does; returned {cursor, ``id .. sha1 hex`` of each, concatenated;
# the IDs whose key held no string (another Redis type, or gone); the other names}. Mode "list":
# {cursor, the IDs of the keys in the wanted cells (4 hex digits each, concatenated; empty: all)}.
_CELLS = """
local page = redis.call('SCAN', ARGV[1], 'MATCH', ARGV[2], 'COUNT', ARGV[3])
local keys = page[2]
local head, tail, mode = ARGV[4], ARGV[5], ARGV[6]
local hl, tl = #head, #tail
local ours, ids, odd = {}, {}, {}
for i = 1, #keys do
  local k = keys[i]
  if #k == hl + 36 + tl and string.sub(k, 1, hl) == head and (tl == 0 or string.sub(k, -tl) == tail) then
    ours[#ours + 1] = k
    ids[#ids + 1] = string.sub(k, hl + 1, hl + 36)
  else
    odd[#odd + 1] = k
  end
end
if mode == 'list' then
  local wanted, all = {}, ARGV[7] == ''
  for i = 1, #ARGV[7], 4 do wanted[string.sub(ARGV[7], i, i + 3)] = true end
  local out = {}
  for i = 1, #ids do
    if all or wanted[string.sub(ids[i], 1, 4)] then out[#out + 1] = ids[i] end
  end
  return {page[1], out}
end
local packed, unhashed = {}, {}
for first = 1, #ours, 500 do
  local last = math.min(first + 499, #ours)
  local held = redis.call('MGET', unpack(ours, first, last))
  for j = first, last do
    local value = held[j - first + 1]
    local id = ids[j]
    if value then
      packed[#packed + 1] = id
      packed[#packed + 1] = redis.sha1hex(string.gsub(id, '-', '') .. value)
    else
      unhashed[#unhashed + 1] = id
    end
  end
end
return {page[1], table.concat(packed), unhashed, odd}
"""

#: how often a batch's merge is redone for keys other writers keep changing before it gives up
MERGE_ATTEMPTS = 20


class Lua:
    """A server-side script, called by its SHA-1 (EVALSHA) and loaded again when the server lost it."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.sha = hashlib.sha1(text.encode()).hexdigest().encode()

    def queue(self, command: Command, key: bytes, *args: bytes) -> None:
        command(b"EVALSHA", self.sha, b"1", key, *args)

    def load(self, client: redis.Redis) -> None:
        client.script_load(self.text)


_DATA_FAST_SCRIPT = Lua(_DATA_FAST)
_DATA_CAS_SCRIPT = Lua(_DATA_CAS)
_HASH_SCRIPT = Lua(_HASH_MERGE)
_DIGESTS_SCRIPT = Lua(_DIGESTS)
_CELLS_SCRIPT = Lua(_CELLS)
assert BITS == 16, "_CELLS takes a cell as the ID's first 4 hex digits"
_TOO_DEEP = object()


def _run(client: redis.Redis, script: Lua, calls: list[tuple[bytes, list[bytes]]]) -> list[Any]:
    """One call of ``script`` per (key, arguments), in one pipeline; loaded first if the server lost it."""
    for attempt in range(2):
        pipe = client.pipeline(transaction=False)
        for key, args in calls:
            script.queue(pipe.execute_command, key, *args)
        replies = pipe.execute(raise_on_error=False)
        if attempt or not any(_no_script(r) for r in replies):
            break
        script.load(client)
    return replies


def _run_keys(client: redis.Redis, script: Lua, keys: Sequence[Key], args: Sequence[bytes | str]) -> Any:
    """One call of ``script`` over many keys (EVALSHA); loaded first if the server lost it."""
    try:
        return client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)
    except redis.exceptions.NoScriptError:
        script.load(client)
        return client.execute_command("EVALSHA", script.sha, len(keys), *keys, *args)


def _no_script(reply: Any) -> bool:
    return isinstance(reply, redis.exceptions.NoScriptError)


def _ownership(view: FieldView) -> bytes:
    """The rule of :meth:`FieldView.owns` as a script's argument, a JSON array: ``p`` and the names
    owned (the projection), or ``i`` and the names not owned (``ignore_fields``)."""
    if view.projection is not None:
        return json.dumps(["p", *view.projection]).encode()
    return json.dumps(["i", *view.ignore_fields]).encode()


def _owns_all(view: FieldView) -> bool:
    """Whether a write owns every field whatever it is named: no projection, nothing ignored."""
    return view.projection is None and not view.ignore_fields


# -- layouts: what one key holds -----------------------------------------------------------------
class Fingerprints(Protocol):
    """Where a layout's fingerprints come from: the adapter, seen through its view (uuid_forge.view),
    which also says which data fields a write owns."""

    view: FieldView

    def url(self) -> str: ...

    def fingerprint_text(self, text: str | bytes) -> str | None: ...

    def fingerprint_data(self, data: Any) -> str | None: ...


class RedisLayout(Layout):
    """What one record's key holds: the commands that write it, the read that fetches it, and
    how it becomes a record and a fingerprint again. The adapter keeps keys, scans and ownership.

    A layout fingerprints through the adapter it serves (``store``), whose view decides what of
    the data counts; :meth:`RedisAdapter.viewed` gives a twin adapter its own layout.
    """

    #: MULTI/EXEC around one batch's commands (a record written in two commands must not be seen half-done)
    transaction: ClassVar[bool] = False

    def __init__(self, store: Fingerprints, ttl: int | None) -> None:
        self.store = store
        self.ttl = ttl


    def check(self, entity_type: str, records: list[Record]) -> None:
        """Refuse, before anything is written, records this layout cannot hold (default: none)."""

    @abstractmethod
    def write(self, command: Command, keys: list[bytes], records: list[Record]) -> None:
        """Queue on a pipeline (``command``) what stores each record under its key (bytes: redis-py
        then packs arguments without per-value type checks)."""

    def settle(self, client: redis.Redis, keys: list[bytes], records: list[Record], replies: list[Any]) -> None:
        """Finish a batch once the pipeline ran (``replies``: one per command :meth:`write` queued):
        by default, raise the first error. A layout that merges with what is stored redoes here the
        keys another writer changed meanwhile."""
        _raise_first(replies)

    @abstractmethod
    def read(self, client: redis.Redis, keys: Sequence[Key]) -> list[Any]:
        """What each key holds, in one round trip: what :meth:`decode` takes, None for an absent
        key, or a :class:`WrongType`."""

    @abstractmethod
    def fingerprints(self, client: redis.Redis, keys: Sequence[Key]) -> list[Any]:
        """The audit's read of one SCAN page (its fast path): each key's fingerprint, None for a
        key of the wrong Redis type or data that is no record (so: stale), :data:`GONE` for a key
        deleted since SCAN listed it."""


    def digest_algorithms(self) -> tuple[str, ...]:
        """The range-digest algorithms (uuid_forge.rangehash) :meth:`digests` computes; none by default:
        what the keys hold is not the JSON text a fingerprint hashes, so the audit reads the records."""
        return ()

    def digests(self, client: redis.Redis, keys: Sequence[Key], ids: Sequence[str]) -> list[Any]:
        """The audit's hashes of one SCAN page, computed on the server: per key, the record's part of a
        range sum (``rangehash.record_digest`` of its ID's hex, ``ids``, and the value), None for a key
        of the wrong Redis type, :data:`GONE` for a key deleted since SCAN listed it."""
        raise NotImplementedError(f"layout {self.name} hashes nothing on the server")


class DataLayout(RedisLayout):
    """The data as one JSON string: what a cache written with ``SET``/``SETEX`` and read with ``GET`` holds."""

    name: ClassVar[str] = "data"
    doc: ClassVar[str] = ("the data as one JSON string (SET, or SET ... EX with a ttl), read with a plain GET, "
                          "e.g. GET user:<id> gives {\"name\":\"Ann\",\"age\":42}")

    def encode(self, record: Record) -> bytes:
        """The record's JSON: its data, less any field this store's write does not own."""
        view = self.store.view
        if _owns_all(view) or all(view.owns(k) for k in record.data):
            return record.data_json.encode()
        return canonical(view.merged(None, record.data), f"data of {record.entity_type} {record.id}").encode()

    def write(self, command: Command, keys: list[bytes], records: list[Record]) -> None:
        """Every field ours (no projection, nothing ignored): a plain SET, no read. Else one script
        per key that SETs when the stored object holds no other application's field (the common
        case: one round trip), and leaves the key to :meth:`settle`'s merge otherwise."""
        ttl = self.ttl
        view = self.store.view
        if _owns_all(view):
            if ttl:
                for key, r in zip(keys, records):
                    command(b"SET", key, r.data_json.encode(), b"EX", ttl)
            else:
                for key, r in zip(keys, records):
                    command(b"SET", key, r.data_json.encode())  # a plain SET also clears an old TTL
            return
        args = [self._ttl_arg(), _ownership(view)]
        for key, r in zip(keys, records):
            _DATA_FAST_SCRIPT.queue(command, key, self.encode(r), *args)

    def settle(self, client: redis.Redis, keys: list[bytes], records: list[Record], replies: list[Any]) -> None:
        """Merge the keys that hold another application's fields: read them (MGET), keep the fields
        not owned and replace the owned ones (:meth:`FieldView.merged`), and SET each only if it
        still holds what was read (a compare-and-set script); a key another writer changed
        meanwhile is read and merged again, so no concurrent write is lost."""
        if _owns_all(self.store.view):
            _raise_first(replies)
            return
        args = [self._ttl_arg(), _ownership(self.store.view)]
        lost = [n for n, reply in enumerate(replies) if _no_script(reply)]
        if lost:  # the server lost its scripts (a restart, SCRIPT FLUSH): load, run those keys again
            again = _run(client, _DATA_FAST_SCRIPT, [(keys[n], [self.encode(records[n]), *args]) for n in lost])
            for n, reply in zip(lost, again):
                replies[n] = reply
        _raise_first(replies)
        pending = [n for n, reply in enumerate(replies) if reply == 0]
        for _ in range(MERGE_ATTEMPTS):
            if not pending:
                return
            stored = client.execute_command("MGET", *(keys[n] for n in pending))
            calls = []
            for n, value in zip(pending, stored):
                seen = hashlib.sha1(value).hexdigest().encode() if isinstance(value, bytes) else b""
                calls.append((keys[n], [self._merged(keys[n], records[n], value), args[0], seen]))
            replies = _run(client, _DATA_CAS_SCRIPT, calls)
            _raise_first(replies)
            pending = [n for n, reply in zip(pending, replies) if reply == 0]
        if pending:
            raise StoreUnavailableError(f"{self.store.url()}: key {_text(keys[pending[0]])} (and {len(pending) - 1} "
                                        f"more) changed under each of {MERGE_ATTEMPTS} merges: other writers keep "
                                        "writing it; not written, try again", store=self.store.url())

    def _merged(self, key: bytes, record: Record, stored: bytes | None) -> bytes:
        """The JSON a write leaves under ``key``: the stored object's fields that are not ours, then
        ours. A value that is no JSON object (absent, another type, unreadable) is rewritten."""
        try:
            held = load_verbatim(stored) if stored is not None else None
        except ValueError:
            held = None  # no JSON: unreadable, rewritten as a record of ours
        except RecursionError:
            held = _TOO_DEEP
        if not isinstance(held, dict):
            if held is _TOO_DEEP:
                raise StoreRejectedError(f"key {_text(key)} holds JSON nested too deep to merge with: "
                                         "left as it is", store=self.store.url())
            return self.encode(record)
        view = self.store.view
        try:
            where = f"data of {record.entity_type} {record.id}"
            return merged_text({k: v for k, v in held.items() if not view.owns(k)},
                               ((canonical(k), canonical(v, where)) for k, v in record.data.items()
                                if view.owns(k))).encode()
        except (UUIDForgeError, ValueError, TypeError, RecursionError):
            raise StoreRejectedError(f"key {_text(key)} holds fields of another application that cannot be "
                                     "written back unchanged: left as it is", store=self.store.url()) from None

    def _ttl_arg(self) -> bytes:
        return str(self.ttl).encode() if self.ttl else b""

    def read(self, client: redis.Redis, keys: Sequence[Key]) -> list[Any]:
        return [WrongType(f"holds a Redis {v}") if isinstance(v, str) else v for v in _strings(client, keys)]

    def decode(self, entity_type: str, ident: uuid.UUID, stored: bytes) -> Record:
        return Record(entity_type, ident, load_json(stored), None, fingerprint=self.store.fingerprint_text(stored))

    def fingerprint(self, stored: bytes) -> str | None:
        return self.store.fingerprint_text(stored)

    def fingerprints(self, client: redis.Redis, keys: Sequence[Key]) -> list[Any]:
        text = self.store.fingerprint_text
        return [text(v) if isinstance(v, bytes) else GONE if v is None else None for v in _strings(client, keys)]

    def owned_fields(self, record: Record) -> frozenset[str]:
        """The record's fields this store's view owns (FieldView.owns); the write keeps every other."""
        view = self.store.view
        return frozenset(name for name in record.data if view.owns(name))

    def digest_algorithms(self) -> tuple[str, ...]:
        """sha1 (a script's only hash), read whole (no projection, nothing ignored): the value is then
        the JSON text a fingerprint hashes."""
        view = self.store.view
        return ("sha1",) if view.full and _owns_all(view) else ()

    def digests(self, client: redis.Redis, keys: Sequence[Key], ids: Sequence[str]) -> list[Any]:
        """One script call per page (``_DIGESTS``): only hashes cross the wire, never a value."""
        replies = _run_keys(client, _DIGESTS_SCRIPT, keys, ids)
        return [hex_digest(r) if isinstance(r, (bytes, str)) else GONE if r == 0 else None for r in replies]


def _field_value(raw: bytes) -> Any:
    """A hash field as JSON (a number stays a number); text set by hand that is no JSON, as text."""
    try:
        return load_json(raw)
    except ValueError:
        return raw.decode("utf-8")


def _hash_data(fields: dict[Any, bytes]) -> dict[str, Any]:
    return {(k.decode("utf-8") if isinstance(k, bytes) else k): _field_value(v) for k, v in fields.items()}


class HashLayout(RedisLayout):
    """A flat hash, one field per top-level data field: what ``HSET``/``HGET`` users hold."""

    name: ClassVar[str] = "hash"
    doc: ClassVar[str] = ("a flat hash, one field per data field, each value that field's JSON "
                          "(HGET user:<id> age gives 42)")

    def check(self, entity_type: str, records: list[Record]) -> None:
        """A hash cannot be empty in Redis: empty data would read back as no record at all."""
        empty = [str(r.id) for r in records if not r.data]
        if empty:
            raise ValidationError(f"redis layout=hash cannot hold empty data ({entity_type} {empty[0]}"
                                  f"{f' and {len(empty) - 1} more' if len(empty) > 1 else ''}): Redis has "
                                  "no empty hash; use layout=data")

    def encode(self, record: Record) -> list[bytes]:
        """HSET's arguments: each owned field's name and its canonical JSON."""
        where = f"data of {record.entity_type} {record.id}"
        view = self.store.view
        every = _owns_all(view)
        fields: list[bytes] = []
        for name, value in record.data.items():
            if every or view.owns(str(name)):
                fields += [str(name).encode(), canonical(value, f"{where}.{name}").encode()]
        return fields

    def write(self, command: Command, keys: list[bytes], records: list[Record]) -> None:
        """One script per key (atomic): HDEL the owned fields the record no longer has, HSET its
        fields, set or clear the TTL. Fields another application added stay; the hash is never
        deleted as a whole."""
        head = self._head()
        for key, r in zip(keys, records):
            _HASH_SCRIPT.queue(command, key, *head, *self.encode(r))

    def settle(self, client: redis.Redis, keys: list[bytes], records: list[Record], replies: list[Any]) -> None:
        lost = [n for n, reply in enumerate(replies) if _no_script(reply)]
        if lost:  # the server lost its scripts (a restart, SCRIPT FLUSH): load, run those keys again
            head = self._head()
            replies = _run(client, _HASH_SCRIPT, [(keys[n], [*head, *self.encode(records[n])]) for n in lost])
        _raise_first(replies)

    def _head(self) -> list[bytes]:
        """The script's arguments before the fields: ttl, then the rule of ownership."""
        return [str(self.ttl).encode() if self.ttl else b"", _ownership(self.store.view)]

    def read(self, client: redis.Redis, keys: Sequence[Key]) -> list[Any]:
        return [WrongType("holds another Redis type than a hash") if isinstance(v, Exception) else v or None
                for v in _pipelined(client, keys, "HGETALL")]

    def decode(self, entity_type: str, ident: uuid.UUID, stored: dict[Any, bytes]) -> Record:
        data = _hash_data(stored)
        return Record(entity_type, ident, data, None, fingerprint=self.store.fingerprint_data(data))

    def fingerprint(self, stored: dict[Any, bytes]) -> str | None:
        try:
            return self.store.fingerprint_data(_hash_data(stored))
        except ValueError:  # a field that is not UTF-8 text: no record's data
            return None

    def fingerprints(self, client: redis.Redis, keys: Sequence[Key]) -> list[Any]:
        fingerprint = self.fingerprint
        return [None if isinstance(v, Exception) else fingerprint(v) if v else GONE
                for v in _pipelined(client, keys, "HGETALL")]

    def owned_fields(self, record: Record) -> frozenset[str]:
        """The record's fields this store's view owns (FieldView.owns); the write keeps every other."""
        view = self.store.view
        return frozenset(str(name) for name in record.data if view.owns(str(name)))


class EnvelopeLayout(RedisLayout):
    """uuid-forge 0.x's hash ``{fp, data, key}``, still read and written for stores it filled."""

    name: ClassVar[str] = "envelope"
    doc: ClassVar[str] = "uuid-forge 0.x's hash {fp, data, key}, fp a write-time hint no audit trusts."
    FIELDS: ClassVar[frozenset[str]] = frozenset({FP, DATA, KEY})
    _READ: ClassVar[tuple[str, ...]] = ("HMGET", DATA, KEY)

    def encode(self, record: Record) -> list[bytes]:
        """HSET's arguments: ``fp`` the write-time fingerprint (a hint no audit trusts), ``data``
        and ``key`` their canonical JSON (``key`` ``null`` when none is known)."""
        members = envelope_members(record)  # fp as JSON text there: a hash field holds it bare
        return [FP.encode(), record.fingerprint.encode(), DATA.encode(), members[DATA].encode(),
                KEY.encode(), members[KEY].encode()]

    def write(self, command: Command, keys: list[bytes], records: list[Record]) -> None:
        ttl = self.ttl
        for key, r in zip(keys, records):
            command(b"HSET", key, *self.encode(r))
            if ttl:
                command(b"EXPIRE", key, ttl)

    def read(self, client: redis.Redis, keys: Sequence[Key]) -> list[Any]:
        return [WrongType("holds another Redis type than a hash") if isinstance(v, Exception)
                else None if v[0] is None else v for v in _pipelined(client, keys, *self._READ)]

    def decode(self, entity_type: str, ident: uuid.UUID, stored: Sequence[bytes | None]) -> Record:
        data, key = stored
        assert data is not None  # read() gives None, not a pair, for a key without data
        doc = {DATA: load_json(data), KEY: load_json(key) if key else None}
        return envelope_record(entity_type, ident, doc, self.store.fingerprint_text(data))

    def fingerprint(self, stored: Sequence[bytes | None]) -> str | None:
        return None if stored[0] is None else self.store.fingerprint_text(stored[0])

    def fingerprints(self, client: redis.Redis, keys: Sequence[Key]) -> list[Any]:
        text = self.store.fingerprint_text  # only the data is read: a stored fp is never trusted
        return [text(v) if isinstance(v, bytes) else None for v in _pipelined(client, keys, "HGET", DATA)]

    def owned_fields(self, record: Record) -> frozenset[str]:
        return self.FIELDS


#: the layouts, by the name option ``layout`` takes
LAYOUTS: dict[str, type[RedisLayout]] = {"data": DataLayout, "hash": HashLayout, "envelope": EnvelopeLayout}


class RedisAdapter(Adapter):
    """Records as Redis values (JSON strings by default) under the user's key pattern."""

    name: ClassVar[str] = "redis"
    connection_errors: ClassVar[tuple[type[BaseException], ...]] = (
        redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
    timeout_errors: ClassVar[tuple[type[BaseException], ...]] = (redis.exceptions.TimeoutError,)
    #: SCAN walks the whole keyspace for any ID range: an audit reads it once (uuid_forge.onepass)
    whole_scan: bool = True

    def _classify(self, err: BaseException) -> type[StoreError] | None:
        """Authentication (a ConnectionError subclass in redis-py: not retried), ACL and
        unknown-DB refusals are the store's; a wrong type under a key or a refused value the record's."""
        if isinstance(err, (redis.exceptions.AuthenticationError, redis.exceptions.AuthorizationError,
                            redis.exceptions.NoPermissionError)):
            return StoreConfigError
        if isinstance(err, redis.exceptions.DataError):
            return StoreRejectedError
        if isinstance(err, redis.exceptions.ResponseError):
            text = str(err)
            if text.startswith(("NOAUTH", "WRONGPASS", "NOPERM", "OOM", "READONLY", "MISCONF")) \
                    or "DB index is out of range" in text or "invalid DB index" in text:
                return StoreConfigError
            if text.startswith("WRONGTYPE") or "max bulk length" in text or "invalid bulk length" in text \
                    or "string exceeds maximum" in text:
                return StoreRejectedError
        return super()._classify(err)

    options: ClassVar[tuple[Option, ...]] = (
        layout_option(LAYOUTS, "data", "what each key holds.", deprecated=("value",),
                      deprecated_values=(("json", "data"),)),
        Option("key_pattern", str, DEFAULT_PATTERN, "the key of one record: {type} is the entity type, {id} the ID "
               "(see id_format). {type}:{id} gives user:<uuid>; cache:{type}:{id} gives cache:user:<uuid>; "
               "{type}:{id}:profile gives user:<uuid>:profile. {id} exactly once; {type} at most once, set off by a "
               "separator such as ':'; no glob characters (* ? [ ] \\). Without {type}, every type shares "
               "the keys: give such a store one entity type"),
        Option("id_format", str, "string", "how the ID is written in the key: the 36-char string, or the 22-char "
               "base64url form (14 bytes less per key)", choices=tuple(ID_FORMATS), deprecated=("key_format",)),
        Option("prefix", str, "", "text in front of every key, always joined by ':' (a tenant or application name): "
               "prefix=app gives app:user:<uuid>; keys of other prefixes are other tenants', never touched"),
        Option("ttl", int, None, "seconds until every key written expires (the Redis-cache-with-TTL pattern, "
               "SET ... EX ttl); a rewrite or repair sets it again. none: keys never expire", minimum=1),
        Option("socket_timeout", float, 5.0, "seconds to wait for a reply", minimum=0),
        Option("socket_connect_timeout", float, 5.0, "seconds to wait for a connection", minimum=0),
        Option("retries", int, 1, "quick retries of a dropped pooled connection (never of a timeout: "
               "write-through retries on its own)", minimum=0),
        BATCH_SIZE,
    )
    driver_query: ClassVar[str] = "redis-py (`redis.Redis.from_url`, e.g. `health_check_interval`)"

    def __init__(self, url: str = "redis://127.0.0.1:6379/0", **options: Any) -> None:
        opts = self.parse_options(url, options)
        super().__init__(url, batch_size=opts["batch_size"])
        self.ttl: int | None = opts["ttl"]
        #: the layout (a :class:`RedisLayout`): what each key holds
        self.layout: RedisLayout = LAYOUTS[opts["layout"]](self, self.ttl)
        self.key_pattern: str = opts["key_pattern"]
        self._before_id, self._after_id = check_key_pattern(self.key_pattern)
        self._ids = ID_FORMATS[opts["id_format"]]
        prefix = opts["prefix"]
        # always joined by a separator: "app" + "user" must not read as type "appuser"
        self.prefix: str = prefix if not prefix or prefix.endswith(":") else prefix + ":"
        self._types_key = f"{self.prefix}uf:types"
        self._client = self._connect(url, opts.driver_query, opts["socket_timeout"], opts["socket_connect_timeout"],
                                     opts["retries"])

    def _connect(self, url: str, driver_query: list[tuple[str, str]], socket_timeout: float,
                 connect_timeout: float, retries: int) -> redis.Redis:
        """A redis-py client; URL query parameters that are not ours go to redis-py, checked now."""
        driver_url = urlunsplit(urlsplit(url)._replace(query=urlencode(driver_query)))
        client = redis.Redis.from_url(
            driver_url,
            socket_timeout=socket_timeout,
            socket_connect_timeout=connect_timeout,
            # redis-py's default retries 10 times, timeouts included: a silent server would hang for
            # a minute. Write-through retries on its own; here only a dropped pooled connection is.
            retry=Retry(NoBackoff(), retries, supported_errors=(redis.exceptions.ConnectionError,)),
            decode_responses=False,
        )
        if driver_query:  # a name redis-py does not know fails at the first connection: fail now
            pool = client.connection_pool
            try:
                pool.connection_class(**pool.connection_kwargs)  # builds the settings; does not connect
            except TypeError as err:
                names = ", ".join(sorted({n for n, _ in driver_query}))
                raise OptionError(f"redis: URL query parameter(s) {names}: neither an option of this adapter "
                                  f"({', '.join(o.name for o in self.options)}) nor one redis-py accepts "
                                  f"({type(err).__name__}: {mask_text(str(err))})") from None
        return client

    @property
    def id_format(self) -> str:
        """How the ID is written in keys: ``string`` or ``base64url``."""
        return self._ids.name

    @property
    def key_format(self) -> str:
        """The old name of :attr:`id_format`."""
        return self._ids.name

    @property
    def id_encoding(self) -> str:
        return self._ids.name

    @property
    def client(self) -> redis.Redis:
        """The underlying redis-py client (for what the adapter does not cover)."""
        return self._client


    def check_entity_type(self, entity_type: str) -> str:
        """Base rule, plus no ``:`` (it separates key parts) and no glob characters (SCAN MATCH)."""
        super().check_entity_type(entity_type)
        if ":" in entity_type or any(c in entity_type for c in "*?[]"):
            raise ValidationError(f"entity type {entity_type!r} is not accepted by redis: ':' separates key parts "
                                  "and * ? [ ] are glob characters in SCAN MATCH")
        return entity_type

    def validate_records(self, entity_type: str, records: list[Record]) -> None:
        self.layout.check(entity_type, records)

    # -- keys ----------------------------------------------------------------------------------
    def _ends(self, entity_type: str) -> tuple[str, str]:
        """The fixed text before and after the ID in one type's keys."""
        return (self.prefix + self._before_id.replace("{type}", entity_type),
                self._after_id.replace("{type}", entity_type))

    def key_of(self, entity_type: str, ident: uuid.UUID) -> str:
        """The Redis key of one record."""
        return self._keys(entity_type, [ident])[0]

    def _keys(self, entity_type: str, ids: list[uuid.UUID]) -> list[str]:
        head, tail = self._ends(entity_type)
        text = self._ids.text
        return [f"{head}{text(i)}{tail}" for i in ids]

    def _match(self, entity_type: str) -> str:
        """The SCAN MATCH pattern for one type's keys (a prefix may hold glob characters: escaped)."""
        head, tail = self._ends(entity_type)
        return _GLOB.sub(r"\\\1", head) + "*" + _GLOB.sub(r"\\\1", tail)

    def _id_part(self, key: str, head: str, tail: str) -> str | None:
        """The text where the ID sits in ``key``, or None when the key does not have the type's shape."""
        if len(key) < len(head) + len(tail) or not key.startswith(head) or not key.endswith(tail):
            return None
        return key[len(head):len(key) - len(tail)]

    def _parse(self, key: str, suffix: str | None) -> uuid.UUID | MalformedID | ForeignEntry:
        """The UUID in a key's ID part; a MalformedID for an ID of ours in the wrong form; a
        ForeignEntry for anything else (``session-abc``, ``42:prefs``, another tenant's keys)."""
        if suffix is None:
            return ForeignEntry(key, "key does not have this type's key pattern: not ours, left alone")
        ids = self._ids
        if ids.pattern.fullmatch(suffix):
            return ids.parse(suffix)
        return classify(suffix, ids.name, raw=key, versions=self.id_versions, where="key's ID part")

    def _ours(self, entity_type: str, keys: Iterable[Key]) -> list[Key]:
        """The keys among ``keys`` that uuid-forge may delete for this type (no foreign key, not the set)."""
        head, tail = self._ends(entity_type)
        kept = []
        for key in keys:
            text = _text(key)
            if text != self._types_key and not isinstance(self._parse(text, self._id_part(text, head, tail)),
                                                          ForeignEntry):
                kept.append(key)
        return kept

    # -- writes --------------------------------------------------------------------------------
    def _put(self, entity_type: str, records: list[Record]) -> None:
        layout = self.layout
        pipe = self._client.pipeline(transaction=layout.transaction)
        command = pipe.execute_command
        keys = [k.encode() for k in self._keys(entity_type, [r.id for r in records])]
        layout.write(command, keys, records)
        command(b"SADD", self._types_key, entity_type)
        replies = pipe.execute(raise_on_error=False)
        layout.settle(self._client, keys, records, replies[:-1])
        _raise_first(replies[-1:])

    def _put_new(self, entity_type: str, records: list[Record]) -> None:
        """Per record, ``WATCH`` its key, and only when it is absent ``MULTI``, the layout's write,
        ``EXEC``: a key created by another writer meanwhile aborts the transaction, and stays."""
        for record, key in zip(records, self._keys(entity_type, [r.id for r in records])):
            with self._client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(key)
                    if pipe.exists(key):
                        continue
                    pipe.multi()
                    self.layout.write(pipe.execute_command, [key.encode()], [record])
                    pipe.execute_command(b"SADD", self._types_key, entity_type)
                    pipe.execute()
                except redis.WatchError:
                    continue  # created meanwhile: the other writer's record is kept

    # -- reads ---------------------------------------------------------------------------------
    def _unreadable(self, entity_type: str, ident: uuid.UUID, key: str, what: str) -> Record:
        reason = f"key {key} {what}, not the {self.layout.name} layout this store reads"
        log.warning("%s: %s", self.url(), reason)
        return Record.unreadable_entry(entity_type, ident, reason)

    def _get(self, entity_type: str, ids: list[uuid.UUID]) -> Iterable[Record]:
        keys = self._keys(entity_type, ids)
        layout = self.layout
        found: list[Record] = []
        for ident, key, v in zip(ids, keys, layout.read(self._client, keys)):
            if isinstance(v, WrongType):
                found.append(self._unreadable(entity_type, ident, key, v.what))
            elif v is not None:
                found.append(self._read_record(entity_type, ident, partial(layout.decode, entity_type, ident, v),
                                               f"key {key}"))
        return found

    def _read_raw(self, entity_type: str, raws: list[str]) -> Iterable[RawEntry]:
        """Keys exactly as a scan gives them (``user:42``), read and decoded as :meth:`_get` does,
        in one round trip. A name without this type's key pattern (another type's key) is no entry
        of this type: absent, never read."""
        head, tail = self._ends(entity_type)
        raws = [k for k in raws if k != self._types_key and self._id_part(k, head, tail) is not None]
        if not raws:
            return []
        layout = self.layout
        found: list[RawEntry] = []
        for key, v in zip(raws, layout.read(self._client, raws)):
            if isinstance(v, WrongType):
                found.append(RawEntry(key, None, f"key {key} {v.what}, not the {layout.name} layout this store reads"))
            elif v is not None:
                found.append(self._raw_entry(entity_type, key, layout.decode, v, f"key {key}"))
        return found

    def _delete_raw_if_unchanged(self, entity_type: str, wanted: dict[str, str]) -> int:
        """Compare and delete atomically: ``WATCH`` the keys, read and compare them, then
        ``MULTI``/``UNLINK``/``EXEC``; a key written by anyone after the WATCH aborts the EXEC and
        nothing of the batch is deleted. An aborted batch is tried again, then key by key, so one
        busy key cannot keep the others; a key still changing stays (not proven any more)."""
        head, tail = self._ends(entity_type)
        todo = {k: fp for k, fp in wanted.items() if k != self._types_key and self._id_part(k, head, tail) is not None}
        keys = list(todo)
        total = 0
        for group in [keys, keys] + [[k] for k in keys]:
            group = [k for k in group if k in todo]
            if not group:
                continue
            with self._client.pipeline(transaction=True) as pipe:
                try:
                    pipe.watch(*group)
                    held = {e.raw: e for e in self._read_raw(entity_type, group)}
                    same = [k for k in group if self._still_proven(held.get(k), todo[k])]
                    for k in set(group) - set(same):
                        del todo[k]  # not proven now: stays
                    if not same:
                        continue
                    pipe.multi()
                    pipe.unlink(*same)
                    total += int(pipe.execute()[0])
                    for k in same:
                        del todo[k]
                except redis.WatchError:
                    continue  # written meanwhile: read and compared again
        return total

    def _delete_raw_names(self, entity_type: str, raws: list[str]) -> int:
        """UNLINK keys by their exact name, of this type's key pattern only (delete_raw_proven)."""
        head, tail = self._ends(entity_type)
        keys = [k for k in raws if k != self._types_key and self._id_part(k, head, tail) is not None]
        return int(self._client.unlink(*keys)) if keys else 0

    def _delete(self, entity_type: str, ids: list[uuid.UUID]) -> int:
        # one UNLINK with every key: a single command whose reply is the count that existed
        return int(self._client.unlink(*self._keys(entity_type, ids)))

    def erasure_limits(self, entity_type: str) -> list[str]:
        """Persistence files and replicas hold the value after UNLINK."""
        return [("Redis frees the key at once (UNLINK reclaims the memory in the background); an RDB snapshot or AOF "
                "written before the delete holds the value until the next BGSAVE or BGREWRITEAOF replaces it, and "
                "replicas drop it when they apply the delete"), *super().erasure_limits(entity_type)]

    def _scan(self, entity_type: str, partition: Partition) -> Iterator[ScanItem]:
        """SCAN MATCH the type's pattern page by page, then read one page's values in one call
        (the layout's :meth:`~RedisLayout.fingerprints`: MGET for JSON strings, pipelined HGETALL
        or HGET for hashes) and fingerprint the data read.

        The ID range is filtered here, before reading values, rather than narrowed in MATCH:
        SCAN walks the whole keyspace on the server whatever the pattern, so a narrower pattern
        would only save key names on the wire, and it would hide wrongly encoded keys (uppercase,
        base64url in a string store) from partitioned audits. SCAN may repeat a key when Redis
        resizes its table mid-scan; memory stays bounded, so repeats are not filtered out.
        """
        fingerprints = self.layout.fingerprints
        client = self._client
        return self._pages(entity_type, partition, lambda wanted: fingerprints(client, [raw for raw, _ in wanted]))

    def _pages(self, entity_type: str, partition: Partition,
               read: Callable[[list[tuple[Key, uuid.UUID | MalformedID]]], list[Any]]) -> Iterator[ScanItem]:
        """:meth:`_scan`'s walk, each page's keys of ours read by ``read`` (fingerprints or hashes)."""
        head, tail = self._ends(entity_type)
        pattern = self._match(entity_type)
        # Lowercase hex strings sort like the numbers they encode, so a well-formed string key of
        # another partition is skipped by two string comparisons and a regex, without building a UUID.
        whole = partition.count == 1  # the whole keyspace (an audit's one pass, uuid_forge.onepass)
        ranged = self._ids.ordered and not whole
        well_formed = self._ids.pattern.fullmatch
        parse = self._ids.parse
        lo = str(partition.lo_uuid)
        hi = str(partition.hi_uuid or "g")  # "g" sorts after every hex digit
        types_key = self._types_key
        cursor = 0
        while True:
            cursor, keys = self._client.scan(cursor, match=pattern, count=1000)
            wanted: list[tuple[Key, uuid.UUID | MalformedID]] = []
            for raw in keys:
                text = _text(raw)
                if text == types_key:
                    continue
                suffix = self._id_part(text, head, tail)
                if ranged and suffix is not None and not lo <= suffix < hi and well_formed(suffix):
                    continue
                if whole and suffix is not None and well_formed(suffix):  # the common case, without the checks below
                    wanted.append((raw, parse(suffix)))
                    continue
                ident = self._parse(text, suffix)
                if isinstance(ident, ForeignEntry):
                    # every pass meets it, as SCAN cannot be narrowed to a range: another
                    # application's key is reported by the first partition only, so it counts once
                    if partition.index == 0:
                        yield ident, None  # its value is not ours to read or judge
                elif isinstance(ident, MalformedID):
                    if ident.id is None or partition.contains(ident.id):
                        wanted.append((raw, ident))
                elif partition.contains(ident):
                    wanted.append((raw, ident))
            if wanted:
                for (_, ident), fp in zip(wanted, read(wanted)):
                    if fp is not GONE:
                        yield ident, fp
            if cursor == 0:
                return

    # -- hashes computed in the store (uuid_forge.rangehash, uuid_forge.onepass) ----------------
    def digest_algorithms(self, entity_type: str) -> tuple[str, ...]:
        """The layout's (:meth:`RedisLayout.digest_algorithms`): sha1 for the data layout read whole."""
        return self.layout.digest_algorithms()

    def scan_digests(self, entity_type: str, partition: Partition, algorithm: str) -> Iterator[ScanItem] | None:
        """The scan, each page's values hashed by one script on the server (``_DIGESTS``): only
        hashes cross the wire, never a value. None where :meth:`digest_algorithms` says no."""
        if algorithm not in self.digest_algorithms(entity_type):
            return None
        self._require(SCAN)
        self.check_entity_type(entity_type)
        return self._scan_digests(entity_type, partition)

    def _scan_digests(self, entity_type: str, partition: Partition) -> Iterator[ScanItem]:
        client, digests = self._client, self.layout.digests

        def hashes(wanted: list[tuple[Key, uuid.UUID | MalformedID]]) -> list[Any]:
            ids = [i.hex if type(i) is uuid.UUID else i.id.hex if isinstance(i, MalformedID) and i.id else ""
                   for _, i in wanted]
            return digests(client, [raw for raw, _ in wanted], ids)

        with self._errors(f"scan_digests({entity_type}, {partition})"):
            yield from self._pages(entity_type, partition, hashes)

    def sums_cells(self, entity_type: str, algorithm: str) -> bool:
        """sha1 for the data layout read whole (:meth:`digest_algorithms`), IDs in the string form
        (the script takes a key's ID as its 36 characters and a cell as the first 4)."""
        return algorithm == "sha1" and algorithm in self.digest_algorithms(entity_type) and self._ids.name == "string"

    def scan_cell_sums(self, entity_type: str, within: Partition, algorithm: str) -> CellSums | None:
        """The whole keyspace of ``entity_type`` hashed on the server by one script per SCAN page
        (``_CELLS``) and summed per ID cell (uuid_forge.cellsums) by this thread while another waits
        for the next page: no name is sent back to the server, no UUID is built. None where the
        layout does not hash (:meth:`digest_algorithms`) or the IDs are not in the string form."""
        if not self.sums_cells(entity_type, algorithm):
            return None
        self._require(SCAN)
        self.check_entity_type(entity_type)
        head, tail = self._ends(entity_type)
        pattern, sums = self._match(entity_type), CellSums()
        with self._errors(f"scan_cell_sums({entity_type})"):
            for packed, unhashed, odd in _ahead(self._cell_pages(pattern, head, tail)):
                names = [f"{head}{_text(i)}{tail}" for i in sums.add_packed(packed)]
                for text in map(_text, unhashed):
                    if self._ids.pattern.fullmatch(text):
                        sums.unhashed(uuid.UUID(text))
                    else:
                        names.append(f"{head}{text}{tail}")
                if names or odd:
                    sums.add_odd(self._odd_items(entity_type, within, [*names, *odd]))
        return sums

    def _cell_pages(self, pattern: str, head: str, tail: str) -> Iterator[tuple[bytes, list[Any], list[Any]]]:
        """The replies of ``_CELLS`` in mode "sum", page after page."""
        cursor: Any = b"0"
        while True:
            cursor, packed, unhashed, odd = _run_keys(self._client, _CELLS_SCRIPT, [],
                                                      [cursor, pattern, b"1000", head, tail, b"sum", b""])
            yield packed, unhashed, odd
            if int(cursor) == 0:
                return

    def scan_cells(self, entity_type: str, cells: Iterable[int]) -> list[uuid.UUID]:
        """The IDs of the canonical keys of ``entity_type`` in ``cells`` (uuid_forge.cellsums), listed
        by the script on the server: a second pass over the keyspace that returns only those."""
        wanted = sorted(set(cells))
        arg = "".join(f"{c:04x}" for c in wanted).encode() if len(wanted) <= 4096 else b""
        head, tail = self._ends(entity_type)
        pattern, cursor, out = self._match(entity_type), b"0", []
        with self._errors(f"scan_cells({entity_type})"):
            while True:
                cursor, ids = _run_keys(self._client, _CELLS_SCRIPT, [],
                                        [cursor, pattern, b"1000", head, tail, b"list", arg])
                out += [uuid.UUID(t) for t in map(_text, ids) if self._ids.pattern.fullmatch(t)]  # others: odd
                if int(cursor) == 0:
                    return out

    def _odd_items(self, entity_type: str, within: Partition, raws: list[Key]) -> list[ScanItem]:
        """Names a cells script did not take as canonical, as :meth:`_pages` yields them (hashed by
        ``_DIGESTS``): another application's key once (``within`` first), a name in another form."""
        head, tail = self._ends(entity_type)
        wanted: list[tuple[Key, Any]] = []
        items: list[ScanItem] = []
        for raw in raws:
            text = _text(raw)
            if text == self._types_key:
                continue
            ident = self._parse(text, self._id_part(text, head, tail))
            if isinstance(ident, ForeignEntry):
                if within.index == 0:
                    items.append((ident, None))
            elif isinstance(ident, uuid.UUID) or ident.id is None or within.contains(ident.id):
                wanted.append((raw, ident))
        if wanted:
            ids = [i.hex if type(i) is uuid.UUID else i.id.hex if i.id else "" for _, i in wanted]
            items += [(i, fp) for (_, i), fp in zip(wanted, self.layout.digests(self._client,
                                                                                [r for r, _ in wanted], ids))
                      if fp is not GONE]
        return items

    def _delete_raw(self, entity_type: str, raws: list[str]) -> int:
        """Delete keys exactly as stored (a wrongly encoded key found by a scan), of this type only."""
        stray = [k for k in raws if k not in self._ours(entity_type, [k])]
        if stray:
            raise ValidationError(f"keys {stray[:3]} are not keys of entity type {entity_type!r} written by "
                                  "uuid-forge: refused, foreign keys are never deleted")
        return int(self._client.unlink(*raws)) if raws else 0

    def shared(self, entity_type: str) -> bool:
        return not self.prefix  # a database without a prefix of ours is shared with others

    def _drop(self, entity_type: str) -> None:
        """UNLINK each SCAN page as it comes: memory stays one page, however many keys there are.

        Deleting during a SCAN is safe: Redis still returns every key that exists for the whole
        scan, and the ones deleted are exactly the ones already returned. Keys that are not ours
        (another application's, another tenant's) stay.
        """
        cursor = 0
        while True:
            cursor, keys = self._client.scan(cursor, match=self._match(entity_type), count=1000)
            keys = self._ours(entity_type, keys)
            if keys and self._drop_prover is not None and self.shared(entity_type):  # proven entries only
                super()._drop(entity_type)
                break
            if keys:
                self._client.unlink(*keys)
            if cursor == 0:
                break
        self._client.srem(self._types_key, entity_type)

    # -- claims, for idempotent consumers (uuid_forge.messaging) -------------------------------
    def claim(self, key: str, ttl: int) -> bool:
        """``SET key 1 NX EX ttl``: True for the first claim of ``key`` within ``ttl`` seconds."""
        with self._errors("claim"):
            return bool(self._client.set(f"{self.prefix}{key}", b"1", nx=True, ex=ttl))

    def release(self, key: str) -> None:
        """Give a claim back, so the next delivery of that message is processed."""
        with self._errors("release"):
            self._client.delete(f"{self.prefix}{key}")

    def _entity_types(self) -> Iterable[str]:
        """Types in the set that still have a key (deletes and TTLs empty types behind the set's
        back); with a prefix of ours, also every type whose keys are under the prefix (a SCAN of
        the prefix, each key parsed by the key pattern), recorded or not: a key there of a type
        the source does not know is a stray (docs/audits.md). Without a prefix the database is
        shared, and a name such as ``invoice:<uuid>`` proves nothing: only recorded types."""
        types = []
        itself = self._types_key.encode()  # the set is `uf:types`: not a key of a type named "uf"
        for member in self._client.smembers(self._types_key):
            name = _text(member)
            keys = self._client.scan_iter(match=self._match(name), count=1000)
            if any(k != itself for k in keys):  # stops at the first key found
                types.append(name)
        if self.prefix and "{type}" in self.key_pattern:
            types += sorted(self._types_under_prefix(set(types)))
        return types

    def _types_under_prefix(self, known: set[str]) -> set[str]:
        """The types of the keys under our prefix that have the key pattern's shape and an ID of
        ours (in any form) where the ID goes, other than ``known``."""
        shape = re.compile(re.escape(self.prefix) + "".join(
            "(?P<type>[A-Za-z0-9][A-Za-z0-9_.-]*)" if part == "{type}" else "(?P<id>.+)" if part == "{id}"
            else re.escape(part) for part in re.split(r"(\{type\}|\{id\})", self.key_pattern) if part))
        found: set[str] = set()
        for raw in self._client.scan_iter(match=_GLOB.sub(r"\\\1", self.prefix) + "*", count=1000):
            key = _text(raw)
            m = shape.fullmatch(key)
            if m is None or m.group("type") in known or m.group("type") in found or key == self._types_key:
                continue
            entity_type = m.group("type")
            try:
                self.check_entity_type(entity_type)
            except ValidationError:
                continue
            head, tail = self._ends(entity_type)
            if not isinstance(self._parse(key, self._id_part(key, head, tail)), ForeignEntry):
                found.add(entity_type)
        return found

    def _ping(self) -> None:
        self._client.ping()

    def _close(self) -> None:
        self._client.close()
