"""The ID-configuration marker: the source remembers which configuration minted each type's IDs.

A run with another salt or secret (cron without the env file, a rotated key) computes new IDs for
old business keys: duplicate rows in the source, and an audit that cannot tell. So the source of
truth keeps, per entity type, a marker written on the first write of that type: the scheme and
namespace as they are (neither is secret), and for the salt and the secret either "unset" or a
slow keyed digest (PBKDF2-HMAC-SHA256, 200,000 rounds, keyed by the component's name and the
namespace), never the values. A write, replay or repair under a configuration that differs is
refused before any store is touched, with a message naming what differs in kind; an audit reports
the difference as one finding per type. ``uuid-forge ids accept`` records the current
configuration on purpose.

The markers are records of the reserved entity type ``uuid-forge.meta`` in the source, written
and read through the public adapter API (ID: ``uuid5(META_NAMESPACE, entity_type)``). Every
listing of entity types hides the reserved types (``Adapter.entity_types``), and audits never
compare them with the other stores. A source on a container of your own (a SQL ``table=``, a
MongoDB ``collection=``, an Elasticsearch ``index=``) keeps them in a side container of the same
store (uuid_forge.containers). Only a source that cannot hold the type at all (files with
``layout=raw``, a store that cannot be read) keeps no marker: there the check is off.

A marker is created with ``Adapter.put_new`` (create-if-absent), then read back: of two first
writers with different configurations, one creates it and the other is refused by it. A marker
is never created blindly over existing data: when the source holds entries of the type but no
marker (it was deleted), the writer first proves on a sample of them (:func:`prove`) that its
configuration rebuilds their IDs from their key fields, and is refused otherwise. A marker that
differs is only ever changed by ``uuid-forge ids accept``, which makes the same proof and needs
``--rotate`` when it fails.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .contract import READ, RESERVED_TYPE_PREFIX, SCAN, WRITE, chunked
from .errors import ConfigError, IDConfigMismatchError, StoreError, ValidationError
from .ids import IDConfig
from .precedence import SALT_ENV, SECRET_ENV
from .record import Record

if TYPE_CHECKING:
    from .forgeview import ForgeView
    from .handles import StoreHandle

log = logging.getLogger("uuid_forge.idmarker")

META_TYPE = RESERVED_TYPE_PREFIX + "meta"
META_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://uuid-forge.dev/id-config-marker")
MARKER_VERSION = 1
KDF_ROUNDS = 200_000
#: entries with a readable key a proof looks at, and entries it reads at most to find them
SAMPLE = 100
SCAN_LIMIT = 1000

__all__ = ["META_TYPE", "Marker", "Proof", "accept", "audit_findings", "differences", "ensure", "explain",
           "marker_id", "plan", "prove", "read_markers", "status", "why_unsupported"]

_TEXT = {
    "scheme": "the scheme differs from the one this source was written with ({old} then, {new} now)",
    "namespace": "the namespace differs from the one this source was written with ({old} then, {new} now)",
    "salt": "the salt differs from the one this source was written with",
    "salt_missing": "the source was written with a salt and none is set now "
                    "(is {salt_env} missing from cron's environment?)",
    "salt_added": "the source was written without a salt and one is set now",
    "secret": "the secret differs from the one this source was written with",
    "secret_missing": "the source was written with a secret and none is set now "
                      f"(is {SECRET_ENV} missing from cron's environment?)",
    "secret_added": "the source was written without a secret and one is set now",
}


@functools.lru_cache(maxsize=32)
def _kdf(component: str, value: bytes, namespace: bytes) -> str:
    """Slow and keyed, so a weak salt cannot be recovered cheaply from the stored digest; once per process."""
    key = b"uuid-forge/id-config/" + component.encode() + b"/" + namespace
    return hashlib.pbkdf2_hmac("sha256", value, key, KDF_ROUNDS)[:16].hex()


def _value(config: IDConfig, component: str) -> bytes | None:
    raw = config.salt if component == "salt" else config.secret
    if not raw:
        return None  # an empty salt gives the same IDs as none
    return raw.encode("utf-8") if isinstance(raw, str) else bytes(raw)


@dataclass(frozen=True)
class Marker:
    """One type's recorded ID configuration: digests and kinds, never the salt or secret."""

    entity_type: str
    scheme: str
    namespace: str
    salt_digest: str | None
    secret_digest: str | None
    version: int = MARKER_VERSION
    recorded_at: str = ""

    @classmethod
    def of(cls, config: IDConfig, entity_type: str) -> Marker:
        ns = config.namespace_uuid
        digests = {c: (None if (v := _value(config, c)) is None else _kdf(c, v, ns.bytes)) for c in ("salt", "secret")}
        return cls(entity_type, config.scheme, str(ns), digests["salt"], digests["secret"],
                   recorded_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))

    def to_data(self) -> dict[str, Any]:
        return {"entity_type": self.entity_type, "scheme": self.scheme, "namespace": self.namespace,
                "salt_digest": self.salt_digest, "secret_digest": self.secret_digest, "version": self.version,
                "recorded_at": self.recorded_at}

    @classmethod
    def from_record(cls, record: Record, source: str) -> Marker:
        d = record.data
        try:
            version = d["version"]
            if not isinstance(version, int) or version > MARKER_VERSION:
                raise ConfigError(f"{source}: the ID-configuration marker of entity type {d.get('entity_type')!r} "
                                  f"was written by a newer uuid-forge (marker version {version}); use that version")
            uuid.UUID(d["namespace"])
            return cls(str(d["entity_type"]), str(d["scheme"]), str(d["namespace"]), d["salt_digest"],
                       d["secret_digest"], version, str(d.get("recorded_at", "")))
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            if isinstance(err, ConfigError):
                raise
            raise ConfigError(f"{source}: the ID-configuration marker {record.id} ({META_TYPE}) cannot be read; "
                              f"remove it and run 'uuid-forge ids accept' to record the current configuration") from None

    def record(self) -> Record:
        return Record(META_TYPE, marker_id(self.entity_type), self.to_data(), {"entity_type": self.entity_type})


