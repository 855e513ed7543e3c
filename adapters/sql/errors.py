"""Driver errors told apart: a timeout, a permanent error of the store or of the record, or an outage.

The base adapter retries what it takes for an outage; a permanent error read as one would be
retried forever, so each driver's own codes (SQLSTATE, MariaDB error numbers) decide first.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

from uuid_forge.errors import StoreConfigError, StoreError, StoreRejectedError

__all__ = ["DriverTimeout", "classify_error", "is_timeout"]

# MariaDB/MySQL error numbers that are permanent: for the store (access, unknown database) or
# for the record (constraint, data, size). PyMySQL files most of them under OperationalError,
# which would otherwise read as "unreachable" and be retried forever.
_MYSQL_CONFIG = frozenset({1044, 1045, 1046, 1049, 1054, 1142, 1143, 1146, 1227, 1370, 1698})
_MYSQL_RECORD = frozenset({1048, 1062, 1153, 1264, 1265, 1292, 1301, 1366, 1367, 1406, 1451, 1452, 1690, 3140,
                           3146, 3819, 4025, 4038, 4036, 4037, 4039, 4040, 4041, 4042, 4043, 4044, 4045})
# PostgreSQL SQLSTATE classes/codes: 28 authorization, 3D unknown database, 3F unknown schema,
# 42501 insufficient privilege, 42P01 unknown table (a user's table= that is not there) -> store;
# 22 data exception, 23 integrity constraint, 54 program limit (row or index entry too big) -> record.
_PG_CONFIG = ("28", "3D", "3F", "42501", "42P01", "42703")
_PG_RECORD = ("22", "23", "54")
_CONFIG_TEXT = ("password authentication failed", "authentication failed", "does not exist", "no pg_hba.conf entry",
                "access denied", "permission denied", "attempt to write a readonly database")


class DriverTimeout(TimeoutError):
    """A driver timeout, re-raised so the base class reports StoreTimeoutError."""


def is_timeout(err: BaseException) -> bool:
    """A statement or socket timeout (as opposed to a refused or dropped connection)."""
    orig = getattr(err, "orig", err)
    if getattr(orig, "sqlstate", None) == "57014":  # PostgreSQL query_canceled (statement_timeout)
        return True
    code = orig.args[0] if getattr(orig, "args", None) else None
    if code in (1969, 3024):  # MariaDB max_statement_time, MySQL max_execution_time
        return True
    text = str(orig).lower()
    return "timed out" in text or "timeout expired" in text


def classify_error(err: BaseException) -> type[StoreError] | None:
    """Permanent SQL errors by the driver's own code (SQLSTATE, MariaDB error number), then text."""
    if isinstance(err, DriverTimeout):
        return None
    orig = getattr(err, "orig", None) or err
    code = orig.args[0] if getattr(orig, "args", None) and isinstance(orig.args[0], int) else None
    if code is not None:  # MariaDB/MySQL first: PyMySQL also sets a (coarse) sqlstate
        if code in _MYSQL_CONFIG:
            return StoreConfigError
        if code in _MYSQL_RECORD:
            return StoreRejectedError
        return None
    state = getattr(orig, "sqlstate", None)
    if isinstance(state, str) and state:
        if state.startswith(_PG_CONFIG):
            return StoreConfigError
        if state.startswith(_PG_RECORD):
            return StoreRejectedError
        return None
    if isinstance(err, (sa_exc.IntegrityError, sa_exc.DataError)):
        return StoreRejectedError
    text = str(orig).lower()
    if any(t in text for t in _CONFIG_TEXT):
        return StoreConfigError
    return None
