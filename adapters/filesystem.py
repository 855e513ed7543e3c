"""``file:///abs/root``: one JSON file per record under lowercase, sharded, deterministic paths.

Layout (DESIGN.md): ``root/{entity_type}/{hex[0:2]}/{hex[2:4]}/{uuid}.json``, everything
lowercase, so the same tree works on case-insensitive disks (macOS, Windows), and the two shard
levels keep directories small (65,536 leaves). A file holds
``{"fp":…,"id":…,"key":…,"data":…}`` in that order: the fingerprint and ID sit at fixed offsets
at the head; a scan hashes the data's text as stored (parsing it only where it differs from the
source), so an edited file is found whatever its ``fp`` says.

Writes are atomic: a temporary dot-file in the same directory, written, fsynced, then
``os.replace``-d over the target, so a reader sees the old file or the new one, never half of
one. Directories are fsynced once per batch rather than after every rename: ``put_many`` returns
only after the whole batch is durable either way, and a directory shared by several files of a
batch is synced once. A crash mid-batch leaves at most some stray dot-files, which scans ignore;
the write-through journal replays the batch.

URLs: ``file:///abs/root`` or ``file://localhost/abs/root`` (RFC 8089). Relative roots are
refused: ``file://data/x`` would mean host ``data``, and guessing would write somewhere else
than meant. Options (keyword or URL query): ``fsync`` (default true; false trades durability on
power loss for speed, e.g. for caches and tests) and ``batch_size``.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import secrets
import shutil
import uuid
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from ..classify import classify
from ..errors import StoreConfigError, StoreError, StoreRejectedError, StoreUnavailableError, ValidationError
from ..record import ForeignEntry, MalformedID, Partition, Record, TextFingerprint, data_fingerprint
from ..contract import BATCH_SIZE, Adapter, Option, ScanItem

__all__ = ["FileAdapter"]

_NAME = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\.json")
_SHARD = re.compile(r"[0-9a-fA-F]{2}")
_WINDOWS_RESERVED = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10)), *(f"lpt{i}" for i in range(10))}
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


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


def _data_text_fp(text: str) -> TextFingerprint | None:
    """The fingerprint of the data's text in a file of our own layout (its last member), else None."""
    if text[:7] == '{"fp":"' and text[39:47] == '","id":"' and text[83:91] == '","key":' and text[-2:] == "}\n":
        try:  # the key is small: decode it only to find where the data starts
            _, at = _KEY_DECODER.raw_decode(text, 91)
        except ValueError:
            return None
        if text.startswith(',"data":', at):
            return TextFingerprint(text[at + 8:-2])
    return None


def _read_head(path: str) -> tuple[str | None, str | None]:
    """(fingerprint of the data the file holds, id text) of a record file.

    In our own layout the data is the file's last member, kept as canonical text: its bytes are
    hashed as they are (a TextFingerprint, re-canonicalised only where it differs from the
    source's). Any other file is parsed whole. The ``fp`` written beside the data is not used.
    """
    blob = _read_bytes(path)
    if blob[:7] == b'{"fp":"':
        try:
            text = blob.decode("utf-8")
        except UnicodeDecodeError:
            return None, None
        fp = _data_text_fp(text)
        if fp is not None:
            return fp, text[47:83]
    try:
        doc = json.loads(blob)
    except ValueError:
        return None, None
    if not isinstance(doc, dict):
        return None, None
    ident = doc.get("id")
    return data_fingerprint(doc.get("data")), (ident if isinstance(ident, str) else None)