def marker_id(entity_type: str) -> uuid.UUID:
    """Where the marker of ``entity_type`` lives in the reserved type."""
    return uuid.uuid5(META_NAMESPACE, entity_type)


def differences(stored: Marker, config: IDConfig) -> list[str]:
    """What differs in kind: scheme, namespace, salt / salt_missing / salt_added, secret / ... ."""
    kinds = []
    if stored.scheme != config.scheme:
        kinds.append("scheme")
    if uuid.UUID(stored.namespace) != config.namespace_uuid:
        kinds.append("namespace")
    ns = uuid.UUID(stored.namespace).bytes  # digests compared under the stored namespace: one kind at a time
    for component in ("salt", "secret"):
        value, digest = _value(config, component), getattr(stored, f"{component}_digest")
        if value is None and digest is None:
            continue
        if digest is None:
            kinds.append(f"{component}_added")
        elif value is None:
            kinds.append(f"{component}_missing")
        elif _kdf(component, value, ns) != digest:
            kinds.append(component)
    return kinds


def explain(entity_type: str, kinds: list[str], stored: Marker | None = None, config: IDConfig | None = None,
            salt_env: str = SALT_ENV) -> str:
    """One line: ``entity type 'user': the salt differs from the one this source was written with``.

    ``salt_env`` names the variable the type's salt comes from (a declared type's own ``salt_env``)."""
    old = {"scheme": stored.scheme if stored else "?", "namespace": stored.namespace if stored else "?"}
    new = {"scheme": config.scheme if config else "?", "namespace": str(config.namespace_uuid) if config else "?"}
    parts = [_TEXT[k].format(old=old.get(k, ""), new=new.get(k, ""), salt_env=salt_env) for k in kinds]
    return f"entity type {entity_type!r}: " + "; ".join(parts)


