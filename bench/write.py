"""Benchmark: write-through of N entities to every store, against two baselines in the same run.

Run as a script:  python bench/write.py [--n 20000] [--rounds 3] [--ancestor-n 1000]

* ours: ``Forge.write_many`` (IDs, validation, journal, source first, then the other stores),
  once with the other stores written concurrently and once in sequence;
* (a) hand-written: IDs with ``uuid.uuid5`` and each client's native bulk call
  (``bench/handwritten/<store>.py``), one store after another, no journal;
* (b) the ancestor's documented pattern: for each entity, generate its ID, then write it to each
  store with one call at a time. It is timed on ``--ancestor-n`` entities and compared per entity.

Prints medians, ratios (throughput ours / baseline) and the journal's share of our time.

With ``--deletes``: deletes per second, per store, in one run with the variants alternating in each
round (each variant deletes ``--delete-n`` entities it loaded untimed just before):

* forge: ``Forge.delete_many`` of ``(type, ID)`` pairs, the store under test a required store and
  an in-process memory store the source. Two figures: end to end (the journal, the source's
  tombstones and deletes, then this store), and in the store (the report's seconds inside this
  store's part, as the write benchmark's "time inside each store's put_many"); in a container shared with others
  (a Redis database without a prefix, a directory of files, your own table, collection or index)
  each batch is read back and proven ours first, as the delete path does;
* adapter: ``adapter.delete_many`` alone (what write-through calls per store);
* adapter+proof: each batch read back (``get_many``), proven ours (uuid_forge.ownership), then
  deleted, in every store: what a shared container costs where the default one is our own;
* native: the store's own bulk delete (``bench/handwritten/<store>.py``: ``DELETE ... WHERE id =
  ANY(%s)``, ``DELETE ... IN``, pipelined ``UNLINK``, ``delete_many({_id: {$in}})``, ``_bulk``
  delete actions, ``os.unlink``).
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
import uuid
from typing import Any

from common import GEN, bench_prover, make_records, median, median_time, store_urls

from uuid_forge import Forge, IDConfig, Namespace, Record, idmarker, open_store
from uuid_forge.contract import Adapter, chunked
from uuid_forge.entitytypes import EntityType
from uuid_forge.forge import StoreHandle
from uuid_forge.journal import Journal
from uuid_forge.settings import WriteSettings

STORES = ["postgres", "mongodb", "redis", "elasticsearch", "amqp", "file"]
BASELINE = {"postgres": "sql", "mongodb": "mongodb", "redis": "redis", "elasticsearch": "elasticsearch",
            "amqp": "rabbitmq", "file": "filesystem"}
IDS = IDConfig(namespace=Namespace("bench.uuid-forge.dev"), salt="bench")
NS = IDS.namespace_uuid
PER_STORE: list[dict[str, float]] = []
DELETE_STORES = ["postgres", "mariadb", "mongodb", "redis", "redis-prefix", "elasticsearch", "file"]
DELETE_BASELINE = {**BASELINE, "mariadb": "sql", "redis-prefix": "redis"}
#: a Redis database with a prefix of ours (the adapter's ``prefix=``): an own container, no proof needed
REDIS_PREFIX = "ufb"


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
    """Drop the run's entity type everywhere. A store whose connection was lost meanwhile (a long
    run's idle RabbitMQ connection) is opened again and retried once; the other stores go on."""
    for h in forge.stores:
        for attempt in (h.adapter, None):
            adapter = attempt if attempt is not None else open_store(h.adapter.url(masked=False))
            try:
                if "delete" in adapter.capabilities and not adapter.append_only:  # a shared container: only what is proven ours goes
                    adapter.drop(entity_type, prover=bench_prover(forge.generator, entity_type))
                elif hasattr(adapter, "delete_topology"):
                    adapter.delete_topology()
                break
            except Exception as err:  # noqa: BLE001 - reported; the other stores are still cleaned
                print(f"  cleanup of {h.name}: {err}" + (", retrying on a new connection" if attempt else ""),
                      file=sys.stderr)
            finally:
                if attempt is None:
                    adapter.close()
    forge.close()


def forge_for(adapter: Adapter, entity_type: str) -> Forge:
    """The uuid-forge delete path for one store: a Forge whose source is an in-process memory store
    (its tombstones cost next to nothing) and ``adapter`` a required store, journaled on disk."""
    forge = Forge([StoreHandle("source", open_store("memory://"), source=True), StoreHandle("store", adapter)],
                  ids=IDS, journal=Journal(tempfile.mkdtemp(prefix="uf-bench-j-") + "/j.sqlite3"),
                  types=[EntityType(entity_type, key=("email",))])
    idmarker.ensure(forge, {entity_type}, "bench")  # once per deployment, not per delete: made before timing
    return forge


