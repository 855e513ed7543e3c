"""Benchmark: each adapter's put_many/get_many against hand-written code on the same client.

Run as a script:  python bench/stores.py [--n 10000] [--rounds 5] [--stores postgres,redis,...]

The hand-written baselines (``bench/handwritten/<store>.py``) write the same layout with the same
driver's native bulk call, as one would without uuid-forge. Both sides get the same records, with
fingerprints computed beforehand. Prints medians and the ratio ours/hand-written (1.0 = as fast).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import sys
import uuid

from common import GEN, bench_prover, make_records, median, median_time, store_urls

from uuid_forge import open_store

STORES = ["postgres", "mariadb", "sqlite", "mongodb", "redis", "elasticsearch", "amqp", "file"]
BASELINE = {"postgres": "sql", "mariadb": "sql", "sqlite": "sql", "mongodb": "mongodb", "redis": "redis",
            "elasticsearch": "elasticsearch", "amqp": "rabbitmq", "file": "filesystem"}


def timed(fn: object) -> float:
    gc.collect()  # neither side pays for the other's garbage
    return median_time(fn)  # type: ignore[arg-type]


def bench_store(name: str, url: str, n: int, rounds: int) -> dict[str, float]:
    hand = importlib.import_module(f"handwritten.{BASELINE[name]}")
    ours_put, ours_get, hand_put, hand_get = [], [], [], []
    for _ in range(rounds):
        et_ours, et_hand = f"bo{uuid.uuid4().hex[:8]}", f"bh{uuid.uuid4().hex[:8]}"
        recs_ours, recs_hand = make_records(et_ours, n), make_records(et_hand, n)
        options = {"exchange": f"uf_bench_{uuid.uuid4().hex[:8]}"} if name == "amqp" else {}
        store = open_store(url + (("&" if "?" in url else "?") + f"exchange={options['exchange']}" if options else ""))
        store.ping()  # both sides start with an open connection
        ctx = hand.setup(url)
        try:
            # alternate which side goes first, so warm-up does not favour one; each lambda below
            # runs at once inside timed(), so binding the loop's variables late is what is meant
            first_ours = len(ours_put) % 2 == 0
            for side in (("ours", "hand") if first_ours else ("hand", "ours")):
                if side == "ours":
                    ours_put.append(timed(lambda: store.put_many(recs_ours)))  # noqa: B023
                    if "read" in store.capabilities:
                        ours_get.append(timed(lambda: store.get_many(et_ours, [r.id for r in recs_ours])))  # noqa: B023
                    elif "scan" in store.capabilities:
                        ours_get.append(timed(lambda: sum(1 for _ in store.scan(et_ours))))  # noqa: B023
                else:
                    hand_put.append(timed(lambda: hand.put_many(ctx, et_hand, recs_hand)))  # noqa: B023
                    hand_get.append(timed(lambda: hand.get_many(ctx, et_hand, [r.id for r in recs_hand])))  # noqa: B023
        finally:
            try:
                if "delete" in store.capabilities and not store.append_only:
                    store.drop(et_ours, prover=bench_prover(GEN, et_ours))  # a shared container: proven entries only
                elif hasattr(store, "delete_topology"):
                    store.delete_topology()
            finally:
                store.close()
                hand.teardown(ctx, et_hand)
    return {"ours_put": median(ours_put), "hand_put": median(hand_put),
            "ours_get": median(ours_get) if ours_get else float("nan"), "hand_get": median(hand_get)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stores", default=",".join(STORES), help=f"comma list of {', '.join(STORES)}")
    args = parser.parse_args()
    wanted = [s for s in args.stores.split(",") if s]
    unknown = set(wanted) - set(STORES)
    if unknown:
        parser.error(f"unknown store(s) {', '.join(sorted(unknown))}")
    print(f"store benchmark: {args.n} records, median of {args.rounds} rounds; ratio = our throughput / hand-written")
    print(f"{'store':14} {'put ours':>10} {'put hand':>10} {'ratio':>6}   {'get ours':>10} {'get hand':>10} {'ratio':>6}")
    with store_urls(wanted) as urls:
        for name in wanted:
            if name not in urls:
                print(f"{name:14} skipped: no server (set UUID_FORGE_TEST_{name.upper()}_URL)")
                continue
            try:
                r = bench_store(name, urls[name], args.n, args.rounds)
            except Exception as err:  # noqa: BLE001 - one store's failure should not hide the others
                print(f"{name:14} failed: {type(err).__name__}: {err}")
                continue
            rate = lambda t: f"{args.n / t:9.0f}/s"
            print(f"{name:14} {rate(r['ours_put'])} {rate(r['hand_put'])} {r['hand_put'] / r['ours_put']:6.2f}   "
                  f"{rate(r['ours_get'])} {rate(r['hand_get'])} {r['hand_get'] / r['ours_get']:6.2f}")
    print("target: ratio >= 0.80 for every store")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
