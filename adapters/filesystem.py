"""``file:///abs/root``: one record per file (or file pair) under lowercase, sharded, deterministic paths.

Paths (DESIGN.md): ``root/{entity_type}/{hex[0:2]}/{hex[2:4]}/{uuid}…``, everything lowercase, so
the same tree works on case-insensitive disks (macOS, Windows), and the two shard levels keep
directories small (65,536 leaves). The ``layout`` option says what a record's file holds:

* ``data`` (default; ``json`` is its deprecated old name): ``{uuid}.json`` holds the entity's data as a JSON document, nothing else
  (no ID: the name is the ID; no fingerprint). It is written in canonical form, so a scan hashes
  the bytes as they are (:meth:`~uuid_forge.contract.Adapter.fingerprint_text`) and parses only
  files that differ from the source: a hand-reformatted file is no difference, an edited value is.
* ``raw``: the seed's file manager. ``{uuid}.bin`` (``content_suffix``) holds raw bytes: the
  value of the data field ``content_field`` (text in the data: base64, or UTF-8 with
  ``content_encoding=utf-8``); a sidecar ``{uuid}.meta.json`` holds every other field (filename,
  content_type, size, sha256, ...) as a JSON document. A scan rebuilds the data from both files,
  so an edit of the bytes is stale on the content field and an edit of the sidecar on its field.
  A record is present when either file is; a lone file is stale on what the other one holds.
* ``envelope``: uuid-forge 1.0's ``{"fp":…,"id":…,"key":…,"data":…}`` in a ``.json`` file, kept
  for deployments that have it; the ``fp`` written in it is never trusted.

Each layout is a class (:data:`LAYOUTS`): it makes a record's files, rebuilds the record from
them, fingerprints them, and knows which file names are a record's; the adapter does paths,
shards, atomic writes and scans, and never asks which layout it has.

Writes own only their fields (issue 18, rule 3; docs/stores.md "Files: what a write owns"): with a
``projection`` or ``ignore_fields``, the JSON object of a record (``data``: the record file;
``raw``: the sidecar) is read and merged, the fields the view does not own kept, under an
exclusive ``flock`` of the shard folder, and read again just before the rename (merged again if
another writer changed it). The content file and the envelope are ours whole.

Files of other applications beside ours (``README.txt`` in a type folder, at its top or in a
shard; folders that are no shard) are :class:`~uuid_forge.record.ForeignEntry`: reported, never
deleted, not even by ``drop``. A file named like an ID in the wrong form or place is malformed.

Writes are atomic: a temporary dot-file in the same directory, written, fsynced, then
``os.replace``-d over the target, so a reader sees the old file or the new one, never half of
one. Directories are fsynced once per batch rather than after every rename: ``put_many`` returns
only after the whole batch is durable either way, and a directory shared by several files of a
batch is synced once. A crash mid-batch leaves at most some stray dot-files, which scans ignore;
the write-through journal replays the batch.

URLs: ``file:///abs/root`` or ``file://localhost/abs/root`` (RFC 8089). Relative roots are
refused: ``file://data/x`` would mean host ``data``, and guessing would write somewhere else
than meant. Options (keyword or URL query): see ``FileAdapter.options``.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import functools
import json
import os
import re
import secrets
import time
import uuid
from abc import abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

try:
    import fcntl
except ImportError:  # Windows: no flock; merged writes rely on the re-read before the rename
    fcntl = None  # type: ignore[assignment]

from uuid_forge.canonical import canonical
from uuid_forge.classify import classify
from uuid_forge.contract import BATCH_SIZE, RESERVED_TYPE_PREFIX, Adapter, Option, ScanItem
from uuid_forge.envelope import DATA, FP, ID, KEY, envelope_members, envelope_record, json_object
from uuid_forge.errors import (
    StoreConfigError,
    StoreError,
    StoreRejectedError,
    StoreUnavailableError,
    UUIDForgeError,
    ValidationError,
)
from uuid_forge.jsonmerge import load_verbatim, merged_text, verbatim_json
from uuid_forge.layout import Layout, layout_option
from uuid_forge.options import ParsedOptions
from uuid_forge.record import ForeignEntry, MalformedID, Partition, RawEntry, Record, load_json
from uuid_forge.uuidints import uuid_of_text
from uuid_forge.view import FieldView

__all__ = ["LAYOUTS", "DataLayout", "EnvelopeLayout", "FileAdapter", "FileLayout", "RawLayout"]

ENCODINGS = ("base64", "utf-8")
META = ".meta.json"  # the raw layout's sidecar: never a record of the data layout (its stem is no ID)

_STRING = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_SHARD = re.compile(r"[0-9a-fA-F]{2}")
_SUFFIX = re.compile(r"(\.[a-z0-9_-]+)*")
# what a crashed write of ours leaves: .{name}.{pid}-{tag}.tmp, the name starting with the ID
_TMP = re.compile(r"\.[0-9a-fA-F-]{36}[^/]*\.\d+-[0-9a-f]{8}\.tmp")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
#: how often a merged write is redone for a file other writers keep changing before it gives up
MERGE_ATTEMPTS = 20

def _suffix(value: Any) -> str:
    """A content file ending: '' or lowercase dotted parts, and never the sidecar's ending."""
    if not isinstance(value, str) or not _SUFFIX.fullmatch(value) or value.endswith((META, ".tmp")):
        raise ValueError(value)
    return value


