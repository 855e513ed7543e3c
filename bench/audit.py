"""Benchmark: a full audit of N entities across the stores, against baselines in the same run.

Run as a script::

    python bench/audit.py [--n 20000] [--rounds 3] [--ancestor-n 1000] [--stores ...]
                          [--drift 0.001] [--json] [--keep | --reuse TYPE]
    python bench/audit.py --n 1000000 --stores postgres,redis --drift 0.001 --json   # issue 20

* ours, hashed: ``Forge.audit(entity_type)`` in the default configuration (``[audit] hashed``:
  stores that hash what they hold are compared by per-range hashes, uuid_forge.rangehash; Redis
  is read once, uuid_forge.onepass), and ours, record path: the same audit with hashing off
  (``hashed=False``, what ``[audit] hashed = false`` and ``uuid-forge audit --no-hash`` do). The
  two alternate in each round (order reversed every other round). Both are timed over every store,
  and over the stores the ancestor's pattern can check at all (all but the RabbitMQ message log,
  which has no lookup by ID), so that both sides do the same work;
* the floor (``bench/handwritten/scans.py``, raw drivers): ``SELECT count(*)`` on the source and a
  bare ``SCAN MATCH type:*`` of Redis (keys counted, no value read): target, the hashed audit
  within 10x of their sum;
* the ancestor's documented ``ConsistencyValidator`` pattern: for each entity, look it up in each
  store one at a time (timed on ``--ancestor-n`` entities, compared per entity, in every round
  beside our audits; the ratio is the median of the rounds' ratios): target >= 20x;
* a bare pass over each store (``adapter.scan``: IDs and the fingerprints of the data read, nothing compared);
* hand-written content scans (``bench/handwritten/scans.py``): each store's IDs and data read with
  its raw driver and hashed, compared with the source's; the stores in parallel threads, as ours:
  target, the record path within 2x;
* ``--drift F``: after the consistent rounds, F of the entities are drifted in the stores other
  than the source (a third edited: stale, a third deleted: missing, a third extra entities the
  source lacks: orphans; spread over the stores that can delete), the audits timed again, and each
  report's counts checked against what was planted (OK/MISMATCH; target: at most 2x the consistent
  time). The drift is undone afterwards, so the loaded data can be reused.

Loading: PostgreSQL + Redis only (the issue's 1M run) are loaded with ``COPY`` and pipelined
``MSET`` (bench/handwritten/bulk.py, the adapters' own bytes) after a first small ``write_many``;
other stores through ``Forge.write_many`` in chunks. ``--keep`` leaves the loaded type in the
stores (its name is printed; the file store's folder is ``$TMPDIR/uf-bench-files-TYPE``), ``--reuse
TYPE --n N`` audits it again without loading.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import random
import tempfile
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from common import median, median_time, store_urls
from handwritten.bulk import LOADERS
from handwritten.scans import SCANS, bare_scan_redis, content_audit, count_postgres
from write import BASELINE, IDS, STORES, _url, cleanup

from integration.provision import Missing, ensure_pgcrypto
from uuid_forge import Forge, Record, open_store
from uuid_forge.entitytypes import EntityType
from uuid_forge.forge import StoreHandle
from uuid_forge.journal import Journal

CHUNK = 50_000  # entities built and loaded at a time
SEED = 1_000  # entities written through the forge first (tables, uf:types, the ID marker)
VARIANTS = ("hashed", "record")
Item = tuple[str, dict[str, Any], dict[str, Any]]


def items(entity_type: str, start: int, stop: int) -> list[Item]:
    """Entities ``start..stop-1``, as bench/write.py's ``entities`` makes them."""
    return [(entity_type, {"email": f"user{i}@example.com"},
             {"email": f"user{i}@example.com", "name": f"User {i}", "plan": "pro", "visits": i})
            for i in range(start, stop)]


def load(forge: Forge, urls: dict[str, str], et: str, n: int) -> tuple[str, float]:
    """Load ``n`` entities: bulk (PostgreSQL and Redis only) or write-through; (how, seconds)."""
    fast = set(urls) <= set(LOADERS)

    def run() -> None:
        seed = min(n, SEED) if fast else 0
        if seed:
            assert forge.write_many(items(et, 0, seed)).complete
        for start in range(seed, n, CHUNK):
            chunk = items(et, start, min(n, start + CHUNK))
            if fast:
                records = forge.records(chunk)
                for name, url in urls.items():
                    LOADERS[name](url, et, records)
            else:
                assert forge.write_many(chunk).complete
    return ("COPY + pipelined MSET" if fast else "Forge.write_many"), median_time(run)


