"""Benchmark against the peer on its own ground: reladiff and ``uuid-forge audit`` on the same
PostgreSQL-to-PostgreSQL data, consistent and with drift, in one run, alternating.

Run as a script (needs ``pip install reladiff psycopg2-binary``, the peer's own driver)::

    python bench/peer.py [--n 200000] [--rounds 5] [--drift 0.001] [--records]

uuid-forge writes N entities into two PostgreSQL databases (the source: the test database,
``UUID_FORGE_TEST_POSTGRES_URL``; the copy: the same server's database of that name + ``2``, or
``--copy-url``), one table ``uf_<type>`` in each (id uuid, data json, ...). Then, alternating
round by round:

* reladiff 0.6 (data-diff's maintained fork): ``diff_tables`` on key ``id`` with ``data`` as an
  extra column (its default hashdiff: per-segment checksums in each database, bisection), the
  differing IDs collected;
* ``Forge.audit(type)``: the hashed path (uuid_forge.rangehash) with every finding described, as
  ``uuid-forge audit`` runs it (without the CLI's process start); ``--records`` also times the
  record path (``hashed=False``) once per state.

Then ``--drift`` of the copy's rows are changed (half: a field edited in ``data``; half: deleted)
and both are timed again. Both must find exactly the same IDs. Prints medians and the ratio.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import tempfile
import time
import uuid
from typing import Any

from common import median
from write import IDS, entities

from uuid_forge import Forge, open_store
from uuid_forge.forge import StoreHandle
from uuid_forge.journal import Journal


def _plain(url: str) -> str:
    """A SQLAlchemy URL as the peer takes it (no +driver)."""
    scheme, rest = url.split("://", 1)
    return scheme.split("+")[0] + "://" + rest


def reladiff_ids(url1: str, url2: str, table: str) -> set[str]:
    import logging

    from reladiff import connect_to_table, diff_tables

    logging.getLogger("sqeleton").setLevel(logging.ERROR)  # its note that json has no special handling, per run

    t1 = connect_to_table(_plain(url1), table, "id")
    t2 = connect_to_table(_plain(url2), table, "id")
    try:
        return {str(row[0]) for _, row in diff_tables(t1, t2, extra_columns=("data",))}
    finally:
        for t in (t1, t2):
            t.database.close()


def forge_ids(forge: Forge, et: str, hashed: bool = True) -> tuple[set[str], Any]:
    report = forge.audit(et, hashed=hashed)
    return {f.id for f in report.findings if f.store == "copy"}, report


def drift(url: str, table: str, fraction: float, seed: int = 7) -> int:
    """Change ``fraction`` of the rows: half edited in their data, half deleted. Returns how many."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            ids = sorted(str(r[0]) for r in conn.execute(sa.text(f'SELECT id FROM "{table}"')))
            picked = random.Random(seed).sample(ids, max(2, int(len(ids) * fraction)))
            edited, deleted = picked[::2], picked[1::2]
            for ident in edited:
                text = conn.execute(sa.text(f'SELECT CAST(data AS text) FROM "{table}" WHERE id = CAST(:i AS uuid)'),
                                    {"i": ident}).scalar()
                data = json.loads(str(text))
                data["plan"] = "changed"
                conn.execute(sa.text(f'UPDATE "{table}" SET data = CAST(:d AS json) WHERE id = CAST(:i AS uuid)'),
                             {"d": json.dumps(data, separators=(",", ":"), sort_keys=True), "i": ident})
            conn.execute(sa.text(f'DELETE FROM "{table}" WHERE id = ANY(CAST(:ids AS uuid[]))'), {"ids": deleted})
            conn.execute(sa.text(f'ANALYZE "{table}"'))
        return len(picked)
    finally:
        engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--drift", type=float, default=0.001)
    parser.add_argument("--records", action="store_true", help="also time the record path once per state")
    parser.add_argument("--copy-url", default=None)
    args = parser.parse_args()
    url1 = os.environ.get("UUID_FORGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/uuid_forge")
    url2 = args.copy_url or url1 + "2"
    et = f"peer{uuid.uuid4().hex[:8]}"
    table = f"uf_{et}"
    forge = Forge([StoreHandle("source", open_store(url1), source=True), StoreHandle("copy", open_store(url2))],
                  ids=IDS, journal=Journal(tempfile.mkdtemp(prefix="uf-peer-j-") + "/j.sqlite3"))
    try:
        started = time.perf_counter()
        for start in range(0, args.n, 50_000):
            forge.write_many(entities(et, min(args.n, start + 50_000))[start:])
        import sqlalchemy as sa

        for url in (url1, url2):
            engine = sa.create_engine(url)
            with engine.begin() as conn:
                conn.execute(sa.text(f'ANALYZE "{table}"'))
            engine.dispose()
        print(f"wrote {args.n:,} entities into both databases in {time.perf_counter() - started:.1f}s")
        for state in ("consistent", f"drift {args.drift:.2%}"):
            if state != "consistent":
                changed = drift(url2, table, args.drift)
                print(f"changed {changed} rows of the copy (half edited, half deleted)")
            ours: list[float] = []
            peer: list[float] = []
            found_ours: set[str] = set()
            found_peer: set[str] = set()
            report = None
            for _ in range(args.rounds):
                t = time.perf_counter()
                found_peer = reladiff_ids(url1, url2, table)
                peer.append(time.perf_counter() - t)
                t = time.perf_counter()
                found_ours, report = forge_ids(forge, et)
                ours.append(time.perf_counter() - t)
            assert found_ours == found_peer, (len(found_ours), len(found_peer))
            assert report is not None
            hashed = report.hashed.get("copy", {})
            line = (f"{args.n:>9,} {state:<13} uuid-forge {median(ours):6.2f}s  reladiff {median(peer):6.2f}s  "
                    f"ratio {median(ours) / median(peer):4.2f}  differences {len(found_ours)} (same)  "
                    f"hashes settled {hashed.get('hashed_records', 0):,}, read {hashed.get('read_records', 0):,}")
            if args.records:
                t = time.perf_counter()
                plain, _ = forge_ids(forge, et, hashed=False)
                assert plain == found_ours
                line += f"  record path {time.perf_counter() - t:.2f}s"
            print(line, flush=True)
    finally:
        forge.drop(et)
        forge.close()


if __name__ == "__main__":
    main()
