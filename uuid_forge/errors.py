"""One error hierarchy for the whole package.

Every error uuid-forge raises on purpose derives from :class:`UUIDForgeError`, so callers can
catch one class. Errors about bad values also derive from the builtin they refine
(``TypeError``/``ValueError``/``LookupError``), so code written for the 0.1.x API keeps working.
"""

from __future__ import annotations

from typing import Any


class UUIDForgeError(Exception):
    """Base class of every error raised by uuid-forge."""


class CanonicalError(UUIDForgeError):
    """A key value without a canonical form; ``path`` says where it was found (``kwargs.items[2]``)."""

    where: list[str]  # path segments, innermost last, filled in as the error rises
    reason: str
    path: str


class CanonicalTypeError(CanonicalError, TypeError):
    """A key value has a type the canonical form does not support."""


class CanonicalValueError(CanonicalError, ValueError):
    """A key value has a supported type but an invalid value (NaN, naive datetime, ...)."""


class DecodeError(UUIDForgeError, ValueError):
    """A text does not match any known UUID form."""


class TargetError(UUIDForgeError, ValueError):
    """A value does not fit what a target (DNS label, ES _id, AMQP shortstr, ...) accepts."""


class ConfigError(UUIDForgeError, ValueError):
    """The configuration (arguments, environment, or TOML file) is invalid."""


class IDConfigMismatchError(ConfigError):
    """The ID configuration in use differs from the one the source's entity type was written with.

    ``mismatches`` maps each entity type to what differs in kind (``salt``, ``salt_missing``,
    ``secret_added``, ``namespace``, ``scheme``, ...), never the values.
    """

    def __init__(self, message: str, *, mismatches: dict[str, list[str]] | None = None) -> None:
        super().__init__(message)
        self.mismatches = mismatches or {}


class PrivateFileError(UUIDForgeError):
    """A private file (the journal, an ``--output`` file) was refused or could not be written.

    The message names the file: a symlink at its path, a full disk, a corrupt journal.
    """


class JournalError(PrivateFileError):
    """The journal cannot be used (corrupt, full, locked, unreadable); the message names its path."""


class SpillError(PrivateFileError):
    """An audit's temporary file of a message log's latest state could not be written or read."""


class ValidationError(UUIDForgeError, ValueError):
    """A record or entity type is rejected by a store before anything is written."""


class OptionError(ConfigError, ValidationError, TypeError):
    """A store option is unknown or has a bad value; the message names the adapter, the option
    and what is valid (``adapter`` and ``option`` carry the names).

    Also a ValidationError and a TypeError: bad option values were ValidationErrors and unknown
    keywords TypeErrors before options were declared, and callers catching those keep working.
    """

    def __init__(self, message: str, *, adapter: str | None = None, option: str | None = None) -> None:
        super().__init__(message)
        self.adapter = adapter
        self.option = option


class AdapterNotFoundError(UUIDForgeError, LookupError):
    """No adapter is registered for a URL scheme."""


class DriverMissingError(UUIDForgeError, ImportError):
    """The adapter exists but its store driver is not installed."""


class StoreError(UUIDForgeError):
    """A store operation failed. ``store`` names the store (masked URL)."""

    def __init__(self, message: str, *, store: str | None = None) -> None:
        super().__init__(message)
        self.store = store


class StoreUnavailableError(StoreError):
    """The store cannot be reached (connection refused, reset, timed out). Safe to retry."""


class StoreTimeoutError(StoreUnavailableError):
    """The store accepted the connection but did not answer in time."""


class StoreConfigError(StoreError):
    """The store answered but refuses this client: authentication, unknown database, permission.

    Permanent for the store, not for the data: not retried; the batch stays in the journal, so a
    fixed configuration lets ``replay`` finish it."""


class StoreRejectedError(StoreError):
    """The store refused the data itself: a constraint, data or size violation.

    Permanent for the record: retrying the same record fails the same way. Write-through splits
    the batch until the bad records are isolated; they become dead letters in the journal."""


class WriteError(UUIDForgeError):
    """A write-through left a required store unwritten. ``report`` says what happened where."""

    def __init__(self, message: str, *, report: Any = None) -> None:
        super().__init__(message)
        self.report = report


class RepairRefusedError(UUIDForgeError):
    """A repair would delete more than the guard allows (an empty or wrong source, or more
    orphans than ``max_delete``); nothing was changed. ``plan`` is the refused
    :class:`~uuid_forge.repair.RepairPlan`."""

    def __init__(self, message: str, *, plan: Any = None) -> None:
        super().__init__(message)
        self.plan = plan


class MigrationRefusedError(UUIDForgeError):
    """A ``migrate`` phase refused to run or stopped before changing anything it could not prove
    safe (contract before a passing verify, rollback after contract, an unresolved collision);
    the message names why and what to do."""


class ExecutorError(UUIDForgeError):
    """A partition or chunk task could not be run: no broker configured, Celery not installed, a
    worker's configuration differs from the coordinator's, or a task failed (its error, masked)."""