def _field(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(value)
    return value


def _fsync_dir(path: str) -> None:
    """Make renames and new entries in ``path`` durable (POSIX; Windows cannot open directories)."""
    if os.name == "nt":
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


_KEY_DECODER = json.JSONDecoder()


def _envelope_data_text(text: str) -> str | None:
    """The data's text in a file of the envelope layout (its last member, canonical), else None."""
    if text[:7] == '{"fp":"' and text[39:47] == '","id":"' and text[83:91] == '","key":' and text[-2:] == "}\n":
        try:  # the key is small: decode it only to find where the data starts
            _, at = _KEY_DECODER.raw_decode(text, 91)
        except ValueError:
            return None
        if text.startswith(',"data":', at):
            return text[at + 8:-2]
    return None


def _without_newline(blob: bytes) -> bytes:
    """A JSON file's bytes as hashed: the newline we end files with is no part of the data."""
    return blob[:-1] if blob[-1:] == b"\n" else blob


def _held_object(stored: bytes | None, where: str) -> dict[str, Any] | None:
    """The JSON object a file holds, its members as written (:func:`~uuid_forge.jsonmerge.load_verbatim`);
    None for no file, or one that is no JSON object (rewritten as a record of ours)."""
    if stored is None:
        return None
    try:
        held = load_verbatim(_without_newline(stored))
    except ValueError:  # no JSON (or no UTF-8): unreadable, rewritten as a record of ours
        return None
    except RecursionError:
        raise StoreRejectedError(f"{where} holds JSON nested too deep to merge with: left as it is") from None
    return held if isinstance(held, dict) else None


def _merged_json(view: FieldView, data: Mapping[str, Any], stored: bytes | None, where: str) -> bytes:
    """A JSON file's bytes after a write: the stored object's fields that ``view`` does not own, as
    they were (verbatim), then ours (owned fields absent from ``data`` removed). A file that is no
    JSON object is rewritten; one whose other fields cannot be written back is refused."""
    held = _held_object(stored, where)
    try:
        if held is None:
            return (canonical(view.merged(None, data), where) + "\n").encode("utf-8")
        ours = ((canonical(k), canonical(v, where)) for k, v in data.items() if view.owns(k))
        return (merged_text({k: v for k, v in held.items() if not view.owns(k)}, ours) + "\n").encode("utf-8")
    except (UUIDForgeError, ValueError, TypeError, RecursionError):
        raise StoreRejectedError(f"{where} holds fields of another application that cannot be written back "
                                 "unchanged: left as it is") from None


#: what a scan hands a layout for each file of a leaf folder: (path as reported, what its name
#: stands for, which of a record's files it is, the file name)
Entry = tuple[str, "uuid.UUID | MalformedID | ForeignEntry", str, str]


class FileLayout(Layout):
    """What a record's files hold: the files a write makes, how a read and a scan rebuild the
    record from them, and which file names are a record's. The adapter does paths, shards,
    atomic writes and folder walks, and calls its layout for everything else."""

    #: (name ending, part) of the files of one record, any ending that ends another one first
    endings: tuple[tuple[str, str], ...] = ((".json", "doc"),)

    def __init__(self, store: Adapter, opts: ParsedOptions) -> None:
        self.store = store  # fingerprints go through the store's view


    @abstractmethod
    def encode(self, record: Record) -> list[tuple[str, bytes]]:
        """(file name, bytes) of each file that holds ``record``."""

    def file_names(self, s: str) -> tuple[str, ...]:
        """The names of the files of the record with ID text ``s``, the main one first."""
        return (s + self.endings[0][0],)

    def split(self, name: str) -> tuple[str, str, str] | None:
        """(stem, ending as written, part) when ``name`` ends in one of this layout's endings (any case)."""
        low = name.lower()
        for ending, part in self.endings:
            cut = len(name) - len(ending)
            if cut > 0 and low.endswith(ending):
                return name[:cut], name[cut:], part
        return None

    def check_entity_type(self, entity_type: str) -> None:
        """Refuse an entity type this layout cannot hold (ValidationError); every one by default."""

    def validate(self, records: list[Record]) -> None:
        """Refuse a batch this layout cannot write before anything is written (none by default)."""

    def shared_file(self, s: str) -> str | None:
        """The name of the record's file that may hold fields another application added beside ours
        (a JSON object): a write reads it and keeps them (:meth:`merge`). None: every file is ours."""
        return None

    def merge(self, record: Record, stored: bytes | None) -> bytes:
        """The bytes of :meth:`shared_file` for ``record`` over what it holds (``stored``, None: no file)."""
        raise NotImplementedError

    def merges(self, view: FieldView) -> bool:
        """Whether a write must read :meth:`shared_file` first: only when ``view`` leaves fields to
        another application (a projection, ignored fields); else every data field is ours."""
        return view.projection is not None or bool(view.ignore_fields)

    @abstractmethod
    def read(self, folder: str, s: str) -> Any:
        """What the files of the record ``s`` in ``folder`` hold (for :meth:`decode`); None: no file."""

    @abstractmethod
    def scan_leaf(self, folder: str, entries: Iterable[Entry]) -> Iterator[ScanItem]:
        """The scan items of one leaf folder's files, given in name order."""


class _OneFileLayout(FileLayout):
    """A record is one ``{id}.json`` file, hashed as it is read."""

    def read(self, folder: str, s: str) -> bytes | None:
        return _read_or_none(os.path.join(folder, s + ".json"))

    def scan_leaf(self, folder: str, entries: Iterable[Entry]) -> Iterator[ScanItem]:
        for raw, ident, _, name in entries:
            if isinstance(ident, ForeignEntry):
                yield ident, None
                continue
            try:  # files are read one at a time: memory stays bounded
                blob = _read_bytes(os.path.join(folder, name))
            except FileNotFoundError:
                continue  # removed since the folder was listed
            yield self.scan_item(raw, ident, blob)

    @abstractmethod
    def scan_item(self, raw: str, ident: uuid.UUID | MalformedID, blob: bytes) -> ScanItem:
        """(ID, fingerprint) of one file's bytes."""


class DataLayout(_OneFileLayout):
    """``{id}.json`` holds the entity's data, nothing else, in canonical form."""

    name: ClassVar[str] = "data"
    doc: ClassVar[str] = ("the entity's data as a JSON document in `{id}.json` "
                          "(`{\"name\":\"Ann\",\"email\":\"ann@example.com\"}`)")

    def encode(self, record: Record) -> list[tuple[str, bytes]]:
        return [(f"{record.id}.json", (record.data_json + "\n").encode("utf-8"))]

    def decode(self, entity_type: str, ident: uuid.UUID, stored: bytes) -> Record:
        text = _without_newline(stored)
        data = load_json(text)
        if not isinstance(data, dict):
            raise TypeError("the file does not hold a JSON object")
        return Record(entity_type, ident, data, None, fingerprint=self.store.fingerprint_text(text))

    def fingerprint(self, stored: bytes) -> str | None:
        """The bytes as they are (we write canonical text): only a file that differs is parsed."""
        return self.store.fingerprint_text(_without_newline(stored))

    def owned_fields(self, record: Record) -> frozenset[str]:
        """The record's fields this store's view owns (FieldView.owns); a write keeps every other."""
        view = self.store.view
        return frozenset(name for name in record.data if view.owns(name))

    def shared_file(self, s: str) -> str:
        return s + ".json"

    def merge(self, record: Record, stored: bytes | None) -> bytes:
        return _merged_json(self.store.view, record.data, stored, f"file {record.id}.json")

    def scan_item(self, raw: str, ident: uuid.UUID | MalformedID, blob: bytes) -> ScanItem:
        return ident, self.fingerprint(blob)


class EnvelopeLayout(_OneFileLayout):
    """uuid-forge 1.0's ``{"fp","id","key","data"}`` in ``{id}.json``; its ``fp`` is never trusted."""

    name: ClassVar[str] = "envelope"
    doc: ClassVar[str] = "uuid-forge 1.0's `{\"fp\",\"id\",\"key\",\"data\"}` document"

    def encode(self, record: Record) -> list[tuple[str, bytes]]:
        return [(f"{record.id}.json", self._body(record, ()))]

    @staticmethod
    def _body(record: Record, theirs: Iterable[tuple[str, str]]) -> bytes:
        """The file's bytes: ``fp``, ``id``, ``key`` first (the fast path of a scan finds the data
        by offset), then ``theirs`` (another application's members, as JSON text), ``data`` last."""
        members = envelope_members(record)
        body = json_object(((FP, members[FP]), (ID, f'"{record.id}"'), (KEY, members[KEY]), *theirs,
                            (DATA, members[DATA])))
        return (body + "\n").encode("utf-8")

    def decode(self, entity_type: str, ident: uuid.UUID, stored: bytes) -> Record:
        doc = load_json(stored)
        return envelope_record(entity_type, ident, doc, self._fp_and_id(stored, doc)[0])

    def fingerprint(self, stored: bytes) -> str | None:
        return self._fp_and_id(stored)[0]

    def owned_fields(self, record: Record) -> frozenset[str]:
        return frozenset((FP, ID, KEY, DATA))

    def merges(self, view: FieldView) -> bool:
        return True  # members another application added beside the envelope's are kept, whatever the view

    def shared_file(self, s: str) -> str:
        return s + ".json"

    def merge(self, record: Record, stored: bytes | None) -> bytes:
        """The envelope over what the file holds: its four members ours, any other member kept as
        written, placed before ``data`` (so a file with none keeps the scan's fast path)."""
        held = _held_object(stored, f"file {record.id}.json")
        theirs = [(json.dumps(k, ensure_ascii=False)[1:-1], verbatim_json(v)) for k, v in (held or {}).items()
                  if k not in (FP, ID, KEY, DATA)]  # json_object quotes the (escaped) name
        return self._body(record, theirs)

    def scan_item(self, raw: str, ident: uuid.UUID | MalformedID, blob: bytes) -> ScanItem:
        fp, content_id = self._fp_and_id(blob)
        if type(ident) is uuid.UUID and content_id is not None and content_id != str(ident):
            return MalformedID(raw=raw, reason=f"the file holds id {content_id!r}, not its name", id=ident), fp
        return ident, fp

    def _fp_and_id(self, blob: bytes, doc: Any = None) -> tuple[str | None, str | None]:
        """(fingerprint of the data, id text) of an envelope file; the ``fp`` member is never used.
        A file as we write it is hashed without parsing its data."""
        if blob[:7] == b'{"fp":"':
            try:
                text = blob.decode("utf-8")
            except UnicodeDecodeError:
                return None, None
            data_text = _envelope_data_text(text)
            if data_text is not None:
                return self.store.fingerprint_text(data_text), text[47:83]
        if doc is None:
            try:
                doc = load_json(blob)
            except ValueError:
                return None, None
        if not isinstance(doc, dict):
            return None, None
        ident = doc.get(ID)
        return self.store.fingerprint_data(doc.get(DATA)), (ident if isinstance(ident, str) else None)


#: a raw-layout record as read: (the content file's bytes, the sidecar's bytes), None where absent
RawFiles = tuple["bytes | None", "bytes | None"]


class RawLayout(FileLayout):
    """The seed's file manager: the content field's bytes in ``{id}{content_suffix}``, every other
    field in a sidecar ``{id}.meta.json``. A record is present when either file is."""

    name: ClassVar[str] = "raw"
    doc: ClassVar[str] = ("the file's bytes in `{id}.bin` plus a sidecar `{id}.meta.json` with the other "
                          "fields (the seed's file manager, see `content_field`)")

    def __init__(self, store: Adapter, opts: ParsedOptions) -> None:
        super().__init__(store, opts)
        self.content_field: str = opts["content_field"]
        self.content_encoding: str = opts["content_encoding"]
        self.content_suffix: str = opts["content_suffix"]
        # the sidecar's ending first: a content suffix such as .json ends it too
        self.endings = ((META, "meta"), (self.content_suffix, "content"))

    def file_names(self, s: str) -> tuple[str, ...]:
        return s + self.content_suffix, s + META

    def check_entity_type(self, entity_type: str) -> None:
        if entity_type.startswith(RESERVED_TYPE_PREFIX):
            raise ValidationError(f"entity type {entity_type!r} is not accepted by file with layout=raw: uuid-forge's "
                                  "own records have no content field (use layout=data for a source of truth)")

    def validate(self, records: list[Record]) -> None:
        """Every record's content field must be text in the declared encoding."""
        for record in records:
            self._content_bytes(record)

    def encode(self, record: Record) -> list[tuple[str, bytes]]:
        s = str(record.id)
        meta = {k: v for k, v in record.data.items() if k != self.content_field}
        return [(s + self.content_suffix, self._content_bytes(record)),
                (s + META, (canonical(meta, f"data of {record.entity_type} {s}") + "\n").encode("utf-8"))]

    def read(self, folder: str, s: str) -> RawFiles | None:
        content = _read_or_none(os.path.join(folder, s + self.content_suffix))
        meta = _read_or_none(os.path.join(folder, s + META))
        return None if content is None and meta is None else (content, meta)

    def decode(self, entity_type: str, ident: uuid.UUID, stored: RawFiles) -> Record:
        data = self._data(stored)
        return Record(entity_type, ident, data, None, fingerprint=self.store.fingerprint_data(data))

    def fingerprint(self, stored: RawFiles) -> str | None:
        """Rebuilt from both files, so an edit of the bytes is stale on the content field and an edit
        of the sidecar on its field; None when they cannot be read as a record."""
        try:
            return self.store.fingerprint_data(self._data(stored))
        except (ValueError, TypeError):  # a sidecar that is no JSON object, content that is not UTF-8: stale
            return None

    def owned_fields(self, record: Record) -> frozenset[str]:
        """The record's fields this store's view owns (FieldView.owns): the content field (its file
        is all ours) and the sidecar's owned fields; a write keeps the sidecar's other fields."""
        view = self.store.view
        return frozenset(name for name in record.data if view.owns(name))

    def shared_file(self, s: str) -> str:
        return s + META

    def merge(self, record: Record, stored: bytes | None) -> bytes:
        meta = {k: v for k, v in record.data.items() if k != self.content_field}
        return _merged_json(self.store.view, meta, stored, f"sidecar {record.id}{META}")

    def scan_leaf(self, folder: str, entries: Iterable[Entry]) -> Iterator[ScanItem]:
        pairs: dict[uuid.UUID, dict[str, str]] = {}  # an ID's content and sidecar names
        for _, ident, part, name in entries:
            if isinstance(ident, (ForeignEntry, MalformedID)):
                yield ident, None
            else:
                pairs.setdefault(ident, {})[part] = name
        for ident, parts in pairs.items():  # names were sorted, so IDs come in order
            files = {part: _read_or_none(os.path.join(folder, name)) for part, name in parts.items()}
            yield ident, self.fingerprint((files.get("content"), files.get("meta")))

    def _data(self, stored: RawFiles) -> dict[str, Any]:
        """A record's data: the sidecar's fields plus the content field from the bytes."""
        content, meta = stored
        data = load_json(meta) if meta is not None else {}
        if not isinstance(data, dict):
            raise TypeError("the metadata sidecar does not hold a JSON object")
        if content is not None:
            data[self.content_field] = self._content_text(content)
        return data

    def _content_bytes(self, record: Record) -> bytes:
        """The bytes a record's content field stands for; ValidationError naming the field otherwise."""
        field = self.content_field
        value = record.data.get(field)
        where = f"{record.entity_type} {record.id}: data field {field!r} (the raw layout's content_field)"
        if not isinstance(value, str):
            got = "is missing" if field not in record.data else f"is {type(value).__name__}, not text"
            raise ValidationError(f"{where} {got}: the raw layout writes it as the file's bytes")
        if self.content_encoding == "utf-8":
            try:
                return value.encode("utf-8")
            except UnicodeEncodeError:
                raise ValidationError(f"{where} cannot be written as UTF-8 (a lone surrogate)") from None
        try:
            raw = base64.b64decode(value, validate=True)
        except (binascii.Error, ValueError):
            raw = None
        if raw is None or base64.b64encode(raw).decode("ascii") != value:
            raise ValidationError(f"{where} is not padded standard base64 (content_encoding=base64); write "
                                  "base64.b64encode(data).decode() or use content_encoding=utf-8 for text")
        return raw

    def _content_text(self, content: bytes) -> str:
        """The content field's value for the bytes of a content file (UnicodeDecodeError: not UTF-8)."""
        if self.content_encoding == "utf-8":
            return content.decode("utf-8")
        return base64.b64encode(content).decode("ascii")


#: the ``layout`` option's values and the class each one selects
LAYOUTS: dict[str, type[FileLayout]] = {"data": DataLayout, "raw": RawLayout, "envelope": EnvelopeLayout}


class FileAdapter(Adapter):
    """Records as files; the ID is the file name (lowercase 36-char string). See the module doc."""

    name: ClassVar[str] = "file"

    def _classify(self, err: BaseException) -> type[StoreError] | None:
        """A read-only or forbidden directory is the store's; a name or file too long the record's."""
        import errno

        if isinstance(err, OSError):
            if err.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
                return StoreConfigError
            if err.errno in (errno.ENAMETOOLONG, errno.EFBIG):
                return StoreRejectedError
        return super()._classify(err)

    options: ClassVar[tuple[Option, ...]] = (
        layout_option(LAYOUTS, "data", "what a record's file holds.", deprecated_values=(("json", "data"),)),
        Option("content_field", str, "content",
               "raw layout: the data field whose value is the file's bytes, e.g. `body` for "
               "`{\"filename\":\"a.pdf\",\"body\":\"JVBERi0=\"}`; every other field goes to the sidecar",
               convert=_field, expects="a field name"),
        Option("content_encoding", str, "base64",
               "raw layout: how the content field holds the bytes as text. `base64` (standard alphabet, "
               "padded: any bytes round-trip) or `utf-8` (the text itself: text files only)",
               choices=ENCODINGS),
        Option("content_suffix", str, ".bin",
               "raw layout: the content file's name ending, e.g. `.bin` (`{id}.bin`), `.dat`, or '' for a "
               "bare `{id}`; lowercase, and never `.meta.json` (the sidecar's)",
               convert=_suffix, expects="'' or a lowercase ending such as .bin"),
        Option("fsync", bool, True, "fsync each file and its directory before a batch returns; false trades "
               "durability on power loss for speed (caches, tests)"),
        BATCH_SIZE,
    )

    def __init__(self, url: str, **options: Any) -> None:
        parts = urlsplit(url)
        opts = self.parse_options(url, options)
        super().__init__(url, batch_size=opts["batch_size"])
        if parts.netloc not in ("", "localhost"):
            raise ValidationError(f"file URL {url!r} names host {parts.netloc!r}: use file:///absolute/path "
                                  "(three slashes); relative roots are not accepted")
        path = unquote(parts.path)
        if not path or not os.path.isabs(path):
            raise ValidationError(f"file URL {url!r} needs an absolute root, e.g. file:///var/lib/uuid-forge")
        self.root: str = os.path.normpath(path)
        self.fsync: bool = opts["fsync"]
        self.layout: FileLayout = LAYOUTS[opts["layout"]](self, opts)
        self._checked: set[str] = set()  # entity types whose directory was seen to stay under root
        # Shard directories known to exist: one flag per 16-bit ID prefix (= one shard folder) and
        # entity type. A bytearray of 65,536 is 64 KiB flat; a set of path strings grew to ~8 MiB.
        self._made: dict[str, bytearray] = {}

    @property
    def id_encoding(self) -> str:
        return "string"


    def check_entity_type(self, entity_type: str) -> str:
        """Base rule, plus lowercase only (case-insensitive disks would merge ``User`` and ``user``),
        no Windows device names or trailing dot, and the directory must resolve inside the root."""
        if entity_type in self._checked:
            return entity_type
        super().check_entity_type(entity_type)
        if entity_type != entity_type.lower():
            raise ValidationError(f"entity type {entity_type!r} is not accepted by file: use lowercase only, "
                                  "case-insensitive disks would merge it with its lowercase twin")
        self.layout.check_entity_type(entity_type)
        if entity_type.split(".")[0] in _WINDOWS_RESERVED or entity_type.endswith("."):
            raise ValidationError(f"entity type {entity_type!r} is not accepted by file: Windows reserves "
                                  "device names (con, nul, com1, ...) and drops trailing dots")
        real_root = os.path.realpath(self.root)
        target = os.path.realpath(os.path.join(self.root, entity_type))
        if os.path.dirname(target) != real_root:
            raise ValidationError(f"entity type {entity_type!r} is not accepted by file: "
                                  f"its directory resolves to {target!r}, outside the root {real_root!r}")
        self._checked.add(entity_type)
        return entity_type

    def folder_of(self, entity_type: str, s: str) -> str:
        """The shard folder of the record with ID text ``s``."""
        return os.path.join(self.root, entity_type, s[0:2], s[2:4])

    def path_of(self, entity_type: str, ident: uuid.UUID) -> str:
        """The file that holds one record (in the raw layout: its content; the sidecar is :meth:`meta_path_of`)."""
        s = str(ident)
        return os.path.join(self.folder_of(entity_type, s), self.layout.file_names(s)[0])

    def meta_path_of(self, entity_type: str, ident: uuid.UUID) -> str:
        """The raw layout's metadata sidecar of one record."""
        s = str(ident)
        return os.path.join(self.folder_of(entity_type, s), s + META)

    def validate_records(self, entity_type: str, records: list[Record]) -> None:
        """What the layout refuses (raw: a content field that is no text in the declared encoding)."""
        self.layout.validate(records)

    # -- writes ----------------------------------------------------------------------------------
    def _put(self, entity_type: str, records: list[Record]) -> None:
        base = os.path.join(self.root, entity_type)
        sep = os.sep
        tag = f"{os.getpid()}-{secrets.token_hex(4)}"
        touched: set[str] = set()
        made = self._made.get(entity_type)
        if made is None:
            made = self._made[entity_type] = bytearray(65536)
        layout = self.layout
        view = self.view
        merging = layout.merges(view)  # else every field is ours: no read
        for r in records:
            s = str(r.id)
            folder = f"{base}{sep}{s[0:2]}{sep}{s[2:4]}"
            shard = r.id.int >> 112
            if not made[shard]:
                self._mkdirs(folder, touched)
                made[shard] = 1
            shared = merging and layout.shared_file(s)
            for name, payload in layout.encode(r):
                if name == shared:
                    self._write_merged(folder, name, r, tag, touched)
                else:
                    self._write_atomic(folder, name, payload, tag, touched)
            touched.add(folder)
        if self.fsync:
            for folder in touched:
                _fsync_dir(folder)

    def _write_merged(self, folder: str, name: str, record: Record, tag: str, touched: set[str]) -> None:
        """Write ``folder/name`` over what it holds, keeping the fields another application added
        (the layout's :meth:`~FileLayout.merge`). Under an exclusive ``flock`` of the folder, so
        uuid-forge writers in other processes (and applications that take the same lock) wait;
        and the file is read again just before the rename: one changed meanwhile by a writer that
        takes no lock is merged again rather than overwritten."""
        path = f"{folder}{os.sep}{name}"
        with self._folder_lock(folder, touched):
            for _ in range(MERGE_ATTEMPTS):
                before = _read_or_none(path)
                payload = self.layout.merge(record, before)
                if self._write_atomic(folder, name, payload, tag, touched,
                                      unchanged=functools.partial(_holds, path, before)):
                    return
        raise StoreUnavailableError(f"{self.url()}: {path} changed under each of {MERGE_ATTEMPTS} merges: "
                                    "another writer keeps writing it; not written, try again", store=self.url())

    @contextlib.contextmanager
    def _folder_lock(self, folder: str, touched: set[str]) -> Iterator[None]:
        """An exclusive ``flock`` of a shard folder for a read-merge-write (none where the OS has no flock)."""
        if fcntl is None:
            yield
            return
        try:
            fd = os.open(folder, os.O_RDONLY)
        except FileNotFoundError:  # shard directory removed behind our back: make it again
            self._mkdirs(folder, touched)
            fd = os.open(folder, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    def _put_new(self, entity_type: str, records: list[Record]) -> None:
        """Each file written whole under a dot-name, then hard-linked to its name: ``link`` fails on
        an existing file, so a record someone wrote first stays (O_EXCL with the content complete)."""
        tag = f"{os.getpid()}-{secrets.token_hex(4)}"
        touched: set[str] = set()
        for r in records:
            s = str(r.id)
            folder = self.folder_of(entity_type, s)
            self._mkdirs(folder, touched)
            touched.add(folder)
            for name, payload in self.layout.encode(r):
                staged = f".{name}.{tag}.new"
                self._write_atomic(folder, staged, payload, tag, touched)
                try:
                    os.link(os.path.join(folder, staged), os.path.join(folder, name))
                except FileExistsError:
                    break  # written first by another writer: its record stays whole
                finally:
                    _unlink_quietly(os.path.join(folder, staged))
        if self.fsync:
            for folder in touched:
                _fsync_dir(folder)

    def _write_atomic(self, folder: str, name: str, payload: bytes, tag: str, touched: set[str],
                      unchanged: Callable[[], bool] | None = None) -> bool:
        """Write ``folder/name`` through a temporary dot-file: readers see the old file or the new one.
        ``unchanged``, asked just before the rename, may call the write off (False is returned)."""
        tmp = f"{folder}{os.sep}.{name}.{tag}.tmp"
        target = f"{folder}{os.sep}{name}"
        try:
            fd = os.open(tmp, _CREATE, 0o644)
        except FileNotFoundError:  # shard directory removed behind our back: make it again
            self._mkdirs(folder, touched)
            fd = os.open(tmp, _CREATE, 0o644)
        try:
            try:
                view = memoryview(payload)
                while view:
                    view = view[os.write(fd, view):]
                if self.fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            if unchanged is not None and not unchanged():
                _unlink_quietly(tmp)
                return False
            os.replace(tmp, target)
            return True
        except BaseException as err:
            _unlink_quietly(tmp)
            if isinstance(err, OSError) and err.filename is None:  # os.write/fsync: name the file (disk full)
                raise OSError(err.errno, err.strerror, target) from None
            raise

    def _mkdirs(self, folder: str, touched: set[str]) -> None:
        """Create a shard directory (one mkdir when its parent exists); new entries are fsynced with the batch."""
        parent = os.path.dirname(folder)
        try:
            os.mkdir(folder)
        except FileExistsError:
            pass
        except FileNotFoundError:
            os.makedirs(parent, exist_ok=True)
            with contextlib.suppress(FileExistsError):
                os.mkdir(folder)
            touched.update((parent, os.path.dirname(parent), self.root))
        else:
            touched.add(parent)

    # -- reads -----------------------------------------------------------------------------------
    def _get(self, entity_type: str, ids: list[uuid.UUID]) -> Iterable[Record]:
        found = []
        for ident in ids:
            s = str(ident)
            folder = self.folder_of(entity_type, s)
            stored = self.layout.read(folder, s)
            if stored is not None:
                make = functools.partial(self.layout.decode, entity_type, ident, stored)
                found.append(self._read_record(entity_type, ident, make,
                                               os.path.join(folder, self.layout.file_names(s)[0])))
        return found

    def _read_raw(self, entity_type: str, raws: list[str]) -> Iterable[RawEntry]:
        """Files by the path a scan reported, relative to the root (``users/42.json`` beside the
        shard folders, ``users/ab/cd/NAME`` inside them), decoded as :meth:`_get` does: the
        layout reads the record's files named by the stem in that folder. A path outside the
        type's folder is refused; a file without the layout's ending, or whose companion files
        are missing, is present but unreadable. An ending in another case (``42.JSON``) is read
        only where the disk ignores case.

        A named file that a delete moved aside and never finished with (the process killed between
        the rename and the unlink, :meth:`_delete_raw_if_unchanged`) is put back under its name
        first, so the entry is read, proven and deleted again rather than left hidden."""
        base = os.path.realpath(os.path.join(self.root, entity_type))
        layout = self.layout
        found: list[RawEntry] = []
        aside: dict[str, list[str]] = {}  # per folder, the copies moved aside in it (listed once per call)
        for raw in raws:
            path = os.path.realpath(os.path.join(self.root, raw))
            if not raw.startswith(entity_type + "/") or os.path.commonpath([base, path]) != base:
                raise ValidationError(f"{raw!r} is not a file of entity type {entity_type!r} under {self.root}")
            folder, name = os.path.split(path)
            if not os.path.isfile(path):
                if folder not in aside:
                    aside[folder] = _moved_aside(folder)
                if not _take_back(folder, name, aside[folder]):
                    continue
            split = layout.split(name)
            if split is None:
                endings = " or ".join(e for e, _ in layout.endings)
                found.append(RawEntry(raw, None, f"file {raw} does not end in {endings}: not a file of the "
                                                 f"{layout.name} layout"))
                continue
            stored = layout.read(folder, split[0])
            if stored is None:
                found.append(RawEntry(raw, None, f"file {raw}: the {layout.name} layout's files of "
                                                 f"{split[0]!r} are not all there"))
                continue
            found.append(self._raw_entry(entity_type, raw, layout.decode, stored, f"file {raw}"))
        return found

    def _raw_path(self, entity_type: str, raw: str) -> str:
        """The file a raw name means, refused outside the type's folder."""
        base = os.path.realpath(os.path.join(self.root, entity_type))
        path = os.path.realpath(os.path.join(self.root, raw))
        if not raw.startswith(entity_type + "/") or os.path.commonpath([base, path]) != base:
            raise ValidationError(f"{raw!r} is not a file of entity type {entity_type!r} under {self.root}")
        return path

    def _delete_raw_if_unchanged(self, entity_type: str, wanted: dict[str, str]) -> int:
        """Delete each named file only while it holds the proven data, by moving it out of the way
        first: its bytes are read, its data decoded and compared with the proof, then it is renamed
        to a private dot-name in the same folder (no writer or reader uses that name) and read
        again. The same bytes: unlinked. Other bytes (a writer replaced it between the read and the
        rename): put back under its name, unless a newer file is there already. A write that lands
        after the rename creates a new file under the name, which stays. POSIX has no
        compare-and-unlink; what this leaves open is a writer rewriting the file in place through
        a handle it opened before the rename (writes by rename, uuid-forge's own, are covered).
        A kill between the rename and the unlink leaves the file under ``.NAME.uf-delete-PID-*``
        beside it, hidden from scans; the next :meth:`_read_raw` of that name (the contract run
        again) puts it back (docs/migration.md). The named file only: a sidecar stays."""
        count = 0
        touched: set[str] = set()
        for raw, fingerprint in wanted.items():
            path = self._raw_path(entity_type, raw)
            before = _read_or_none(path) if os.path.isfile(path) else None
            if before is None:
                continue
            entry = next(iter(self._read_raw(entity_type, [raw])), None)
            if not self._still_proven(entry, fingerprint):
                continue
            folder, name = os.path.split(path)
            held = os.path.join(folder, f"{_aside_prefix(name)}{os.getpid()}-{uuid.uuid4().hex[:8]}")
            try:
                os.rename(path, held)
            except FileNotFoundError:
                continue  # removed in between: nothing of the proof's to delete
            if _read_or_none(held) == before:
                os.unlink(held)
                count += 1
                touched.add(folder)
            else:
                _put_back(held, path)
        if self.fsync:
            for folder in touched:
                _fsync_dir(folder)
        return count

    def _delete_raw_names(self, entity_type: str, raws: list[str]) -> int:
        """Unlink files by the path a scan reported, inside the type's folder only. The named file
        only: a layout's companion file (``raw``'s sidecar) stays. (delete_raw_proven goes through
        :meth:`_delete_raw_if_unchanged`, which moves each file aside before comparing it.)"""
        paths = [self._raw_path(entity_type, raw) for raw in raws]
        count = sum(1 for path in paths if _unlink_existing(path))
        if count and self.fsync:
            for folder in {os.path.dirname(p) for p in paths}:
                _fsync_dir(folder)
        return count

    def _delete(self, entity_type: str, ids: list[uuid.UUID]) -> int:
        count = 0
        touched: set[str] = set()
        for ident in ids:
            s = str(ident)
            folder = self.folder_of(entity_type, s)
            gone = [name for name in self.layout.file_names(s) if _unlink_existing(os.path.join(folder, name))]
            if gone:
                count += 1
                touched.add(folder)
        if self.fsync:
            for folder in touched:
                _fsync_dir(folder)
        return count

    # -- scans -----------------------------------------------------------------------------------
    def erasure_limits(self, entity_type: str) -> list[str]:
        """An unlinked file's blocks are freed, not overwritten."""
        return [("the file (and its sidecar) is unlinked, not overwritten: its blocks stay on the disk until reused "
                "(an encrypted disk, or shredding the file first, if that matters); filesystem snapshots (ZFS, btrfs, "
                "LVM) and synced copies keep it"), *super().erasure_limits(entity_type)]

    def _scan(self, entity_type: str, partition: Partition) -> Iterator[ScanItem]:
        """Walk only the shard directories inside the partition's ID range, in ID order.

        The two shard levels are the ID's first 16 bits, so a partition maps to a range of
        directories; files are read one at a time, so memory stays bounded. Entries outside the
        leaves (a README at the type's top) are foreign, reported in the partition of their folder's
        first ID only.
        """
        top = os.path.join(self.root, entity_type)
        lo, hi = partition.lo >> 112, (partition.hi - 1) >> 112
        firsts, others = _listing(top)
        if partition.contains(uuid.UUID(int=0)):
            yield from ((_foreign_dir(f"{entity_type}/{n}", d), None) for n, d in others)
        for first in firsts:
            b1 = int(first, 16)
            if not lo >> 8 <= b1 <= hi >> 8:
                continue
            seconds, others = _listing(os.path.join(top, first))
            if partition.contains(uuid.UUID(int=b1 << 120)):
                yield from ((_foreign_dir(f"{entity_type}/{first}/{n}", d), None) for n, d in others)
            for second in seconds:
                prefix = b1 << 8 | int(second, 16)
                if lo <= prefix <= hi:
                    report_foreign = partition.contains(uuid.UUID(int=prefix << 112))
                    yield from self._scan_leaf(entity_type, first, second, report_foreign)

    def _scan_leaf(self, entity_type: str, first: str, second: str, report_foreign: bool) -> Iterator[ScanItem]:
        """The layout's scan items of one leaf folder: its files read and fingerprinted by the layout."""
        folder = os.path.join(self.root, entity_type, first, second)
        try:
            with os.scandir(folder) as entries:
                names = sorted(e.name for e in entries if not e.name.startswith(".") and e.is_file())
        except (FileNotFoundError, NotADirectoryError):
            return

        def parsed() -> Iterator[Entry]:
            for name in names:
                raw = f"{entity_type}/{first}/{second}/{name}"
                ident, part = self._parse(raw, name, first, second)
                if report_foreign or not isinstance(ident, ForeignEntry):
                    yield raw, ident, part, name

        yield from self.layout.scan_leaf(folder, parsed())

    def _parse(self, raw: str, name: str, first: str, second: str) -> tuple[uuid.UUID | MalformedID | ForeignEntry, str]:
        """(what a file name stands for, which of a record's files it is): the UUID; a MalformedID
        for an ID of ours in the wrong form or place; a ForeignEntry for any other file
        (``README.txt``, ``notes.json``): never ours."""
        split = self.layout.split(name)
        if split is None:
            endings = " or ".join(e for e, _ in self.layout.endings)
            return ForeignEntry(raw, f"file name does not end in {endings}: not ours, left alone"), ""
        stem, ending, part = split
        if _STRING.fullmatch(stem) and ending == ending.lower() and stem[0:2] == first and stem[2:4] == second:
            return uuid_of_text(stem), part
        found = classify(stem, "string", raw=raw, versions=self.id_versions, where="file name")
        if isinstance(found, ForeignEntry):
            return found, part
        ident = found.id if isinstance(found, MalformedID) else found
        assert ident is not None
        if isinstance(found, MalformedID):
            reason = ("file name is not lowercase (unsafe on case-insensitive disks)"
                      if found.reason.startswith("file name holds the ID in upper-case string") else found.reason)
        elif ending != ending.lower():
            reason = f"file name ends in an upper-case {ending}"
        elif first != first.lower() or second != second.lower():
            reason = "shard directory name is not lowercase"
        else:
            reason = f"file is in shard {first}/{second} but its ID belongs in {stem[0:2]}/{stem[2:4]}"
        return MalformedID(raw=raw, reason=reason, id=ident), part

    # -- removal ---------------------------------------------------------------------------------
    def _delete_raw(self, entity_type: str, raws: list[str]) -> int:
        """Delete files by the path a scan reported (``type/ab/cd/NAME``), inside this type only."""
        base = os.path.realpath(os.path.join(self.root, entity_type))
        count = 0
        for raw in raws:
            path = os.path.realpath(os.path.join(self.root, raw))
            if not raw.startswith(entity_type + "/") or os.path.commonpath([base, path]) != base:
                raise ValidationError(f"{raw!r} is not a file of entity type {entity_type!r} under {self.root}")
            parts = raw.split("/")
            if len(parts) != 4 or isinstance(self._parse(raw, parts[3], parts[1], parts[2])[0], ForeignEntry):
                raise ValidationError(f"{raw!r} is not a record file written by uuid-forge: refused, "
                                      "foreign files are never deleted")
            count += _unlink_existing(path)
        return count

    def _drop(self, entity_type: str) -> None:
        """Remove this type's files of ours (and our crash leftovers), then the folders left empty:
        other applications' files stay, with the folders that hold them."""
        self._made.pop(entity_type, None)
        if self._drop_prover is not None:  # a directory shared with others: proven files only (contract)
            super()._drop(entity_type)
        top = os.path.join(self.root, entity_type)
        for first in _listing(top)[0]:
            for second in _listing(os.path.join(top, first))[0]:
                self._drop_leaf(entity_type, first, second)
                _rmdir_quietly(os.path.join(top, first, second))
            _rmdir_quietly(os.path.join(top, first))
        _rmdir_quietly(top)

    def _drop_leaf(self, entity_type: str, first: str, second: str) -> None:
        folder = os.path.join(self.root, entity_type, first, second)
        if self._drop_prover is not None:
            return  # the proven files went already; what is left is not proven ours
        try:
            names = os.listdir(folder)
        except (FileNotFoundError, NotADirectoryError):
            return
        for name in names:
            if name.startswith("."):
                ours = _TMP.fullmatch(name) is not None
            else:
                ours = not isinstance(self._parse("", name, first, second)[0], ForeignEntry)
            if ours and os.path.isfile(os.path.join(folder, name)):
                _unlink_existing(os.path.join(folder, name))

    def _entity_types(self) -> Iterable[str]:
        try:
            with os.scandir(self.root) as entries:
                names = [e.name for e in entries if e.is_dir() and not e.name.startswith(".")]
        except FileNotFoundError:
            return []
        types = []
        for name in names:
            try:
                self.check_entity_type(name)
            except ValidationError:
                continue
            # stops at the first file of ours: a folder holding only other files is not a type
            if next((i for i, _ in self._scan(name, Partition()) if not isinstance(i, ForeignEntry)), None) is not None:
                types.append(name)
        return types

    def _ping(self) -> None:
        """The root must be a writable directory; it is created, like a first write would."""
        try:
            os.makedirs(self.root, exist_ok=True)
        except OSError as err:
            raise StoreUnavailableError(f"{self.url()}: cannot create root {self.root!r}: {err}",
                                        store=self.url()) from None
        if not os.access(self.root, os.W_OK | os.X_OK):
            raise StoreUnavailableError(f"{self.url()}: root {self.root!r} is not writable", store=self.url())


def _listing(folder: str) -> tuple[list[str], list[tuple[str, bool]]]:
    """(two-hex-digit subdirectories, sorted; other entries as (name, is a directory)), dot-names left out.
    Upper-case shard names are listed too: scans report their files as malformed."""
    try:
        with os.scandir(folder) as entries:
            found = [(e.name, e.is_dir()) for e in entries if not e.name.startswith(".")]
    except (FileNotFoundError, NotADirectoryError):
        return [], []
    shards = sorted(n for n, d in found if d and _SHARD.fullmatch(n))
    return shards, sorted((n, d) for n, d in found if not (d and _SHARD.fullmatch(n)))


def _foreign_dir(raw: str, is_dir: bool) -> ForeignEntry:
    """A file or folder beside the shard folders: another application's."""
    if is_dir:
        return ForeignEntry(raw + "/", "folder is not a shard folder of uuid-forge: not ours, left alone")
    return ForeignEntry(raw, "file lies outside the shard folders: not ours, left alone")


def _read_bytes(path: str) -> bytes:
    """A small file's bytes, with raw ``os`` calls: no buffered-file object per record."""
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        chunks = [os.read(fd, 65536)]
        while len(chunks[-1]) == 65536:
            chunks.append(os.read(fd, 65536))
    finally:
        os.close(fd)
    return b"".join(chunks)


def _read_or_none(path: str) -> bytes | None:
    try:
        return _read_bytes(path)
    except (FileNotFoundError, NotADirectoryError):
        return None


def _holds(path: str, expected: bytes | None) -> bool:
    """Whether ``path`` still holds ``expected`` (None: no file)."""
    return _read_or_none(path) == expected


#: a copy moved aside by a delete whose process is still alive is left to it, unless it is older
#: than this (a delete holds its copy for milliseconds; another host's process cannot be asked)
HELD_ABANDONED_AFTER = 600.0


_ASIDE = ".uf-delete-"  # in the name a delete gives a file it moves aside: .NAME.uf-delete-PID-RANDOM


def _aside_prefix(name: str) -> str:
    """The start of the names a delete gives ``name`` when it moves it aside (the PID follows)."""
    return f".{name}{_ASIDE}"


def _moved_aside(folder: str) -> list[str]:
    """The names in ``folder`` of copies a delete moved aside (``.NAME.uf-delete-PID-*``), sorted."""
    try:
        with os.scandir(folder) as entries:
            return sorted(e.name for e in entries if e.name.startswith(".") and _ASIDE in e.name)
    except (FileNotFoundError, NotADirectoryError):
        return []


def _take_back(folder: str, name: str, aside: list[str]) -> bool:
    """Put back under ``name`` a copy of it that an unfinished delete moved aside (one of
    ``aside``, :func:`_moved_aside`): one whose process is gone, or older than
    :data:`HELD_ABANDONED_AFTER`. Whether a file is under ``name`` now."""
    prefix = _aside_prefix(name)
    for copy in (n for n in aside if n.startswith(prefix)):
        path = os.path.join(folder, copy)
        pid = copy[len(prefix):].partition("-")[0]
        try:
            aged = time.time() - os.stat(path, follow_symlinks=False).st_ctime > HELD_ABANDONED_AFTER
        except FileNotFoundError:
            continue  # its delete finished meanwhile
        if (pid.isdigit() and _alive(int(pid))) and not aged:
            continue  # a delete under way in another process
        with contextlib.suppress(FileNotFoundError):  # taken back by another reader meanwhile
            _put_back(path, os.path.join(folder, name))
    return os.path.isfile(os.path.join(folder, name))


def _alive(pid: int) -> bool:
    """Whether a process ``pid`` runs on this host (this one included)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True  # another user's process, or no such pid on this system: do not take its copy
    return True


def _put_back(held: str, path: str) -> None:
    """Return a file moved aside to its name, without replacing a file written there since (a
    hard link fails on an existing name; a filesystem without hard links gets the check then the
    rename). The copy moved aside is removed either way: if the name is taken, it is older."""
    try:
        os.link(held, path)
    except FileExistsError:
        pass
    except OSError:  # no hard links here
        if not os.path.exists(path):
            os.replace(held, path)
            return
    os.unlink(held)


def _unlink_existing(path: str) -> bool:
    """Remove a file; False when it was not there."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _rmdir_quietly(path: str) -> None:
    """Remove a folder if it is empty (one holding another application's files stays)."""
    try:
        os.rmdir(path)
    except OSError:
        pass