def _config(forge: ForgeView, entity_type: str) -> IDConfig:
    """The ID configuration ``entity_type`` is written with: a declared type's own, else ``forge.ids``."""
    id_config = getattr(forge, "id_config", None)
    return id_config(entity_type) if id_config is not None else forge.ids


def _salt_env(forge: ForgeView, entity_type: str) -> str:
    salt_env = getattr(forge, "salt_env", None)
    return salt_env(entity_type) if salt_env is not None else SALT_ENV


def _refusal(mismatched: dict[str, tuple[list[str], Marker]], forge: ForgeView, action: str) -> IDConfigMismatchError:
    first, (kinds, stored) = next(iter(mismatched.items()))
    more = len(mismatched) - 1
    only = f" --entity {first}" if not more else ""
    return IDConfigMismatchError(
        explain(first, kinds, stored, _config(forge, first), _salt_env(forge, first))
        + (f" (and {more} other entity type{'s' if more > 1 else ''})" if more else "")
        + f"; {action} refused before any store was touched, since the IDs computed now would give old keys new IDs."
        f" Fix the configuration, or record the current one on purpose with 'uuid-forge ids accept{only} --rotate"
        " --yes' (existing IDs keep their old values)",
        mismatches={t: k for t, (k, _) in mismatched.items()})


# -- the source -----------------------------------------------------------------------------------
def why_unsupported(source: StoreHandle) -> str | None:
    """None when the source can keep markers, else why not (also for ``uuid-forge validate``)."""
    adapter = source.adapter
    if READ not in adapter.capabilities or WRITE not in adapter.capabilities:
        return f"the source {source.name!r} cannot both read and write ({adapter.name or type(adapter).__name__})"
    try:
        adapter.check_entity_type(META_TYPE)
    except ValidationError as err:
        return f"the source {source.name!r} cannot hold uuid-forge's marker record: {err}"
    return None


def supported(forge: ForgeView) -> bool:
    """Whether the source can keep markers (it must read and write the reserved type)."""
    cached = getattr(forge, "_id_markers_supported", None)
    if cached is None:
        why = why_unsupported(forge.source)
        if why:
            log.info("%s: a run under another salt or secret is not detected", why)
        cached = why is None
        forge._id_markers_supported = cached  # type: ignore[attr-defined]
    return cached


def read_markers(forge: ForgeView, entity_types: Iterable[str]) -> dict[str, Marker]:
    """The markers the source holds for ``entity_types`` (types without one are left out)."""
    types = list(entity_types)
    if not types or not supported(forge):
        return {}
    wanted = {marker_id(t): t for t in types}
    found = forge.source.adapter.get_many(META_TYPE, list(wanted))
    out = {}
    for ident, record in found.items():
        marker = Marker.from_record(record, forge.source.name)
        if ident in wanted and marker.entity_type == wanted[ident]:
            out[marker.entity_type] = marker
    return out


# -- the proof ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Proof:
    """What a sample of the source says about a configuration: of ``read`` entries, ``checked``
    had a readable key, and the configuration rebuilt the IDs of ``proven`` of them."""

    read: int
    checked: int
    proven: int

    @property
    def state(self) -> str:
        """``empty`` (no entry: nothing to protect), ``proven`` (one rebuilt ID is enough: no other
        configuration rebuilds any), ``disproven`` (keys read, no ID rebuilt) or ``unprovable``
        (entries, but none with its key fields)."""
        if self.proven:
            return "proven"
        if self.checked:
            return "disproven"
        return "unprovable" if self.read else "empty"

    @property
    def holds(self) -> bool:
        """Whether the configuration may be recorded without ``--rotate``."""
        return self.state in ("empty", "proven")

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "read": self.read, "checked": self.checked, "proven": self.proven}

    def explain(self, entity_type: str) -> str:
        """Why the configuration in use cannot be recorded without ``--rotate`` (counts only)."""
        if self.state == "disproven":
            return (f"the configuration in use rebuilds none of the {self.checked} IDs sampled from the source from "
                    "their key fields: they were written under another salt, secret, namespace or scheme")
        return (f"none of the {self.read} entries sampled from the source holds its key fields, so no ID can show "
                f"which configuration wrote them (declare the key fields of {entity_type!r}, e.g. [types."
                f"{entity_type}] key = [...], so that they can be checked)")