class Drift:
    """Edits, deletions and extra entities planted in the stores other than the source, and undone."""

    def __init__(self, forge: Forge, et: str, n: int, fraction: float) -> None:
        self.forge, self.et = forge, et
        self.targets = [h for h in forge.stores if not h.source and "delete" in h.adapter.capabilities
                        and not h.adapter.append_only]
        total = max(3, round(n * fraction))
        picked = random.Random(20).sample(range(n), 2 * (total // 3) + total % 3)
        self.edited, self.deleted = picked[: total // 3 + total % 3], picked[total // 3 + total % 3:]
        self.extras = list(range(n, n + total // 3))  # entities the source never had
        self.expected = {h.name: Counter() for h in self.targets}  # type: dict[str, Counter[str]]
        self.where: dict[str, dict[str, list[int]]] = {h.name: {"edit": [], "delete": [], "extra": []}
                                                        for h in self.targets}
        for kind, picks in (("edit", self.edited), ("delete", self.deleted), ("extra", self.extras)):
            for j, i in enumerate(picks):
                self.where[self.targets[j % len(self.targets)].name][kind].append(i)
        for name, kinds in self.where.items():
            self.expected[name].update(stale=len(kinds["edit"]), missing=len(kinds["delete"]),
                                       orphan=len(kinds["extra"]))

    @property
    def total(self) -> int:
        return len(self.edited) + len(self.deleted) + len(self.extras)

    def _records(self, picks: list[int], edit: bool = False) -> list[Record]:
        rows = [row for i in picks for row in items(self.et, i, i + 1)]
        if edit:
            rows = [(t, k, {**d, "visits": -1}) for t, k, d in rows]
        return self.forge.records(rows)

    def plant(self) -> None:
        for h in self.targets:
            kinds = self.where[h.name]
            h.adapter.put_many(self._records(kinds["edit"], edit=True) + self._records(kinds["extra"]))
            h.adapter.delete_many(self.et, [r.id for r in self._records(kinds["delete"])])

    def undo(self) -> None:
        for h in self.targets:
            kinds = self.where[h.name]
            h.adapter.put_many(self._records(kinds["edit"] + kinds["delete"]))
            h.adapter.delete_many(self.et, [r.id for r in self._records(kinds["extra"])])

    def check(self, report: Any) -> list[str]:
        """What differs between a report's counts and the planted drift (empty: found exactly)."""
        wrong = []
        for name, counts in report.stores.items():
            want = self.expected.get(name, Counter())
            for kind in ("missing", "orphan", "stale", "malformed", "unproven", "deleted"):
                if counts[kind] != want[kind]:
                    wrong.append(f"{name} {kind} {counts[kind]} (planted {want[kind]})")
        return wrong


def alternate(rounds: int) -> Iterator[tuple[str, ...]]:
    """The variants' order per round: reversed every other round, so neither always runs first."""
    for r in range(rounds):
        yield VARIANTS if r % 2 == 0 else VARIANTS[::-1]


def time_audits(forges: dict[str, Forge], et: str, rounds: int, check: Callable[[Any], list[str]],
                peer: Callable[[], None] | None = None) -> tuple[dict[str, dict[str, list[float]]], list[str], Any]:
    """Each forge's hashed and record audits, alternating; (times[forge][variant], problems, a hashed report).

    ``peer`` (the ancestor's validator) is timed in every round too, between our audits, into
    ``times["peer"]["peer"]``: a ratio taken within one round sees the machine in one state."""
    times: dict[str, dict[str, list[float]]] = {f: {v: [] for v in VARIANTS} for f in forges}
    if peer is not None:
        times["peer"] = {"peer": []}
    problems: list[str] = []
    sample: Any = None
    for r, order in enumerate(alternate(rounds)):
        if peer is not None and r % 2 == 1:
            times["peer"]["peer"].append(median_time(peer))  # before our audits every other round
        for fname, forge in forges.items():
            for variant in order:
                reports: list[Any] = []
                times[fname][variant].append(median_time(
                    lambda: reports.append(forge.audit(et, hashed=None if variant == "hashed" else False))))  # noqa: B023
                problems += [f"{fname}/{variant}: {p}" for p in check(reports[0])]
                if variant == "hashed" and fname == "all":
                    sample = reports[0]
        if peer is not None and r % 2 == 0:
            times["peer"]["peer"].append(median_time(peer))
    return times, problems, sample


def floor(urls: dict[str, str], et: str) -> dict[str, float]:
    """One round of the floor: ``count(*)`` on the source, a bare SCAN of Redis (raw drivers)."""
    out: dict[str, float] = {}
    counted: list[int] = []
    out["count"] = median_time(lambda: counted.append(count_postgres(urls["postgres"], et)))
    if "redis" in urls:
        out["scan"] = median_time(lambda: counted.append(bare_scan_redis(urls["redis"], et)))
    return out


def pgcrypto(url: str) -> None:
    """pgcrypto in the bench's PostgreSQL database: its ``digest()`` gives the sha1 range hashes a
    Redis store is compared by. uuid-forge never installs it; without it the hashed audit falls
    back to the record path for Redis, and this bench would time that fallback."""
    try:
        ensure_pgcrypto(url)
        print("  postgres: pgcrypto installed (CREATE EXTENSION IF NOT EXISTS)", flush=True)
    except Missing as err:
        print(f"  postgres: {err}; Redis is compared record by record", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--ancestor-n", type=int, default=1_000)
    parser.add_argument("--stores", default=",".join(STORES))
    parser.add_argument("--drift", type=float, default=0.0, metavar="FRACTION",
                        help="also time the audits with this fraction of the entities drifted (e.g. 0.001)")
    parser.add_argument("--json", action="store_true", help="end with one JSON summary line")
    parser.add_argument("--ranges", action="store_true",
                        help="MongoDB and Elasticsearch scanned by ID range per partition (default here: read_once=true, "
                             "as the stand-ins walk the whole collection or index for each range query; a real server "
                             "has the index)")
    parser.add_argument("--keep", action="store_true", help="leave the loaded entity type in the stores")
    parser.add_argument("--reuse", metavar="TYPE", help="audit an entity type a --keep run loaded (same --n)")
    args = parser.parse_args()
    et = args.reuse or f"ba{uuid.uuid4().hex[:8]}"
    keep = args.keep or bool(args.reuse)
    # a kept type's files outlive the run, in a folder named for it (the others are temporary)
    files = os.path.join(tempfile.gettempdir(), f"uf-bench-files-{et}") if keep else None
    with store_urls(args.stores.split(","), files=files) as urls:
        if "postgres" not in urls:
            raise SystemExit("PostgreSQL (the source of truth here) is not reachable")
        pgcrypto(urls["postgres"])
        readable = {n: u for n, u in urls.items() if n != "amqp"}  # a message log has no lookup by ID
        once = {n: {"read_once": not args.ranges} for n in ("mongodb", "elasticsearch")}
        handles = [StoreHandle(n, open_store(_url(n, u, et), **once.get(n, {})), source=(n == "postgres"))
                   for n, u in urls.items()]
        for n in sorted(set(urls) & set(once)):
            print(f"  {n}: read_once={not args.ranges} (see --ranges)", flush=True)
        forge = Forge(handles, ids=IDS, journal=Journal(tempfile.mkdtemp(prefix="uf-bench-j-") + "/j.sqlite3"),
                      types=[EntityType(et, key=("email",))])  # extras planted by --drift are proven ours
        try:
            how, load_seconds = ("reused", 0.0) if args.reuse else load(forge, urls, et, args.n)
            print(f"  loaded {args.n} entities ({how}) in {load_seconds:.1f}s", flush=True)
            # the same adapters, on the stores the ancestor's validator can look at
            same = Forge([h for h in forge.stores if h.name in readable], ids=IDS, journal=None, types=forge.types)
            forges = {"all": forge, **({"same": same} if len(readable) < len(urls) else {})}

            def consistent(report: Any) -> list[str]:
                return [] if report.consistent else [str(report)]

            # the ancestor's validator: one lookup per entity per store, with the raw clients
            ids = forge.generator.generate_many(et, [k for _, k, _ in items(et, 0, min(args.n, args.ancestor_n))])
            mods = {n: importlib.import_module(f"handwritten.{BASELINE[n]}") for n in readable}
            ctxs = {n: mods[n].setup(u) for n, u in readable.items()}

            def validator() -> None:
                for i in ids:
                    for n in readable:
                        mods[n].get_many(ctxs[n], et, [i])

            audits, problems, hashed_report = time_audits(forges, et, args.rounds, consistent, peer=validator)
            ancestor = audits.pop("peer")["peer"]
            if problems:
                raise SystemExit("not consistent after loading: " + "; ".join(problems[:3]))
            floors = [floor(urls, et) for _ in range(args.rounds)]
            scans: dict[str, list[float]] = {h.name: [] for h in forge.stores}
            for _ in range(args.rounds):
                for h in forge.stores:
                    scans[h.name].append(median_time(lambda: sum(1 for _ in h.adapter.scan(et))))  # noqa: B023
            # hand-written content scans of the same stores, with the raw drivers
            content_urls = {n: _url(n, u, et) for n, u in readable.items() if n in SCANS}
            hand = [median_time(lambda: content_audit(content_urls, et)) for _ in range(args.rounds)]
            assert content_audit(content_urls, et) == 0
            hand_scans = {n: [median_time(lambda: SCANS[n](u, et)) for _ in range(args.rounds)]  # noqa: B023
                          for n, u in content_urls.items()}
            drifted: dict[str, Any] = {}
            if args.drift:
                drift = Drift(forge, et, args.n, args.drift)
                drift.plant()
                try:
                    d_audits, d_problems, d_report = time_audits({"all": forge}, et, args.rounds, drift.check)
                    differ: list[int] = []
                    d_hand = median_time(lambda: differ.append(content_audit(content_urls, et)))
                finally:
                    drift.undo()
                drifted = {"audits": d_audits["all"], "problems": d_problems, "report": d_report,
                           "planted": drift.total, "expected": drift.expected, "hand": d_hand,
                           "hand_differ": differ[0]}
            # printed before the cleanup, so that a cleanup that fails loses no figure
            summary = report(args, urls, readable, audits, floors, scans, ancestor, hand, hand_scans,
                             hashed_report, drifted)
        finally:
            if keep:
                forge.close()
            else:
                cleanup(forge, et)
    if keep:
        print(f"  kept: rerun with --reuse {et} --n {args.n} --stores {','.join(urls)}")
    if args.json:
        print(json.dumps(summary, sort_keys=True))


def report(args: Any, urls: dict[str, str], readable: dict[str, str], audits: dict[str, dict[str, list[float]]],
           floors: list[dict[str, float]], scans: dict[str, list[float]], ancestor: list[float], hand: list[float],
           hand_scans: dict[str, list[float]], hashed_report: Any, drifted: dict[str, Any]) -> dict[str, Any]:
    """Print the figures (medians) and the ratios against the targets; the --json summary."""
    n = args.n
    full = {v: median(audits["all"][v]) for v in VARIANTS}
    same = {v: median(audits.get("same", audits["all"])[v]) for v in VARIANTS}
    ours, ours_same = full["hashed"], same["hashed"]
    slowest = max(scans, key=lambda s: median(scans[s]))
    count_s = median([f["count"] for f in floors])
    scan_s = median([f["scan"] for f in floors]) if "redis" in urls else 0.0
    base = count_s + scan_s
    m = min(n, args.ancestor_n)
    per_entity_ancestor = median(ancestor) / m
    # the ancestor against ours round by round (each timed beside the other), then the median of those
    per_round = {v: [(a / m) / (t / n) for a, t in zip(ancestor, audits.get("same", audits["all"])[v])]
                 for v in VARIANTS}
    hand_s = median(hand)
    print(f"audit benchmark: {n} entities in {', '.join(urls)}; median of {args.rounds} rounds "
          "(hashed and record audits alternating)")
    print(f"  ours, full audit of every store  {n / ours:9.0f} entities/s  ({ours:.2f}s)   target >= 120000 at 1M")
    print(f"  ours, the stores with lookups    {n / ours_same:9.0f} entities/s  ({ours_same:.2f}s)")
    print(f"  ours, record path (hashing off), every store {n / full['record']:9.0f} entities/s  "
          f"({full['record']:.2f}s); the stores with lookups {n / same['record']:.0f} entities/s "
          f"({same['record']:.2f}s)")
    if hashed_report is not None and hashed_report.hashed:
        print("  hashed path used: " + ", ".join(
            f"{s} {c['hashed_records']:,} records settled by {c['hashed_ranges']:,} ranges, "
            f"{c['read_records']:,} read" for s, c in hashed_report.hashed.items()))
    else:
        print("  hashed path used: no store hashes as the source does (the hashed audit read every record)")
    print(f"  ancestor validator, 1 lookup each {1 / per_entity_ancestor:8.0f} entities/s  "
          f"(on {min(n, args.ancestor_n)}, {len(readable)} stores with lookups)")
    print(f"  floor: count(*) on postgres {count_s:.2f}s" + (f" + bare SCAN of redis {scan_s:.2f}s" if scan_s else "")
          + f" = {base:.2f}s ({n / base:.0f} entities/s)")
    for s, times in scans.items():
        print(f"  bare scan of {s:14}      {n / median(times):9.0f} ids/s  ({median(times):.2f}s)")
    ratios = {
        "hashed_vs_floor": ours / base,
        "record_vs_handwritten": same["record"] / hand_s,
        "hashed_vs_handwritten": ours_same / hand_s,
        "ancestor_vs_hashed": median(per_round["hashed"]),
        "ancestor_vs_record": median(per_round["record"]),
    }
    print(f"  ours (hashed) vs the floor count(*) + SCAN: {ratios['hashed_vs_floor']:.2f}x the time   target <= 10x"
          + ("" if set(urls) <= {"postgres", "redis"} else " (set for postgres + redis)"))
    spread = {v: f"{min(r):.1f}-{max(r):.1f}" for v, r in per_round.items()}
    print(f"  ours vs ancestor, same {len(readable)} stores (median of the {len(ancestor)} rounds' ratios): "
          f"{ratios['ancestor_vs_hashed']:.1f}x faster hashed ({spread['hashed']}), "
          f"{ratios['ancestor_vs_record']:.1f}x the record path ({spread['record']})   target >= 20x")
    if len(readable) < len(urls):
        print(f"  ours with the message log too vs ancestor (which cannot check it): "
              f"{per_entity_ancestor / (ours / n):.1f}x faster")
    print(f"  ours vs bare scan of the slowest store ({slowest}): {ours / median(scans[slowest]):.2f}x the time"
          "   target <= 3x")
    for s, times in hand_scans.items():
        print(f"  scan of {s:14} ours {median(scans[s]):.2f}s, hand-written {median(times):.2f}s: "
              f"{median(scans[s]) / median(times):.2f}x the time")
    print(f"  ours ({', '.join(readable)}) vs hand-written content scans of the same stores ({hand_s:.2f}s): "
          f"record path {ratios['record_vs_handwritten']:.2f}x, hashed {ratios['hashed_vs_handwritten']:.2f}x "
          "the time   target (record) <= 2x")
    summary: dict[str, Any] = {
        "n": n, "stores": list(urls), "rounds": args.rounds,
        "seconds": {"hashed": round(ours, 3), "record": round(full["record"], 3),
                    "hashed_same_stores": round(ours_same, 3), "record_same_stores": round(same["record"], 3),
                    "count": round(count_s, 3), "scan": round(scan_s, 3), "handwritten": round(hand_s, 3),
                    "ancestor_per_entity": per_entity_ancestor},
        "entities_per_s": {"hashed": round(n / ours), "record": round(n / full["record"])},
        "ratios": {k: round(v, 2) for k, v in ratios.items()},
        "hashed": ({s: dict(c) for s, c in hashed_report.hashed.items()} if hashed_report is not None else {}),
    }
    if drifted:
        d = {v: median(drifted["audits"][v]) for v in VARIANTS}
        verdict = "OK" if not drifted["problems"] else "MISMATCH"
        planted = "; ".join(f"{s}: " + ", ".join(f"{c[k]} {k}" for k in ("stale", "missing", "orphan"))
                            for s, c in drifted["expected"].items())
        print(f"  drift {args.drift:g}: {drifted['planted']} entities planted ({planted})")
        print(f"  ours with drift, hashed {n / d['hashed']:9.0f} entities/s ({d['hashed']:.2f}s, "
              f"{d['hashed'] / ours:.2f}x the consistent time); record path {d['record']:.2f}s "
              f"({d['record'] / full['record']:.2f}x)   target <= 2x")
        print(f"  findings equal the planted drift in every report: {verdict}"
              + ("" if not drifted["problems"] else "  " + "; ".join(drifted["problems"][:5])))
        print(f"  hand-written content scans with drift: {drifted['hand']:.2f}s, {drifted['hand_differ']} differences "
              f"({'OK' if drifted['hand_differ'] == drifted['planted'] else 'MISMATCH'})")
        hashed = drifted["report"].hashed if drifted["report"] is not None else {}
        summary["drift"] = {"fraction": args.drift, "planted": drifted["planted"], "verdict": verdict,
                            "seconds": {k: round(v, 3) for k, v in d.items()},
                            "ratio_vs_consistent": {"hashed": round(d["hashed"] / ours, 2),
                                                    "record": round(d["record"] / full["record"], 2)},
                            "hashed": {s: dict(c) for s, c in hashed.items()}}
    return summary


if __name__ == "__main__":
    main()
