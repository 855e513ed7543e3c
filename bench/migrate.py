"""Benchmark: backfilling deterministic IDs into an existing PostgreSQL table, in the database
against through Python, in one run.

Run as a script:  python bench/migrate.py [--n 100000] [--rounds 3] [--batch 10000]

The table is a users table with serial IDs and an ``email`` business key, and an empty ``new_id``
column (the expand step of a migration). Both sides fill ``new_id`` batch by batch, each batch in
its own transaction, and the result is checked to be the same IDs:

* in the database, as ``uuid-forge migrate expand`` fills it (adapters/sql/migration.ShadowColumns.fill:
  ranges of the primary key, ``UPDATE ... SET new_id = <expression> WHERE new_id IS NULL``; for
  text key columns the expression joins plain values into the name and calls
  ``uuid_generate_v5`` once, any other row takes ``uuid_forge_id``): rows never leave the server;
* in the database, the function alone: ``UPDATE ... SET new_id = uuid_forge_id(ns, 'user',
  jsonb_build_object('email', email), salt) WHERE serial_id range``;
* through Python, bulk: read a batch of (serial_id, email), ``UUIDGenerator.generate_many`` (the
  library's fastest path), write back with one ``UPDATE ... FROM unnest(ids, uuids)``;
* through Python, bulk by COPY: the same read and IDs, the pairs COPYed (binary) into a
  temporary table and one ``UPDATE ... FROM`` it;
* through Python, row by row: the same read and IDs, written back with one ``UPDATE ... WHERE
  serial_id = %s`` per row (``executemany``), the statements an ORM's flush sends;
* through the SQLAlchemy ORM: the backfill a user of the ancestor's repository pattern writes, a
  mapped ``User`` class, each batch's rows loaded as objects, ``row.new_id =
  generate_uuid_only(...)`` per row, one ``session.commit()`` per batch. The slowest side, and the
  shape most hand-written backfills take; printed apart, so no claim rests on it alone.

Two more runs measure floors: the same UPDATEs with ``uuid_generate_v5(ns, email)`` (no canonical
name, not our ID: the write plus the hash), and with one constant UUID (the write alone). Python
time / floor time is the most any in-database backfill could gain over the Python path here.

Target (issue 21): the in-database backfill at least 5x the rows per second of "the same backfill
through Python". Both Python sides are printed with their ratio, each labelled: the 5x is claimed
only against the side where it was measured.

The whole migration: integration/migration_world.py's world (``--world-users`` users and
``--world-orders`` orders under serials, version-4 IDs and ObjectIds in PostgreSQL, Redis, MongoDB,
Elasticsearch and files) moved by ``uuid-forge migrate`` plan, expand, verify and contract
(in-process, the CLI's own functions), reported as entities (users + orders) per second and
entries (each entity in each store that holds it) per second, from the start of plan to the end
of contract. Skipped, saying so, when a store cannot be reached.

The last line (RESULT ...) is for scripts.
"""

from __future__ import annotations

import argparse
import tempfile
import time
import uuid
from pathlib import Path
from typing import ClassVar

from common import GEN, median, store_urls

from uuid_forge.pgfunctions import postgres_functions_sql

SCHEMA = "uf_bench_migrate"


def _setup(conn, n: int) -> None:  # type: ignore[no-untyped-def]
    conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    conn.execute(f"CREATE SCHEMA {SCHEMA}")
    conn.execute(postgres_functions_sql(SCHEMA))
    conn.execute(f"CREATE TABLE {SCHEMA}.users (serial_id int PRIMARY KEY, email text NOT NULL, name text, new_id uuid)")
    conn.execute(f"INSERT INTO {SCHEMA}.users SELECT i, 'user' || i || '@example.com', 'User ' || i, NULL "
                 "FROM generate_series(1, %s) AS i", (n,))
    conn.execute(f"VACUUM ANALYZE {SCHEMA}.users")