def _key(declared: Any, record: Record) -> Any:
    """The key an entry holds: the declared key fields in its data, else the key stored beside it."""
    data = record.data if isinstance(record.data, dict) else {}
    if declared is not None and declared.key:
        if all(data.get(n) is not None for n in declared.key):
            return {n: data[n] for n in declared.key}
        if isinstance(record.key, dict) and set(record.key) == set(declared.key):
            return record.key
        return None
    return record.key


def _rebuilt(forge: ForgeView, entity_type: str, key: Any) -> uuid.UUID | None:
    """The ID the configuration in use gives ``key``; None when it is no usable key."""
    try:
        if isinstance(key, dict):
            return forge.generator.generate(entity_type, **key)
        if isinstance(key, list):
            return forge.generator.generate(entity_type, *key)
        return forge.generator.generate(entity_type, key)
    except (TypeError, ValueError, ValidationError):
        return None


def prove(forge: ForgeView, entity_type: str) -> Proof:
    """Whether the configuration in use rebuilds the IDs the source holds for ``entity_type``, from
    the key fields the entries hold themselves (at most :data:`SAMPLE` keyed entries, :data:`SCAN_LIMIT`
    read). Entries without a readable key, wrongly encoded names and other applications' entries
    prove nothing. A source that cannot be scanned proves nothing either (``unprovable``)."""
    adapter = forge.source.adapter
    if SCAN not in adapter.capabilities:
        return Proof(read=1, checked=0, proven=0)
    types = getattr(forge, "types", {}) or {}
    declared = types.get(entity_type)
    ids: list[uuid.UUID] = []
    read = 0
    for ident, _ in adapter.scan(entity_type, include_malformed=True):
        read += 1
        if type(ident) is uuid.UUID:
            ids.append(ident)
        if read >= SCAN_LIMIT:
            break
    checked = proven = 0
    for batch in chunked(ids, SAMPLE):
        for ident, record in adapter.get_many(entity_type, batch).items():
            if record.unreadable:
                continue
            key = _key(declared, record)
            expected = None if key is None else _rebuilt(forge, entity_type, key)
            if expected is None:
                continue
            checked += 1
            proven += expected == ident
        if proven or checked >= SAMPLE:
            break
    return Proof(read=read, checked=checked, proven=proven)


def _unproven(forge: ForgeView, proofs: dict[str, Proof], action: str) -> IDConfigMismatchError:
    first, proof = next(iter(proofs.items()))
    more = len(proofs) - 1
    return IDConfigMismatchError(
        f"entity type {first!r}: the source holds entries but no ID-configuration marker (it was removed), and "
        f"{proof.explain(first)}"
        + (f" (and {more} other entity type{'s' if more > 1 else ''})" if more else "")
        + f"; {action} refused before any store was touched. Run it with the configuration that wrote the data "
        f"(that recreates the marker), or record the one in use on purpose with 'uuid-forge ids accept --entity "
        f"{first} --rotate --yes' (existing IDs keep their old values)",
        mismatches={t: [f"marker_missing_{p.state}"] for t, p in proofs.items()})


def _create(forge: ForgeView, markers: list[Marker]) -> None:
    """Create-if-absent: a marker another writer made first stays (checked by reading it back)."""
    forge.source.adapter.put_new([m.record() for m in markers])


