"""Install and check the ``uuid-forge/1`` ID functions in a PostgreSQL database.

Why in the SQL adapter: it is the one place that talks to the database driver (through
SQLAlchemy, as the adapter does, with the adapter's timeouts). The SQL text comes from
:mod:`uuid_forge.pgfunctions`, the cases from :mod:`uuid_forge.pgcheck`; the command line
(:mod:`uuid_forge.cli.sql`) only prints what these functions return.

Every error is a :mod:`uuid_forge.errors` error whose text names the database by its masked URL
and says what to do: not PostgreSQL, the server encoding not UTF8, an extension the user may not
create (with the SQL a DBA runs), a schema the user may not create functions in, a server that
does not answer.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from uuid_forge.errors import StoreConfigError, StoreError, StoreUnavailableError
from uuid_forge.pgcheck import Case, cases
from uuid_forge.pgfunctions import postgres_functions_sql
from uuid_forge.urls import hide_password, mask_url, scheme_of

from .adapter import SQLAdapter
from .errors import classify_error
from .extensions import EXTENSIONS, extension_schemas

__all__ = ["EXTENSIONS", "CaseResult", "CheckReport", "InstallReport", "check_functions", "install_functions"]

_MIN_VERSION = 130000  # normalize(text, NFC) came with PostgreSQL 13


@dataclass
class CaseResult:
    """One case run on the server: passed or not, and what the server gave instead."""

    label: str
    origin: str
    passed: bool
    detail: str = ""


@dataclass
class CheckReport:
    """The cases run against the installed functions of one schema."""

    url: str
    schema: str
    results: list[CaseResult] = field(default_factory=list)

    @property
    def passed(self) -> int:
        return sum(r.passed for r in self.results)

    @property
    def failed(self) -> int:
        return len(self.results) - self.passed

    def as_dict(self) -> dict[str, Any]:
        return {"url": self.url, "schema": self.schema, "passed": self.passed, "failed": self.failed,
                "cases": [vars(r) for r in self.results]}


@dataclass
class InstallReport:
    """What an install found and created, and the check run in its transaction before the commit."""

    url: str
    schema: str
    server: str
    extensions: dict[str, str] = field(default_factory=dict)  # name -> "created" | "present (in SCHEMA)"
    schema_state: str = "present"
    functions: dict[str, str] = field(default_factory=dict)  # signature -> "created" | "replaced"
    check: CheckReport | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"url": self.url, "schema": self.schema, "server": self.server, "schema_state": self.schema_state,
                "extensions": self.extensions, "functions": self.functions,
                "check": None if self.check is None else {"passed": self.check.passed, "failed": self.check.failed}}


def _engine(url: str) -> sa.Engine:
    """An engine for ``url`` (a PostgreSQL URL, or a configured store's URL with its options)."""
    scheme = scheme_of(url)
    if not scheme.startswith("postgres"):
        raise StoreConfigError(f"{mask_url(url)} is a {scheme or 'scheme-less'} URL, not PostgreSQL: the ID "
                               "functions run inside PostgreSQL only (give a postgresql:// URL)")
    adapter = SQLAdapter(url)  # the adapter's URL options, driver and timeouts; only its engine is used
    return adapter._engine  # same package: the connection the adapter would open


def _message(err: BaseException, url: str) -> str:
    """The server's own message, first line only, with no piece of the URL's password in it."""
    orig = getattr(err, "orig", None) or err
    return hide_password(str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__, url)


@contextmanager
def _connection(url: str) -> Iterator[sa.Connection]:
    """A connection to a PostgreSQL server (checked: PostgreSQL 13+, UTF8), errors said plainly."""
    engine = _engine(url)
    shown = mask_url(url)
    try:
        try:
            conn = engine.connect()
        except sa_exc.DBAPIError as err:
            if classify_error(err) is StoreConfigError:
                raise StoreConfigError(f"PostgreSQL at {shown} refused the connection: {_message(err, url)}") from None
            raise StoreUnavailableError(f"PostgreSQL at {shown} is not reachable: {_message(err, url)}") from None
        with conn:
            version, num, encoding = conn.execute(sa.text(
                "SELECT version(), current_setting('server_version_num')::int, "
                "current_setting('server_encoding')")).one()
            if "PostgreSQL" not in version:
                raise StoreConfigError(f"{shown} is not PostgreSQL ({version.split(',')[0]}): the ID functions "
                                       "need PostgreSQL 13 or later")
            if num < _MIN_VERSION:
                raise StoreConfigError(f"{shown} runs {version.split(',')[0]}: the ID functions need PostgreSQL 13 "
                                       "or later (normalize() for NFC)")
            if encoding != "UTF8":
                raise StoreConfigError(f"{shown}: the server encoding is {encoding}, not UTF8: the ID functions "
                                       "hash UTF-8 text and normalise it to NFC, which needs a UTF8 database")
            yield conn
    finally:
        engine.dispose()


def _functions(conn: sa.Connection, schema: str) -> set[str]:
    rows = conn.execute(sa.text(
        "SELECT p.oid::regprocedure::text FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace "
        "WHERE n.nspname = :s AND p.proname LIKE 'uuid\\_forge\\_%'"), {"s": schema}).scalars()
    return set(rows)


def _server(conn: sa.Connection) -> str:
    db, user, version = conn.execute(sa.text(
        "SELECT current_database(), current_user, current_setting('server_version')")).one()
    return f"PostgreSQL {version}, database {db}, user {user}"


def _extensions(conn: sa.Connection, url: str, report: InstallReport) -> None:
    """Each extension the functions call: present, or created now (in a savepoint each, so a refusal
    of one is said by name, with the statement a DBA runs)."""
    present = extension_schemas(conn)
    db, user = conn.execute(sa.text("SELECT current_database(), current_user")).one()
    refused: list[str] = []
    for name in EXTENSIONS:
        if name in present:
            report.extensions[name] = f"present (in schema {present[name]})"
            continue
        try:
            with conn.begin_nested():
                conn.exec_driver_sql(f'CREATE EXTENSION IF NOT EXISTS "{name}"')
            report.extensions[name] = f"created (in schema {extension_schemas(conn)[name]})"
        except sa_exc.DBAPIError as err:
            refused.append(f"{name} ({_message(err, url)})")
    if refused:
        statements = " ".join(f'CREATE EXTENSION IF NOT EXISTS "{n}";' for n in EXTENSIONS if n not in present)
        raise StoreConfigError(
            f"{mask_url(url)}: user {user} cannot create the extension {' or '.join(refused)}. "
            f"A DBA (a superuser, or the database owner where the extension is trusted) runs, in database {db}: "
            f"{statements} then run --install again (nothing was installed)")


def _schema(conn: sa.Connection, url: str, schema: str, report: InstallReport) -> None:
    exists = conn.execute(sa.text("SELECT 1 FROM pg_namespace WHERE nspname = :s"), {"s": schema}).first()
    if exists:
        return
    try:
        with conn.begin_nested():
            conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    except sa_exc.DBAPIError as err:
        raise StoreConfigError(f"{mask_url(url)}: schema {schema} does not exist and cannot be created: "
                               f"{_message(err, url)} (a DBA runs: CREATE SCHEMA {schema};)") from None
    report.schema_state = "created"


def install_functions(url: str, schema: str = "public") -> InstallReport:
    """Create (or replace) the ID functions in ``schema``, in one transaction, and check them in it.

    Idempotent: ``CREATE OR REPLACE``; the extensions only when missing. A case that fails rolls
    the whole install back (functions that give another ID are worse than none).
    """
    postgres_functions_sql(schema)  # validates the schema name before any connection
    with _connection(url) as conn:
        report = InstallReport(mask_url(url), schema, _server(conn))
        conn.commit()  # the checks above ran in their own (autobegun) transaction
        with conn.begin() as tx:
            _extensions(conn, url, report)
            _schema(conn, url, schema, report)
            where = extension_schemas(conn)
            # the functions name the schemas the extensions are in (no search_path per call)
            sql = postgres_functions_sql(schema, where["uuid-ossp"], where["pgcrypto"])
            before = _functions(conn, schema)
            try:
                with conn.begin_nested():
                    # the driver's own cursor, no parameters: many statements, and '%' is not a placeholder
                    cursor = conn.connection.cursor()
                    try:
                        cursor.execute(sql)
                    finally:
                        cursor.close()
            except (sa_exc.DBAPIError, conn.dialect.loaded_dbapi.Error) as err:  # the raw cursor: the driver's own
                state = getattr(getattr(err, "orig", err), "sqlstate", None)
                user = conn.execute(sa.text("SELECT current_user")).scalar()
                hint = f" (a DBA runs: GRANT CREATE ON SCHEMA {schema} TO {user};)" if state == "42501" else ""
                raise StoreConfigError(f"{mask_url(url)}: cannot create the functions in schema {schema}: "
                                       f"{_message(err, url)}{hint}; nothing was installed") from None
            after = _functions(conn, schema)
            report.functions = {sig: ("replaced" if sig in before else "created") for sig in sorted(after)}
            report.check = _run_cases(conn, url, schema)
            if report.check.failed:
                tx.rollback()
                failed = "; ".join(f"{r.label}: {r.detail}" for r in report.check.results if not r.passed)
                raise StoreError(f"{mask_url(url)}: the functions gave another answer than the Python library "
                                 f"({report.check.failed} of {len(report.check.results)} cases: {failed}); "
                                 "the install was rolled back")
    return report


def check_functions(url: str, schema: str = "public") -> CheckReport:
    """Run every case against the functions installed in ``schema`` (read only, rolled back)."""
    postgres_functions_sql(schema)  # the same schema-name rule as the install
    with _connection(url) as conn:
        missing = {"uuid_forge_id", "uuid_forge_id_keyed", "uuid_forge_name"} - {
            sig.partition("(")[0].rpartition(".")[2] for sig in _functions(conn, schema)}
        if missing:
            raise StoreConfigError(f"{mask_url(url)}: the ID functions are not installed in schema {schema} "
                                   f"(missing {', '.join(sorted(missing))}): run 'uuid-forge sql postgres --install'")
        conn.rollback()  # a new transaction, read only from its start
        conn.exec_driver_sql("SET TRANSACTION READ ONLY")
        report = _run_cases(conn, url, schema)
        conn.rollback()
    return report


def _run_cases(conn: sa.Connection, url: str, schema: str) -> CheckReport:
    report = CheckReport(mask_url(url), schema)
    for case in cases():
        report.results.append(_run_case(conn, schema, case))
    return report


def _call(conn: sa.Connection, schema: str, case: Case) -> tuple[str, Any]:
    params = {"ns": str(case.namespace), "t": case.entity_type, "args": json.dumps(case.args),
              "kwargs": json.dumps(case.kwargs), "key": json.dumps(case.key), "salt": case.salt,
              "secret": case.secret}
    name = conn.execute(sa.text(f"SELECT {schema}.uuid_forge_name(:t, CAST(:args AS jsonb), CAST(:kwargs AS jsonb), "
                                ":salt)"), params).scalar_one()
    if case.secret is None:
        sql = f"SELECT {schema}.uuid_forge_id(CAST(:ns AS uuid), :t, CAST(:key AS jsonb), :salt)"
    else:
        sql = (f"SELECT {schema}.uuid_forge_id_keyed(CAST(:ns AS uuid), :t, CAST(:key AS jsonb), :salt, "
               "CAST(:secret AS text))")
    return name, conn.execute(sa.text(sql), params).scalar_one()


def _run_case(conn: sa.Connection, schema: str, case: Case) -> CaseResult:
    """One case in a savepoint: an expected error leaves the transaction usable."""
    try:
        with conn.begin_nested():
            name, ident = _call(conn, schema, case)
    except sa_exc.DBAPIError as err:
        orig = getattr(err, "orig", None) or err
        text = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
        if case.error is None:
            return CaseResult(case.label, case.origin, False, f"an error instead of {case.uuid}: {text[:200]}")
        if case.error in text:
            return CaseResult(case.label, case.origin, True, f"error naming {case.error}")
        return CaseResult(case.label, case.origin, False, f"an error not naming {case.error}: {text[:200]}")
    if case.error is not None:
        return CaseResult(case.label, case.origin, False, f"the ID {ident} instead of an error at {case.error}")
    if name != case.name:
        return CaseResult(case.label, case.origin, False, "another canonical name than the Python library's")
    if str(ident) != str(case.uuid):
        return CaseResult(case.label, case.origin, False, f"{ident} instead of {case.uuid}")
    return CaseResult(case.label, case.origin, True, str(ident))