def _reset(conn) -> None:  # type: ignore[no-untyped-def]
    conn.execute(f"UPDATE {SCHEMA}.users SET new_id = NULL")
    conn.execute(f"VACUUM {SCHEMA}.users")


def in_database(conn, n: int, batch: int, ns: uuid.UUID, salt: str) -> None:  # type: ignore[no-untyped-def]
    for lo in range(1, n + 1, batch):
        conn.execute(f"UPDATE {SCHEMA}.users SET new_id = {SCHEMA}.uuid_forge_id(%s, 'user', "
                     "jsonb_build_object('email', email), %s) WHERE serial_id >= %s AND serial_id < %s",
                     (ns, salt, lo, lo + batch))


def migrate_fill(url: str, n: int, batch: int, ns: uuid.UUID, salt: str) -> None:
    """What ``uuid-forge migrate expand`` runs for an in-place table: ShadowColumns.fill."""
    import sqlalchemy as sa

    from adapters.sql.migration import ShadowColumns

    engine = sa.create_engine(url, hide_parameters=True)
    try:
        filled = ShadowColumns(engine, SCHEMA).fill("users", "serial_id", "new_id", ns, "user", {"email": "email"},
                                                   salt, None, batch)
        assert filled == n, filled
    finally:
        engine.dispose()


def write_floor(conn, n: int, batch: int, ns: uuid.UUID) -> None:  # type: ignore[no-untyped-def]
    """The same UPDATEs with the cheapest UUID the server makes (uuid_generate_v5 of the email, no
    canonical name): the write alone, the floor under any in-database backfill. Not a uuid-forge ID."""
    for lo in range(1, n + 1, batch):
        conn.execute(f"UPDATE {SCHEMA}.users SET new_id = uuid_generate_v5(%s, email) "
                     "WHERE serial_id >= %s AND serial_id < %s", (ns, lo, lo + batch))


def row_by_row(conn, n: int, batch: int) -> None:  # type: ignore[no-untyped-def]
    """As an ORM backfill: the batch read, its IDs computed, one UPDATE per row (executemany),
    one transaction per batch."""
    for lo in range(1, n + 1, batch):
        with conn.transaction():
            rows = conn.execute(f"SELECT serial_id, email FROM {SCHEMA}.users WHERE serial_id >= %s AND "
                                "serial_id < %s", (lo, lo + batch)).fetchall()
            ids = GEN.generate_many("user", [{"email": email} for _, email in rows])
            with conn.cursor() as cur:
                cur.executemany(f"UPDATE {SCHEMA}.users SET new_id = %s WHERE serial_id = %s",
                                [(i, r[0]) for i, r in zip(ids, rows, strict=True)])


def through_python(conn, n: int, batch: int) -> None:  # type: ignore[no-untyped-def]
    for lo in range(1, n + 1, batch):
        rows = conn.execute(f"SELECT serial_id, email FROM {SCHEMA}.users WHERE serial_id >= %s AND serial_id < %s",
                            (lo, lo + batch)).fetchall()
        ids = GEN.generate_many("user", [{"email": email} for _, email in rows])
        conn.execute(f"UPDATE {SCHEMA}.users AS u SET new_id = v.id FROM unnest(%s::int[], %s::uuid[]) AS v(sid, id) "
                     "WHERE u.serial_id = v.sid", ([r[0] for r in rows], ids))