def _write(forge: ForgeView, markers: list[Marker]) -> None:
    forge.source.adapter.put_many([m.record() for m in markers])


def ensure(forge: ForgeView, entity_types: Iterable[str], action: str = "write") -> None:
    """Before ``action`` writes these types: refuse a configuration that differs from the marker,
    and create the marker of a type that has none, once the source's entries prove the
    configuration (or there are none). Checked once per type and Forge.

    When the source cannot be read, nothing is decided (the write that follows fails on the same
    source and is journaled); the next batch checks again.
    """
    checked: set[str] = forge.__dict__.setdefault("_id_markers_ok", set())
    todo = sorted(set(entity_types) - checked)
    if not todo or not supported(forge):
        return
    check_not_reserved(todo)
    try:
        stored = read_markers(forge, todo)
    except StoreError as err:
        log.info("ID-configuration marker not checked, the source could not be read: %s", err)
        return
    record: list[str] = []
    mismatched: dict[str, tuple[list[str], Marker]] = {}
    for t in todo:
        marker = stored.get(t)
        if marker is None:
            record.append(t)
        elif kinds := differences(marker, _config(forge, t)):
            mismatched[t] = (kinds, marker)  # changed only by 'ids accept', never by a write
        else:
            checked.add(t)
    if mismatched:
        raise _refusal(mismatched, forge, action)
    if not record:
        return
    try:
        proofs = {t: prove(forge, t) for t in record}
    except StoreError as err:
        log.info("ID-configuration marker not recorded, the source could not be read: %s", err)
        return
    unproven = {t: p for t, p in proofs.items() if not p.holds}
    if unproven:
        # a concurrent first writer may have made the marker (and written) since it was read: judge by it
        for t, marker in read_markers(forge, unproven).items():
            if kinds := differences(marker, _config(forge, t)):
                mismatched[t] = (kinds, marker)
            else:
                checked.add(t)
            del unproven[t]
            record.remove(t)
        if mismatched:
            raise _refusal(mismatched, forge, action)
        if unproven:
            raise _unproven(forge, unproven, action)
    for t, p in proofs.items():
        if p.state == "proven":
            log.warning("entity type %r: the source holds entries but no ID-configuration marker (filled before "
                        "markers were kept, or the marker was removed); the configuration in use rebuilt %d of %d "
                        "sampled IDs, so it is recorded as the marker", t, p.proven, p.checked)
    try:
        _create(forge, [Marker.of(_config(forge, t), t) for t in record])
        again = read_markers(forge, record)  # a concurrent first writer with another configuration may have won
    except StoreError as err:
        log.info("ID-configuration marker not recorded, the source could not be written: %s", err)
        return
    lost = {t: (kinds, again[t]) for t in record
            if t in again and (kinds := differences(again[t], _config(forge, t)))}
    if lost:
        raise _refusal(lost, forge, action)
    checked.update(t for t in record if t in again)


def check_not_reserved(entity_types: Iterable[str]) -> None:
    """Entity types under ``uuid-forge.`` belong to uuid-forge itself."""
    for t in entity_types:
        if isinstance(t, str) and t.startswith(RESERVED_TYPE_PREFIX):
            raise ValidationError(f"entity type {t!r} is reserved: names starting with {RESERVED_TYPE_PREFIX!r} "
                                  "hold uuid-forge's own records")


def audit_findings(forge: ForgeView, entity_types: Iterable[str], refuse: bool = False) -> list[dict[str, Any]]:
    """One finding per type whose marker differs from the configuration in use (none without a
    marker). With ``refuse`` (a repair about to run), a difference raises instead."""
    types = list(entity_types)
    check_not_reserved(types)
    mismatched = {t: (kinds, m) for t, m in read_markers(forge, types).items()
                  if (kinds := differences(m, _config(forge, t)))}
    if refuse and mismatched:
        raise _refusal(mismatched, forge, "repair")
    return [{"entity_type": t, "differs": kinds,
             "message": explain(t, kinds, m, _config(forge, t), _salt_env(forge, t))}
            for t, (kinds, m) in mismatched.items()]