def delete_ours(adapter: Adapter, entity_type: str, ids: list[uuid.UUID], variant: str,
                forge: Forge | None = None) -> tuple[int, float]:
    """Delete ``ids`` as uuid-forge does: ``forge`` (Forge.delete_many: journal, source tombstones,
    proof where the container is shared), ``adapter`` (adapter.delete_many alone), or ``proof``
    (each batch read back and proven ours first, whatever the container). Returns (deleted, the
    seconds spent inside the store's part of a forge delete, else 0)."""
    if variant == "forge":
        assert forge is not None
        report = forge.delete_many([(entity_type, i) for i in ids], force=True)  # the bench source holds none
        return report.stores["store"].deleted, report.stores["store"].seconds
    if variant == "adapter":
        return adapter.delete_many(entity_type, ids), 0.0
    prover = bench_prover(GEN, entity_type)
    gone = 0
    for batch in chunked(ids, adapter.batch_size):
        proven = prover.proven(entity_type, adapter.get_many(entity_type, batch), adapter.view)
        gone += adapter.delete_many(entity_type, [i for i in batch if i in proven])
    return gone, 0.0


def run_deletes(urls: dict[str, str], n: int, rounds: int) -> None:
    """Deletes per second per store: the variants alternating (order reversed every other round)."""
    print(f"delete benchmark: {n} entities per store and variant; median of {rounds} rounds")
    variants = ("forge", "adapter", "proof", "native")
    if "redis" in urls:
        urls = {**urls, "redis-prefix": f"{urls['redis']}{'&' if '?' in urls['redis'] else '?'}prefix={REDIS_PREFIX}"}
    for name in [s for s in DELETE_STORES if s in urls]:
        url = urls[name]
        times: dict[str, list[float]] = {v: [] for v in (*variants, "in-store")}
        shared = False
        for r in range(rounds):
            for variant in (variants if r % 2 == 0 else variants[::-1]):
                et = f"bd{uuid.uuid4().hex[:8]}"
                records = make_records(et, n)
                ids = [rec.id for rec in records]
                if variant == "native":
                    mod = importlib.import_module(f"handwritten.{DELETE_BASELINE[name]}")
                    ctx = mod.setup(urls["redis"] if name == "redis-prefix" else url)
                    if name == "redis-prefix":
                        ctx.uf_prefix = REDIS_PREFIX
                    try:
                        mod.put_many(ctx, et, records)
                        t = time.perf_counter()
                        gone = mod.delete_many(ctx, et, ids)
                        times[variant].append(time.perf_counter() - t)
                    finally:
                        mod.teardown(ctx, et)
                else:
                    adapter = open_store(url)
                    forge = forge_for(adapter, et) if variant == "forge" else None
                    try:
                        shared = adapter.shared(et)
                        adapter.put_many(records)
                        t = time.perf_counter()
                        gone, inside = delete_ours(adapter, et, ids, variant, forge)
                        times[variant].append(time.perf_counter() - t)
                        if variant == "forge":
                            times["in-store"].append(inside)
                        adapter.drop(et, prover=bench_prover(GEN, et))
                    finally:
                        (forge or adapter).close()
                assert gone == n, f"{name} {variant}: deleted {gone} of {n}"
        rate = {v: n / median(t) for v, t in times.items()}
        native = rate["native"]
        print(f"  {name} ({'shared container: proven first' if shared else 'own container'}), deletes/s: native "
              f"{native:.0f}; forge end to end {rate['forge']:.0f} ({rate['forge'] / native:.2f}x), in the store "
              f"{rate['in-store']:.0f} ({rate['in-store'] / native:.2f}x); adapter {rate['adapter']:.0f} "
              f"({rate['adapter'] / native:.2f}x); adapter+proof {rate['proof']:.0f} ({rate['proof'] / native:.2f}x)"
              "; target >= 0.8x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ancestor-n", type=int, default=1_000)
    parser.add_argument("--stores", default=None, help=f"default: {','.join(STORES)} "
                        f"(with --deletes: {','.join(DELETE_STORES)})")
    parser.add_argument("--deletes", action="store_true", help="measure deletes per second instead of writes")
    parser.add_argument("--delete-n", type=int, default=5_000)
    args = parser.parse_args()
    if args.deletes:
        with store_urls((args.stores or ",".join(DELETE_STORES)).split(",")) as urls:
            run_deletes(urls, args.delete_n, args.rounds)
        return
    wanted = (args.stores or ",".join(STORES)).split(",")
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