def through_python_copy(conn, n: int, batch: int) -> None:  # type: ignore[no-untyped-def]
    """The other bulk write a competent Python backfill uses: the batch's (serial_id, id) pairs
    COPYed (binary) into a temporary table, then one ``UPDATE ... FROM`` it; one transaction per
    batch."""
    conn.execute("CREATE TEMP TABLE IF NOT EXISTS uf_bench_ids (sid int PRIMARY KEY, id uuid)")
    for lo in range(1, n + 1, batch):
        with conn.transaction():
            rows = conn.execute(f"SELECT serial_id, email FROM {SCHEMA}.users WHERE serial_id >= %s AND "
                                "serial_id < %s", (lo, lo + batch)).fetchall()
            ids = GEN.generate_many("user", [{"email": email} for _, email in rows])
            conn.execute("TRUNCATE uf_bench_ids")
            with conn.cursor() as cur, cur.copy("COPY uf_bench_ids (sid, id) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(["int4", "uuid"])
                for (sid, _), ident in zip(rows, ids, strict=True):
                    copy.write_row((sid, ident))
            conn.execute(f"UPDATE {SCHEMA}.users AS u SET new_id = v.id FROM uf_bench_ids AS v "
                         "WHERE u.serial_id = v.sid")


def through_orm(url: str, n: int, batch: int) -> None:
    """The ORM backfill: a mapped class, rows loaded batch by batch, the ancestor's per-entity
    ``generate_uuid_only`` for each, one commit per batch (SQLAlchemy 2 sends the flush's UPDATEs
    as one executemany)."""
    from sqlalchemy import Integer, Text, Uuid, create_engine, select
    from sqlalchemy.orm import DeclarativeBase, Session, mapped_column

    from uuid_forge import generate_uuid_only

    class Base(DeclarativeBase):
        pass

    class User(Base):
        __tablename__ = "users"
        __table_args__: ClassVar[dict[str, str]] = {"schema": SCHEMA}
        serial_id = mapped_column(Integer, primary_key=True)
        email = mapped_column(Text, nullable=False)
        name = mapped_column(Text)
        new_id = mapped_column(Uuid)

    engine = create_engine(url)
    try:
        with Session(engine) as session:
            for lo in range(1, n + 1, batch):
                users = session.scalars(select(User).where(User.serial_id >= lo, User.serial_id < lo + batch)).all()
                for user in users:
                    user.new_id = generate_uuid_only("user", config=GEN.config, email=user.email)
                session.commit()
                session.expunge_all()
    finally:
        engine.dispose()


def write_constant(conn, n: int, batch: int, ns: uuid.UUID) -> None:  # type: ignore[no-untyped-def]
    """The same UPDATEs writing one constant UUID: the write alone, nothing computed per row."""
    for lo in range(1, n + 1, batch):
        conn.execute(f"UPDATE {SCHEMA}.users SET new_id = %s WHERE serial_id >= %s AND serial_id < %s",
                     (ns, lo, lo + batch))


def _check(conn, n: int) -> str:  # type: ignore[no-untyped-def]
    """Every row filled, a sample equal to the library's IDs; the digest of all IDs, which every
    run (both sides, every round) must give alike."""
    sample = conn.execute(f"SELECT email, new_id FROM {SCHEMA}.users ORDER BY serial_id LIMIT 1000").fetchall()
    assert all(new_id == GEN.generate("user", email=email) for email, new_id in sample)
    missing, digest = conn.execute(f"SELECT count(*) FILTER (WHERE new_id IS NULL), "
                                   f"md5(string_agg(new_id::text, ',' ORDER BY serial_id)) FROM {SCHEMA}.users").fetchone()
    assert missing == 0, f"{missing} rows without new_id"
    return str(digest)


def whole_migration(users: int, orders: int) -> dict[str, float] | str:
    """The whole ``uuid-forge migrate`` (plan, expand, verify, contract) over a seeded
    migration_world: {"seconds", "entities", "entries", and per second of each}, or why it was
    skipped. The world is the integration test's (integration/test_migrate_world.py), with its
    configuration: the serial tables in place, every other store expanded and contracted."""
    from integration.migration_world import ORDER, USER, World, cleanup, new_prefix, seed
    from tests.scaffold import write_forge_toml
    from uuid_forge import Forge
    from uuid_forge import migration as mg
    from uuid_forge.settings import load_settings

    wanted = ["postgres", "redis", "mongodb", "elasticsearch", "file"]
    with store_urls(wanted) as urls, tempfile.TemporaryDirectory(prefix="uf-bench-mig-") as tmp:
        missing = [n for n in wanted if n not in urls]
        if missing:
            return f"skipped: {', '.join(missing)} not reachable"
        world = seed({"postgres": urls["postgres"], "redis": urls["redis"], "mongodb": urls["mongodb"],
                      "elasticsearch": urls["elasticsearch"], "files": urls["file"].removeprefix("file://")},
                     new_prefix("bm"), users, orders)
        try:
            extra = ('[types.user]\nkey = ["email"]\n\n[types.order]\nkey = ["order_no"]\n'
                     'references = { user_id = "user" }\n\n'
                     '[migrate.in_place.users]\nstore = "db"\ntable = "users"\ntype = "user"\n\n'
                     '[migrate.in_place.orders]\nstore = "db"\ntable = "orders"\ntype = "order"\n'
                     'references = { user_id = { to = "users", column = "user_uid" } }\n')
            config = write_forge_toml(Path(tmp) / "uf.toml", world.store_urls(), "db",
                                      namespace=GEN.config.namespace.domain, extra=extra)
            env = {"UUID_FORGE_SALT": GEN.config.salt}
            settings = load_settings(str(config), env=env)
            _install(urls["postgres"], world.schema)
            with Forge.from_settings(settings) as forge:
                m = settings.migrate
                started = time.perf_counter()
                phases = [lambda: mg.plan(forge, m, leave_unmapped=True), lambda: mg.expand(forge, m),
                          lambda: mg.verify(forge, m), lambda: mg.contract(forge, m, max_delete="100%")]
                for phase in phases:
                    out = phase()
                    if out.stopped:
                        return f"failed: {out.phase} stopped: {out.stopped}"
                seconds = time.perf_counter() - started
            entities = users + orders
            entries = sum(users * (USER in types) + orders * (ORDER in types) for _, types in World.STORE_TYPES)
            return {"seconds": seconds, "entities": entities, "entries": entries,
                    "entities_per_s": entities / seconds, "entries_per_s": entries / seconds}
        finally:
            cleanup(world)


def _install(url: str, schema: str) -> None:
    """The ID function in the world's schema (what ``uuid-forge sql postgres --install`` does)."""
    import psycopg

    with psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://", 1), autocommit=True) as conn:
        conn.execute(postgres_functions_sql(schema))


def main() -> None:
    import psycopg

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--world-users", type=int, default=2_000, help="users of the whole-migration world")
    parser.add_argument("--world-orders", type=int, default=5_000, help="orders of the whole-migration world")
    args = parser.parse_args()
    ns, salt = GEN.config.namespace_uuid, GEN.config.salt
    sides = ("migrate fill", "in database", "Python bulk", "Python COPY", "Python row by row", "Python ORM", "write floor",
             "write constant")
    with store_urls(["postgres"]) as urls:
        if "postgres" not in urls:
            raise SystemExit("PostgreSQL is not reachable")
        conninfo = urls["postgres"].replace("postgresql+psycopg://", "postgresql://", 1)
        with psycopg.connect(conninfo, autocommit=True) as conn:
            _setup(conn, args.n)
            try:
                times: dict[str, list[float]] = {side: [] for side in sides}
                digests: set[str] = set()
                runs = {"migrate fill": lambda: migrate_fill(urls["postgres"], args.n, args.batch, ns, salt),
                        "in database": lambda: in_database(conn, args.n, args.batch, ns, salt),
                        "Python bulk": lambda: through_python(conn, args.n, args.batch),
                        "Python COPY": lambda: through_python_copy(conn, args.n, args.batch),
                        "Python row by row": lambda: row_by_row(conn, args.n, args.batch),
                        "Python ORM": lambda: through_orm(urls["postgres"], args.n, args.batch),
                        "write floor": lambda: write_floor(conn, args.n, args.batch, ns),
                        "write constant": lambda: write_constant(conn, args.n, args.batch, ns)}
                for _ in range(args.rounds):  # alternate, so drift of the machine hits every side
                    for label in sides:
                        _reset(conn)
                        t = time.perf_counter()
                        runs[label]()
                        times[label].append(time.perf_counter() - t)
                        if not label.startswith("write"):
                            digests.add(_check(conn, args.n))
                assert len(digests) == 1, "the backfills gave different IDs"
            finally:
                conn.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    whole = whole_migration(args.world_users, args.world_orders)
    fill, fn, py, cp, rows, orm, floor, const = (median(times[side]) for side in sides)
    db = fill  # the ratios are of what migrate runs
    print(f"backfill of {args.n} rows in batches of {args.batch}, median of {args.rounds} rounds:")
    print(f"  in the database, migrate expand's fill:     {fill:.2f} s, {args.n / fill:,.0f} rows/s")
    print(f"  in the database, uuid_forge_id alone:       {fn:.2f} s, {args.n / fn:,.0f} rows/s")
    print(f"  through Python, bulk (one UPDATE ... unnest): {py:.2f} s, {args.n / py:,.0f} rows/s")
    print(f"  through Python, bulk (COPY + UPDATE FROM):  {cp:.2f} s, {args.n / cp:,.0f} rows/s")
    print(f"  through Python, row by row (executemany):   {rows:.2f} s, {args.n / rows:,.0f} rows/s")
    print(f"  through the SQLAlchemy ORM (objects, commit per batch): {orm:.2f} s, {args.n / orm:,.0f} rows/s")
    print(f"  the fill vs Python bulk:       {py / db:.2f}x (target >= 5x: {'met' if py / db >= 5 else 'NOT met'})")
    print(f"  the fill vs Python COPY:       {cp / db:.2f}x (target >= 5x: {'met' if cp / db >= 5 else 'NOT met'})")
    print(f"  the fill vs Python row by row: {rows / db:.2f}x (target >= 5x: {'met' if rows / db >= 5 else 'NOT met'})")
    print(f"  the fill vs the ORM:           {orm / db:.2f}x (target >= 5x: {'met' if orm / db >= 5 else 'NOT met'})")
    print(f"  the write alone (same UPDATEs, uuid_generate_v5(ns, email)): {floor:.2f} s, {args.n / floor:,.0f} rows/s;"
          f" no in-database backfill can beat Python bulk by more than {py / floor:.2f}x here")
    print(f"  the write of a constant (same UPDATEs, nothing computed per row): {const:.2f} s, "
          f"{args.n / const:,.0f} rows/s; the hard ceiling over Python bulk: {py / const:.2f}x, over COPY: "
          f"{cp / const:.2f}x")
    print(f"  same IDs on every side: yes (md5 of all {args.n} IDs: {digests.pop()})")
    if isinstance(whole, dict):
        print(f"  whole migration (plan+expand+verify+contract, {args.world_users} users + {args.world_orders} orders "
              f"in 6 stores, {whole['entries']:.0f} entries): {whole['seconds']:.1f} s, "
              f"{whole['entities_per_s']:,.0f} entities/s, {whole['entries_per_s']:,.0f} entries/s")
    else:
        print(f"  whole migration: {whole}")
    print(f"RESULT migrate_backfill n={args.n} batch={args.batch} rounds={args.rounds} db_rows_per_s={args.n / db:.0f} "
          f"function_alone_rows_per_s={args.n / fn:.0f} "
          f"python_bulk_rows_per_s={args.n / py:.0f} python_copy_rows_per_s={args.n / cp:.0f} "
          f"python_row_rows_per_s={args.n / rows:.0f} ratio_bulk={py / db:.2f} ratio_copy={cp / db:.2f} "
          f"ratio_row={rows / db:.2f} python_orm_rows_per_s={args.n / orm:.0f} ratio_orm={orm / db:.2f} floor_rows_per_s={args.n / floor:.0f} ceiling_ratio={py / floor:.2f} "
          f"constant_rows_per_s={args.n / const:.0f} whole_migration_entities_per_s="
          + (f"{whole['entities_per_s']:.0f}" if isinstance(whole, dict) else "na"))


if __name__ == "__main__":
    main()