class FileAdapter(Adapter):
    """Records as JSON files; the ID is the file name (lowercase 36-char string)."""

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

    def path_of(self, entity_type: str, ident: uuid.UUID) -> str:
        """The file that holds one record."""
        s = str(ident)
        return os.path.join(self.root, entity_type, s[0:2], s[2:4], s + ".json")

    # -- hooks ---------------------------------------------------------------------------------
    def _put(self, entity_type: str, records: list[Record]) -> None:
        base = os.path.join(self.root, entity_type)
        sep = os.sep
        tag = f"{os.getpid()}-{secrets.token_hex(4)}"
        touched: set[str] = set()
        made = self._made.get(entity_type)
        if made is None:
            made = self._made[entity_type] = bytearray(65536)
        for r in records:
            s = str(r.id)
            folder = f"{base}{sep}{s[0:2]}{sep}{s[2:4]}"
            shard = r.id.int >> 112
            if not made[shard]:
                self._mkdirs(folder, touched)
                made[shard] = 1
            body = f'{{"fp":"{r.fingerprint}","id":"{s}","key":{r.key_json or "null"},"data":{r.data_json}}}\n'
            tmp = f"{folder}{sep}.{s}.{tag}.tmp"
            try:
                fd = os.open(tmp, _CREATE, 0o644)
            except FileNotFoundError:  # shard directory removed behind our back: make it again
                self._mkdirs(folder, touched)
                fd = os.open(tmp, _CREATE, 0o644)
            try:
                try:
                    view = memoryview(body.encode("utf-8"))
                    while view:
                        view = view[os.write(fd, view):]
                    if self.fsync:
                        os.fsync(fd)
                finally:
                    os.close(fd)
                os.replace(tmp, f"{folder}{sep}{s}.json")
            except BaseException as err:
                _unlink_quietly(tmp)
                if isinstance(err, OSError) and err.filename is None:  # os.write/fsync: name the file (disk full)
                    raise OSError(err.errno, err.strerror, f"{folder}{sep}{s}.json") from None
                raise
            touched.add(folder)
        if self.fsync:
            for folder in touched:
                _fsync_dir(folder)

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

    def _get(self, entity_type: str, ids: list[uuid.UUID]) -> Iterable[Record]:
        found = []
        loads = json.loads
        base = os.path.join(self.root, entity_type) + os.sep
        for ident in ids:
            s = str(ident)
            try:
                text = _read_all(f"{base}{s[0:2]}{os.sep}{s[2:4]}{os.sep}{s}.json")
            except FileNotFoundError:
                continue
            path = f"{base}{s[0:2]}{os.sep}{s[2:4]}{os.sep}{s}.json"

            def make(text: bytes | str = text) -> Record:
                doc = loads(text)  # the fingerprint of the data's text as stored, never the "fp" member
                return Record(entity_type, ident, doc["data"], doc.get("key"), fingerprint=_data_text_fp(text))

            found.append(self._read_record(entity_type, ident, make, path))
        return found

    def _delete(self, entity_type: str, ids: list[uuid.UUID]) -> int:
        count = 0
        touched: set[str] = set()
        for ident in ids:
            path = self.path_of(entity_type, ident)
            try:
                os.unlink(path)
            except FileNotFoundError:
                continue
            count += 1
            touched.add(os.path.dirname(path))
        if self.fsync:
            for folder in touched:
                _fsync_dir(folder)
        return count

    def _scan(self, entity_type: str, partition: Partition) -> Iterator[ScanItem]:
        """Walk only the shard directories inside the partition's ID range, in ID order.

        The two shard levels are the ID's first 16 bits, so a partition maps to a range of
        directories; files are read one at a time (head only), so memory stays bounded.
        """
        top = os.path.join(self.root, entity_type)
        lo, hi = partition.lo >> 112, (partition.hi - 1) >> 112
        for first in _shards(top):
            b1 = int(first, 16)
            if not lo >> 8 <= b1 <= hi >> 8:
                continue
            for second in _shards(os.path.join(top, first)):
                if lo <= (b1 << 8 | int(second, 16)) <= hi:
                    yield from self._scan_leaf(entity_type, first, second)

    def _scan_leaf(self, entity_type: str, first: str, second: str) -> Iterator[ScanItem]:
        folder = os.path.join(self.root, entity_type, first, second)
        try:
            with os.scandir(folder) as entries:
                names = sorted(e.name for e in entries if e.is_file() and not e.name.startswith("."))
        except FileNotFoundError:
            return
        for name in names:
            path = os.path.join(folder, name)
            try:
                fp, content_id = _read_head(path)
            except FileNotFoundError:  # deleted while we walked
                continue
            raw = f"{entity_type}/{first}/{second}/{name}"
            ident = self._parse(raw, name, first, second, content_id)
            yield ident, fp

    def _parse(self, raw: str, name: str, first: str, second: str,
               content_id: str | None) -> uuid.UUID | MalformedID | ForeignEntry:
        """The UUID a file name stands for; a MalformedID for an ID of ours in the wrong form or
        place; a ForeignEntry for any other file (``README.txt``, ``notes.json``): never ours."""
        if _NAME.fullmatch(name) and name[0:2] == first and name[2:4] == second:
            ident = uuid.UUID(name[:36])
            if content_id is None or content_id == name[:36]:
                return ident
            return MalformedID(raw=raw, reason=f"the file holds id {content_id!r}, not its name", id=ident)
        if name[-5:].lower() != ".json":
            return ForeignEntry(raw, "file name does not end in .json: not ours, left alone")
        stem = name[:-5]
        found = classify(stem, "string", raw=raw, versions=self.id_versions, where="file name")
        if isinstance(found, ForeignEntry):
            return found
        ident = found.id if isinstance(found, MalformedID) else found
        assert ident is not None
        if isinstance(found, MalformedID):
            reason = ("file name is not lowercase (unsafe on case-insensitive disks)"
                      if found.reason.startswith("file name holds the ID in upper-case string") else found.reason)
        elif name[-5:] != ".json":
            reason = "file name ends in an upper-case .JSON"
        elif first != first.lower() or second != second.lower():
            reason = "shard directory name is not lowercase"
        else:
            reason = f"file is in shard {first}/{second} but its ID belongs in {stem[0:2]}/{stem[2:4]}"
        return MalformedID(raw=raw, reason=reason, id=ident)

    def _delete_raw(self, entity_type: str, raws: list[str]) -> int:
        """Delete files by the path a scan reported (``type/ab/cd/NAME``), inside this type only."""
        base = os.path.realpath(os.path.join(self.root, entity_type))
        count = 0
        for raw in raws:
            path = os.path.realpath(os.path.join(self.root, raw))
            if not raw.startswith(entity_type + "/") or os.path.commonpath([base, path]) != base:
                raise ValidationError(f"{raw!r} is not a file of entity type {entity_type!r} under {self.root}")
            parts = raw.split("/")
            if len(parts) != 4 or isinstance(self._parse(raw, parts[3], parts[1], parts[2], None), ForeignEntry):
                raise ValidationError(f"{raw!r} is not a record file written by uuid-forge: refused, "
                                      "foreign files are never deleted")
            try:
                os.unlink(path)
                count += 1
            except FileNotFoundError:
                continue
        return count

    def _drop(self, entity_type: str) -> None:
        self._made.pop(entity_type, None)
        shutil.rmtree(os.path.join(self.root, entity_type), ignore_errors=True)

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


def _shards(folder: str) -> list[str]:
    """Two-hex-digit subdirectories of ``folder``, sorted (uppercase ones too: scans report them)."""
    try:
        with os.scandir(folder) as entries:
            return sorted(e.name for e in entries if _SHARD.fullmatch(e.name) and e.is_dir())
    except (FileNotFoundError, NotADirectoryError):
        return []


def _read_all(path: str) -> str:
    """A small file's text, with raw ``os`` calls: no buffered-file object per record."""
    return _read_bytes(path).decode("utf-8")


def _read_bytes(path: str) -> bytes:
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
    try:
        chunks = [os.read(fd, 65536)]
        while len(chunks[-1]) == 65536:
            chunks.append(os.read(fd, 65536))
    finally:
        os.close(fd)
    return b"".join(chunks)


def _unlink_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
