"""What ``uuid-forge validate`` checks in the stores: every check that opening them runs, with
nothing written.

Each store is opened as every command opens it (its options parsed: an unknown or misspelled one
fails, with the close match), pinged, then asked for its own checks (:meth:`Adapter.check
<uuid_forge.contract.Adapter.check>`: each type accepted, the user's table and its columns, an
index's mapping ...), the same ones it runs before its first use. Last, whether the ID-configuration
guard is on: a source that cannot keep its marker cannot detect a run under another salt. Every
check is listed, ok or not, so a reader sees what was looked at, not only what failed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from .classify import scheme_versions
from .contract import RESERVED_TYPE_PREFIX, SCAN
from .errors import ConfigError, OptionError, UUIDForgeError, ValidationError
from .handles import StoreHandle
from .idmarker import status, why_unsupported
from .registry import open_store
from .settings import ForgeSettings
from .urls import mask_text

__all__ = ["FAILED", "OFF", "OK", "SKIPPED", "StoreCheck", "check_stores"]

OK, FAILED, OFF, SKIPPED = "ok", "failed", "off", "skipped"


@dataclass(frozen=True)
class StoreCheck:
    """One check: the store (None: the configuration as a whole), what, the outcome, and why."""

    store: str | None
    check: str
    status: str
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"store": self.store, "check": self.check, "status": self.status, "message": self.message}

    def line(self) -> str:
        where = f"{self.store}: " if self.store else ""
        return f"{self.status:7} {where}{self.check}" + (f": {self.message}" if self.message else "")


def _open(settings: ForgeSettings, out: list[StoreCheck]) -> list[StoreHandle]:
    versions = scheme_versions(settings.ids)
    handles = []
    for s in settings.stores:
        try:
            adapter = open_store(s.url, view=s.view, id_versions=versions, **s.options)
        except OptionError as err:
            out.append(StoreCheck(s.name, "options", FAILED, mask_text(str(err))))
            continue
        except (ConfigError, TypeError) as err:
            out.append(StoreCheck(s.name, "url and options", FAILED, mask_text(str(err))))
            continue
        except UUIDForgeError as err:  # a driver that is not installed, an adapter that is unknown
            out.append(StoreCheck(s.name, "adapter", FAILED, mask_text(str(err))))
            continue
        in_url = sorted({k for k, _ in parse_qsl(urlsplit(s.url).query, keep_blank_values=True)})
        given = "; ".join(part for part in (", ".join(sorted(s.options)),
                                            ", ".join(in_url) + " in the URL" if in_url else "") if part) or "none given"
        out.append(StoreCheck(s.name, "options", OK, f"accepted ({given})"))
        handles.append(StoreHandle(s.name, adapter, s.source, s.required))
    return handles


def _reachable(handles: list[StoreHandle], out: list[StoreCheck]) -> list[StoreHandle]:
    up = []
    for h in handles:
        try:
            h.adapter.probe()
        except UUIDForgeError as err:
            status = FAILED if h.required or h.source else SKIPPED
            out.append(StoreCheck(h.name, "answers", status, f"{mask_text(str(err))}; its other checks did not run"
                                  + ("" if status == FAILED else " (an optional store: writes journal its part)")))
            continue
        out.append(StoreCheck(h.name, "answers", OK, h.adapter.url()))
        up.append(h)
    return up


def _types(settings: ForgeSettings, source: StoreHandle | None, out: list[StoreCheck]) -> list[str]:
    """The declared types, and those the source holds (a store must accept each)."""
    types = list(settings.types)
    if source is not None and SCAN in source.adapter.capabilities:
        try:
            types += [t for t in source.adapter.entity_types() if t not in types]
        except (ConfigError, ValidationError):
            pass  # the container's own check names it (a missing column, a table that is not there)
        except UUIDForgeError as err:
            out.append(StoreCheck(source.name, "entity types held", FAILED, mask_text(str(err))))
    return types


def _markers(settings: ForgeSettings, up: list[StoreHandle], types: list[str]) -> list[StoreCheck]:
    """Each type's ID configuration against the marker the source recorded: a run under another
    salt, secret or namespace (a cron job without the salt) is refused by every write, so it must
    fail here too. Read only; no value of a salt or secret is shown."""
    from .forge import Forge

    forge = Forge(up, ids=settings.ids, types=settings.types, journal=None)  # the open stores, not closed here
    out = []
    try:
        rows = status(forge, [t for t in types if not t.startswith(RESERVED_TYPE_PREFIX)])
    except UUIDForgeError as err:
        return [StoreCheck(forge.source.name, "ID configuration", FAILED, mask_text(str(err)))]
    for row in rows:
        check = f"ID configuration of {row['entity_type']}"
        if row["state"] == "differs":
            out.append(StoreCheck(forge.source.name, check, FAILED, f"{row['message']}; every write, replay and "
                                  "repair would be refused ('uuid-forge ids status' shows it)"))
        else:
            out.append(StoreCheck(forge.source.name, check, OK, "the one the source recorded" if row["state"] == "same"
                                  else "no marker yet: the first write records it"))
    return out


def check_stores(settings: ForgeSettings) -> list[StoreCheck]:
    """Every store of ``settings`` opened, pinged and checked as its first use would, nothing
    written; then the ID-configuration guard. The adapters are closed before returning."""
    out: list[StoreCheck] = []
    handles = _open(settings, out)
    try:
        up = _reachable(handles, out)
        source = next((h for h in up if h.source), None)
        types = _types(settings, source, out)
        for h in up:
            for c in h.adapter.check(types):
                out.append(StoreCheck(h.name, c.name, c.status, c.message))
        if source is not None:
            why = why_unsupported(source)
            out.append(StoreCheck(source.name, "ID-configuration guard", OFF if why else OK,
                                  f"{why}: a run under another salt, secret or namespace (a salt missing from cron's "
                                  "environment) is not detected, and would give old keys new IDs; keep the source in "
                                  "a store that can hold the marker record, or keep the salt with the same care"
                                  if why else "on: the source keeps a digest of each type's ID configuration"))
            if not why:
                out += _markers(settings, up, types)
    finally:
        for h in handles:
            try:
                h.adapter.close()
            except UUIDForgeError:
                pass
    order = {s.name: n for n, s in enumerate(settings.stores)}
    return sorted(out, key=lambda c: order.get(c.store or "", -1))  # grouped by store, in the file's order
