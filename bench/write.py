"""Benchmark: write-through of N entities to every store, against two baselines in the same run.

Run as a script:  python bench/write.py [--n 20000] [--rounds 3] [--ancestor-n 1000]

* ours: ``Forge.write_many`` (IDs, validation, journal, source first, then the other stores),
  once with the other stores written concurrently and once in sequence;
* (a) hand-written: IDs with ``uuid.uuid5`` and each client's native bulk call
  (``bench/handwritten/<store>.py``), one store after another, no journal;
* (b) the ancestor's documented pattern: for each entity, generate its ID, then write it to each
  store with one call at a time. It is timed on ``--ancestor-n`` entities and compared per entity.

Prints medians, ratios (throughput ours / baseline) and the journal's share of our time.
"""

from __future__ import annotations

import argparse
import importlib
import tempfile
import uuid
from typing import Any

from common import bench_prover, median, median_time, store_urls

from uuid_forge import Forge, IDConfig, Namespace, Record, open_store
from uuid_forge.forge import StoreHandle
from uuid_forge.journal import Journal
from uuid_forge.settings import WriteSettings

STORES = ["postgres", "mongodb", "redis", "elasticsearch", "amqp", "file"]
BASELINE = {"postgres": "sql", "mongodb": "mongodb", "redis": "redis", "elasticsearch": "elasticsearch",
            "amqp": "rabbitmq", "file": "filesystem"}
IDS = IDConfig(namespace=Namespace("bench.uuid-forge.dev"), salt="bench")
NS = IDS.namespace_uuid
PER_STORE: list[dict[str, float]] = []


def entities(entity_type: str, n: int) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    return [(entity_type, {"email": f"user{i}@example.com"},
             {"email": f"user{i}@example.com", "name": f"User {i}", "plan": "pro", "visits": i}) for i in range(n)]


def baseline_records(items: list[tuple[str, dict[str, Any], dict[str, Any]]]) -> list[Record]:
    """What a hand-written job computes: an ID per entity (uuid5 of the email) and the row."""
    return [Record(et, uuid.uuid5(NS, key["email"]), data, key) for et, key, data in items]


def run_ours(urls: dict[str, str], items: list[Any], entity_type: str, concurrent: bool) -> tuple[float, float, Forge]:
    handles = [StoreHandle(name, open_store(_url(name, urls[name], entity_type)), source=(name == "postgres"))
               for name in urls]
    forge = Forge(handles, ids=IDS, journal=Journal(tempfile.mkdtemp(prefix="uf-bench-j-") + "/j.sqlite3"),
                  write=WriteSettings(concurrent=concurrent, batch_size=1000))
    report = forge.write_many(items)
    assert report.complete
    PER_STORE.append({n: s.seconds for n, s in report.stores.items()})
    return report.seconds, report.journal_seconds, forge


def _url(name: str, url: str, entity_type: str) -> str:
    return f"{url}{'&' if '?' in url else '?'}exchange=uf_bench_{entity_type}" if name == "amqp" else url


def run_handwritten(urls: dict[str, str], items: list[Any], entity_type: str, per_entity: bool) -> float:
    mods = {name: importlib.import_module(f"handwritten.{BASELINE[name]}") for name in urls}
    ctxs = {name: mods[name].setup(_url(name, urls[name], entity_type)) for name in urls}
    try:
        def job() -> None:
            records = baseline_records(items)
            for r in records:
                r.fingerprint  # noqa: B018 - the row needs it, as ours does
            if per_entity:  # the ancestor's pattern: one call per entity per store
                for r in records:
                    for name in urls:
                        mods[name].put_many(ctxs[name], entity_type, [r])
            else:
                for name in urls:
                    mods[name].put_many(ctxs[name], entity_type, records)
        return median_time(job)
    finally:
        for name in urls:
            mods[name].teardown(ctxs[name], entity_type)


def cleanup(forge: Forge, entity_type: str) -> None:
    for h in forge.stores:
        if "delete" in h.adapter.capabilities and not h.adapter.append_only:  # a shared container: only what is proven ours goes
            h.adapter.drop(entity_type, prover=bench_prover(forge.generator, entity_type))
        elif hasattr(h.adapter, "delete_topology"):
            h.adapter.delete_topology()
    forge.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ancestor-n", type=int, default=1_000)
    parser.add_argument("--stores", default=",".join(STORES))
    args = parser.parse_args()
    wanted = args.stores.split(",")
    with store_urls(wanted) as urls:
        missing = [s for s in wanted if s not in urls]
        print(f"write-through benchmark: {args.n} entities to {', '.join(urls)}; median of {args.rounds} rounds"
              + (f" (skipped, no server: {', '.join(missing)})" if missing else ""))
        if "postgres" not in urls:
            raise SystemExit("PostgreSQL (the source of truth here) is not reachable")
        ours = {True: [], False: []}  # type: dict[bool, list[float]]
        journal_share: list[float] = []
        hand: list[float] = []
        for r in range(args.rounds):
            for concurrent in (True, False) if r % 2 == 0 else (False, True):
                et = f"bw{uuid.uuid4().hex[:8]}"
                seconds, journal_seconds, forge = run_ours(urls, entities(et, args.n), et, concurrent)
                ours[concurrent].append(seconds)
                journal_share.append(journal_seconds / seconds)
                cleanup(forge, et)
            et = f"bh{uuid.uuid4().hex[:8]}"
            hand.append(run_handwritten(urls, entities(et, args.n), et, per_entity=False))
        et = f"ba{uuid.uuid4().hex[:8]}"
        ancestor = run_handwritten(urls, entities(et, args.ancestor_n), et, per_entity=True)

    def rate(n: int, t: float) -> str:
        return f"{n / t:8.0f} entities/s"

    best = min((median(ours[True]), True), (median(ours[False]), False))
    print(f"  ours, other stores concurrent   {rate(args.n, median(ours[True]))}")
    print(f"  ours, other stores in sequence  {rate(args.n, median(ours[False]))}")
    print(f"  (a) hand-written bulk, in turn  {rate(args.n, median(hand))}")
    print(f"  (b) ancestor, one call each     {rate(args.ancestor_n, ancestor)}   (on {args.ancestor_n} entities)")
    print(f"  faster mode: {'concurrent' if best[1] else 'sequential'}")
    print(f"  ratio ours/(a): {median(hand) / best[0]:.2f}   target >= 0.8")
    print(f"  ratio ours/(b): {(ancestor / args.ancestor_n) / (best[0] / args.n):.1f}   target >= 10")
    print(f"  journal share of our time: {100 * median(journal_share):.1f}%")
    names = PER_STORE[0].keys()
    print("  time inside each store's put_many (median, seconds): "
          + ", ".join(f"{n} {median([p[n] for p in PER_STORE]):.2f}" for n in names))


if __name__ == "__main__":
    main()
