"""Benchmark: a full audit of N entities across the stores, against two baselines in the same run.

Run as a script:  python bench/audit.py [--n 20000] [--rounds 3] [--ancestor-n 1000]

* ours: ``Forge.audit(entity_type)``: streams (id, fingerprint) per ID range from every store,
  timed twice: over every store, and over the stores the ancestor's pattern can check at all (all
  but the RabbitMQ message log, which has no lookup by ID), so that both sides do the same work;
* the ancestor's documented ``ConsistencyValidator`` pattern: for each entity, look it up in each
  store one at a time (timed on ``--ancestor-n`` entities, compared per entity);
* a bare pass over the slowest store (``adapter.scan``: IDs and the fingerprints of the data read, nothing compared);
* hand-written content scans (``bench/handwritten/scans.py``): each store's IDs and data read with
  its raw driver and hashed, compared with the source's; the stores in parallel threads, as ours.

Targets: >= 20x faster than the ancestor's pattern (same stores), within 3x of the bare scan, and
within 2x of the hand-written content scans (both read and hash every record's data).
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
import uuid
from typing import Any

from common import median, median_time, store_urls
from handwritten.scans import SCANS, content_audit
from write import BASELINE, IDS, STORES, _url, cleanup, entities

from uuid_forge import Forge, open_store
from uuid_forge.forge import StoreHandle
from uuid_forge.journal import Journal


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ancestor-n", type=int, default=1_000)
    parser.add_argument("--stores", default=",".join(STORES))
    args = parser.parse_args()
    with store_urls(args.stores.split(",")) as urls:
        if "postgres" not in urls:
            raise SystemExit("PostgreSQL (the source of truth here) is not reachable")
        et = f"ba{uuid.uuid4().hex[:8]}"
        readable = {n: u for n, u in urls.items() if n != "amqp"}  # a message log has no lookup by ID
        handles = [StoreHandle(n, open_store(_url(n, u, et)), source=(n == "postgres")) for n, u in urls.items()]
        forge = Forge(handles, ids=IDS, journal=Journal(tempfile.mkdtemp(prefix="uf-bench-j-") + "/j.sqlite3"))
        try:
            items = entities(et, args.n)
            forge.write_many(items)
            # the same adapters, on the stores the ancestor's validator can look at
            same = Forge([h for h in forge.stores if h.name in readable], ids=IDS, journal=None)
            audits, same_audits, scans = [], [], {h.name: [] for h in forge.stores}
            unhashed: list[float] = []  # the record path (--no-hash), where the stores can hash
            hashed_counts: dict[str, Any] = {}
            for _ in range(args.rounds):
                for f, times in ((forge, audits), (same, same_audits)):
                    reports: list[Any] = []
                    times.append(median_time(lambda: reports.append(f.audit(et))))  # noqa: B023 - runs now
                    assert reports[0].consistent
                    hashed_counts = {n: dict(c) for n, c in reports[0].hashed.items()}
                plain: list[Any] = []
                unhashed.append(median_time(lambda: plain.append(forge.audit(et, hashed=False))))  # noqa: B023
                assert plain[0].consistent and plain[0].hashed == {}
                for h in forge.stores:
                    scans[h.name].append(median_time(lambda: sum(1 for _ in h.adapter.scan(et))))
            # the ancestor's validator: one lookup per entity per store, with the raw clients
            ids = forge.generator.generate_many(et, [k for _, k, _ in items[: args.ancestor_n]])
            mods = {n: importlib.import_module(f"handwritten.{BASELINE[n]}") for n in readable}
            ctxs = {n: mods[n].setup(u) for n, u in readable.items()}

            def validator() -> None:
                for i in ids:
                    for n in readable:
                        mods[n].get_many(ctxs[n], et, [i])

            ancestor = median_time(validator)
            # hand-written content scans of the same stores, with the raw drivers
            content_urls = {n: _url(n, u, et) for n, u in readable.items() if n in SCANS}
            hand = [median_time(lambda: content_audit(content_urls, et)) for _ in range(args.rounds)]
            assert content_audit(content_urls, et) == 0
            hand_scans = {n: [median_time(lambda: SCANS[n](u, et)) for _ in range(args.rounds)]  # noqa: B023
                          for n, u in content_urls.items()}
        finally:
            cleanup(forge, et)
    slowest = max(scans, key=lambda n: median(scans[n]))
    ours, ours_same = median(audits), median(same_audits)
    per_entity_ancestor = ancestor / args.ancestor_n
    print(f"audit benchmark: {args.n} entities in {', '.join(urls)}; median of {args.rounds} rounds")
    print(f"  ours, full audit of every store  {args.n / ours:9.0f} entities/s  ({ours:.2f}s)")
    print(f"  ours, the stores with lookups    {args.n / ours_same:9.0f} entities/s  ({ours_same:.2f}s)")
    print(f"  ours, every record read (--no-hash) {args.n / median(unhashed):6.0f} entities/s  "
          f"({median(unhashed):.2f}s); by hashes: {hashed_counts or 'none'}")
    print(f"  ancestor validator, 1 lookup each {1 / per_entity_ancestor:8.0f} entities/s  "
          f"(on {args.ancestor_n}, {len(readable)} stores with lookups)")
    for n in scans:
        print(f"  bare scan of {n:14}      {args.n / median(scans[n]):9.0f} ids/s  ({median(scans[n]):.2f}s)")
    print(f"  ours vs ancestor, same {len(readable)} stores: {per_entity_ancestor / (ours_same / args.n):.1f}x faster"
          "   target >= 20x")
    if len(readable) < len(urls):
        print(f"  ours with the message log too vs ancestor (which cannot check it): "
              f"{per_entity_ancestor / (ours / args.n):.1f}x faster")
    print(f"  ours vs bare scan of the slowest store ({slowest}): {ours / median(scans[slowest]):.2f}x the time"
          "   target <= 3x")
    for n in hand_scans:
        print(f"  scan of {n:14} ours {median(scans[n]):.2f}s, hand-written {median(hand_scans[n]):.2f}s: "
              f"{median(scans[n]) / median(hand_scans[n]):.2f}x the time")
    print(f"  ours ({', '.join(h.name for h in same.stores)}) vs hand-written content scans of the same stores "
          f"({median(hand):.2f}s): {ours_same / median(hand):.2f}x the time   target <= 2x")


if __name__ == "__main__":
    main()
