"""A store opened again by a process of its own, to read it there: a whole-scan store into the
audit's spill files (uuid_forge.onepass).

Why: an audit reads a document store it cannot ask for ID ranges (MongoDB or Elasticsearch with
``read_once``) in a thread beside the source's scan. Decoding each document (BSON, JSON) and
canonicalising it to a fingerprint is pure Python, so in a thread it competes for this process's
one GIL with every other store's comparison: measured on 2 cores over six stores, the audit
process was busy for 8 s of a 9.4 s audit while the cores had time to spare. Here the store is
opened again, from the URL and options it was opened with, in a new interpreter
(``sys.executable``), which scans it and writes every item to the pass's private
spill files (uuid_forge.onepass.SpillFiles: a new 0700 directory made here, files 0600); this
process then reads back one partition at a time, as it does a spill it wrote itself.

A new interpreter, not multiprocessing: spawn and forkserver run the caller's main script again
in the child (a script without the ``__main__`` guard would audit, or write, a second time), and
fork copies a process whose driver threads may hold locks.

Only a store whose adapter says so (``read_apart``: MongoDB's and Elasticsearch's option, on by
default with ``read_once``), opened by ``from_url`` with options that can be pickled, is read this way; anything else (an adapter made around a client object, an
in-memory store) is read in a thread, as before. The URL, password included, reaches the child
through its standard input, never its command line; the child answers one JSON line: its count,
or its error's class and message (uuid-forge's messages mask secrets), never a traceback.
"""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import errors
from .errors import StoreError, UUIDForgeError
from .urls import hide_password, mask_url

if TYPE_CHECKING:
    from .contract import Adapter

__all__ = ["reopen_spec", "run_apart"]

Spec = tuple["type[Adapter]", str, dict[str, Any]]


def reopen_spec(adapter: Any) -> Spec | None:
    """What another process needs to open ``adapter`` again, or None when it is read in a thread:
    it does not read apart (its ``read_apart`` option), it was not opened by ``from_url``, or an
    option cannot be pickled."""
    if not getattr(adapter, "read_apart", False) or not getattr(adapter, "whole_scan", False):
        return None
    opened = getattr(adapter, "_opened_with", None)
    if opened is None:
        return None
    url, options = opened
    options = {**options, "view": adapter.view, "id_versions": adapter.id_versions}
    try:
        pickle.dumps((type(adapter), options))
    except Exception:  # noqa: BLE001 - a client object or a local function among the options: read here
        return None
    return type(adapter), url, options


#: the child's first lines: the caller's import path before anything of uuid-forge is imported, so
#: that the same uuid_forge and adapter classes load there (a ``-m`` lookup would use the child's own path)
_BOOT = ("import pickle, sys; path, job = pickle.load(sys.stdin.buffer); sys.path[:] = path; "
         "from uuid_forge.scanprocess import main; main(job)")


def run_apart(spec: Spec, what: str, work: Callable[..., int], *args: Any) -> int:
    """``work(adapter, *args)`` in a new process, on the store ``spec`` opens again there; its
    result (a count) is returned. ``work`` is a module-level function (sent by name) and ``what``
    says what it does, for errors ("reading user"). The child's error is raised here with its
    message, as the error class of uuid_forge.errors it had (StoreError when it was not one of ours)."""
    where = mask_url(spec[1])
    job = pickle.dumps((sys.path, pickle.dumps((spec, what, work, args))))
    try:
        child = subprocess.Popen([sys.executable, "-c", _BOOT], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
    except OSError as err:
        raise StoreError(f"{where}: cannot start a process for {what} ({sys.executable!r}: {err.strerror or err}); "
                         "set read_apart=false on the store to read it in this process", store=where) from None
    try:
        out, said = child.communicate(job)
    finally:
        if child.poll() is None:  # interrupted here: the child stops too
            child.kill()
            child.wait()
    try:
        kind, message, store = json.loads(out.decode("utf-8").strip().splitlines()[-1])
    except (ValueError, IndexError):
        last = said.decode("utf-8", "replace").strip().splitlines()[-1:] or [f"exit status {child.returncode}"]
        raise StoreError(f"{where}: the process {what} ended without an answer: "
                         f"{hide_password(last[0][:300], spec[1])}", store=where) from None
    if kind == "ok":
        return int(message)
    message = hide_password(str(message), spec[1])  # masked already where it was made; here too, to be sure
    cls = getattr(errors, kind, None)
    if isinstance(cls, type) and issubclass(cls, StoreError):
        raise cls(message, store=store or where)
    if isinstance(cls, type) and issubclass(cls, UUIDForgeError):
        raise cls(message)
    raise StoreError(message, store=where)


def _child(spec: Spec, what: str, work: Callable[..., int], args: tuple[Any, ...]) -> tuple[str, Any, str | None]:
    """In the child: open, work, close; ``("ok", count, None)`` or its error's ``(class name, message, store)``."""
    cls, url, options = spec
    try:
        adapter = cls.from_url(url, **options)
        try:
            return "ok", work(adapter, *args), None
        finally:
            adapter.close()
    except UUIDForgeError as err:
        return type(err).__name__, str(err), getattr(err, "store", None)
    except Exception as err:  # noqa: BLE001 - a driver's own error: its class and message, no traceback
        return "StoreError", (f"{mask_url(url)}: {what} in its own process: {type(err).__name__}: "
                              f"{hide_password(str(err), url)}"), None


def main(job: bytes) -> None:
    """The child's entry (:data:`_BOOT`): one JSON line of answer on standard output."""
    sys.stdout.write(json.dumps(_child(*pickle.loads(job))) + "\n")