def summary_line(finding: dict[str, Any]) -> str | None:
    """``--verify-keys`` under a configuration that differs: one line instead of N findings."""
    keys = finding.get("verify_keys")
    if not keys:
        return None
    return (f"{keys['mismatched']} of {keys['checked']} stored IDs of {finding['entity_type']!r} do not match their "
            f"keys: the ID configuration differs from the one this source was written with "
            f"({finding['message'].split(': ', 1)[1]})")


# -- the ids command -------------------------------------------------------------------------------
def status(forge: ForgeView, entity_types: Iterable[str]) -> list[dict[str, Any]]:
    """Per type: ``none`` (no marker yet), ``same`` or ``differs`` (with the kinds and the message)."""
    types = list(entity_types)
    check_not_reserved(types)
    if not supported(forge):
        raise ConfigError(f"the source {forge.source.name} cannot keep ID-configuration markers (it must read and "
                          f"write the entity type {META_TYPE!r}; files with layout=raw cannot)")
    stored = read_markers(forge, types)
    rows = []
    for t in types:
        marker = stored.get(t)
        config = _config(forge, t)
        kinds = differences(marker, config) if marker is not None else []
        rows.append({"entity_type": t, "state": "none" if marker is None else "differs" if kinds else "same",
                     "differs": kinds, "recorded_at": marker.recorded_at if marker else None,
                     "message": explain(t, kinds, marker, config, _salt_env(forge, t)) if kinds else None})
    return rows


def plan(forge: ForgeView, entity_types: Iterable[str]) -> list[dict[str, Any]]:
    """:func:`status`, with the proof (:func:`prove`, as a dict) of each type whose marker would change."""
    rows = status(forge, entity_types)
    for r in rows:
        r["proof"] = prove(forge, r["entity_type"]).to_dict() if r["state"] != "same" else None
    return rows


def needs_rotate(row: dict[str, Any]) -> str | None:
    """Why a row of :func:`plan` cannot be recorded without ``--rotate``, or None."""
    proof = row.get("proof")
    if not proof or proof["state"] in ("empty", "proven"):
        return None
    return Proof(proof["read"], proof["checked"], proof["proven"]).explain(row["entity_type"])


def accept(forge: ForgeView, entity_types: Iterable[str], rotate: bool = False) -> list[dict[str, Any]]:
    """Record the configuration in use as the marker of each type; returns :func:`plan` from before.

    The configuration must rebuild the IDs the source holds (:func:`prove`) unless ``rotate``:
    recording one that does not is a deliberate rotation, not a repair."""
    before = plan(forge, entity_types)
    changed = [r["entity_type"] for r in before if r["state"] != "same"]
    check_salts = getattr(forge, "check_salts", None)
    if changed and check_salts is not None:
        check_salts(changed)  # a declared salt_env that is unset is a mistake, not a rotation
    refused = {r["entity_type"]: why for r in before if (why := needs_rotate(r))}
    if refused and not rotate:
        first, why = next(iter(refused.items()))
        more = len(refused) - 1
        raise IDConfigMismatchError(
            f"entity type {first!r}: {why}"
            + (f" (and {more} other entity type{'s' if more > 1 else ''})" if more else "")
            + "; nothing recorded. Run 'ids accept' with the configuration that wrote the data, or add --rotate to "
            "record this one on purpose (existing IDs keep their old values)",
            mismatches={t: [f"unproven_{r['proof']['state']}"] for r in before if (t := r["entity_type"]) in refused})
    if changed:
        _write(forge, [Marker.of(_config(forge, t), t) for t in changed])
        forge.__dict__.setdefault("_id_markers_ok", set()).update(changed)
    return before
