"""Benchmark: memory stays bounded however many entities there are (issue 5, issue 6 part 5).

Run as a script::

    python bench/memory.py [--sizes 50000,200000] [--stores postgres,redis,elasticsearch,file,amqp]
    python bench/memory.py --sustained [--n 200000]
    python bench/memory.py --sizes 1000000,5000000 --stores postgres,redis   # issue 20: Redis keys

PostgreSQL is the source of truth; the other stores are compared with it. Each run uses a new
entity type and drops it from every store afterwards (PostgreSQL: the table; Redis db 15: only
its own keys; Elasticsearch: its index; files: a temporary root with ``fsync=false``, since
fsync says nothing about memory and costs ~2.5 ms per file; RabbitMQ, the message log: an
exchange and history stream of the run's own, deleted with every message in it).

* Bounded audit (default): write N entities with ``Forge.write_many(generator)`` (a generator, so
  the input is never held), then run a full ``forge.audit(entity_type)`` in a FRESH subprocess
  and take its peak RSS: ``VmHWM`` (the kernel's high-water mark for that process image), with
  RSS also sampled by psutil every 50 ms. ``ru_maxrss`` is printed too but not used: Linux keeps
  it across ``execve`` and starts a child from its parent's high-water mark, so in a child it
  shows the writer's (or pytest's) RSS. The sizes are written cumulatively into one entity type
  (50k, then 150k more for 200k). The subprocess baseline (interpreter, drivers, connections) is
  in every figure; it is the same each time.
  Growth = peak RSS at the largest N against the smallest; the target is < 20%.
  ``--partition-target`` overrides ``uuid_forge.audit.PARTITION_TARGET`` in the audit process
  (a huge value makes the audit hold every ID at once: growth must then show; it applies to
  ``--sustained`` too, so that small runs have as many partitions as the 200k one).
  ``--isolate`` also audits each non-source store on its own with the source, to attribute growth.
  Per size it prints the partitions used, the audit's seconds and seconds per million keys (per
  million entities): an audit whose time grows with the keys keeps that figure flat from the
  smallest to the largest size, whereas one that read every key once per partition (keys x
  partitions) would see it grow as the partitions do; both ratios are printed.
  Loading: PostgreSQL + Redis only are loaded with ``COPY`` and pipelined ``MSET``
  (bench/handwritten/bulk.py, the adapters' own bytes) after a first small ``write_many``, so
  that 5M keys load in minutes; ``--write-through`` loads with ``Forge.write_many`` instead.
  ``--tracemalloc`` adds the Python-heap peak (tracemalloc) and the top allocation sites.
* ``--sustained``: in a fresh subprocess, write N entities (streamed) then run a full audit, RSS
  sampled every ~0.5 s by a background thread. Reports time, entities/s, peak RSS and, for the
  write phase and for the audit phase, how much the peak RSS still grows over the second half of
  the phase (MiB per 100k entities: the flatness figure, see :func:`peak_growth`), beside the
  least-squares slope of RSS against entities processed after the first 10%.
"""

from __future__ import annotations

import argparse
import bisect
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
STORES = ["postgres", "redis", "elasticsearch", "file", "amqp"]
SOURCE = "postgres"
MIB = 1024 * 1024
_MARK = "MEMORY-RESULT "  # the child's result line on stdout

# --------------------------------------------------------------------------- shared helpers


def entities(entity_type: str, start: int, stop: int) -> Iterator[tuple[str, dict[str, Any], dict[str, Any]]]:
    """Entities ``start..stop-1`` as a generator: nothing is held but the one being yielded."""
    for i in range(start, stop):
        yield (entity_type, {"email": f"user{i}@example.com"},
               {"email": f"user{i}@example.com", "name": f"User {i}", "plan": "pro", "visits": i,
                "tags": ["a", "b"]})


def store_url(name: str, url: str) -> str:
    """The URL a run uses for one store (files: no fsync, see the module docstring; RabbitMQ: an
    exchange, and so a history stream, of this run's own, unless the URL names one)."""
    if name == "file" and "fsync=" not in url:
        return f"{url}{'&' if '?' in url else '?'}fsync=false"
    if name == "amqp" and "exchange=" not in url:
        return f"{url}{'&' if '?' in url else '?'}exchange=uf_mem_{uuid.uuid4().hex[:10]}"
    return url


def open_forge(urls: dict[str, str], journal_path: str | None) -> Any:
    """A Forge over ``urls`` (PostgreSQL the source), with a journal at ``journal_path`` (None: none)."""
    from uuid_forge import Forge, IDConfig, Namespace, open_store
    from uuid_forge.forge import StoreHandle
    from uuid_forge.journal import Journal

    if SOURCE not in urls:
        raise SystemExit("PostgreSQL (the source of truth here) is not reachable")
    handles = [StoreHandle(n, open_store(store_url(n, u)), source=(n == SOURCE)) for n, u in urls.items()]
    ids = IDConfig(namespace=Namespace("memory.uuid-forge.dev"), salt="memory")
    return Forge(handles, ids=ids, journal=Journal(journal_path) if journal_path else None)


def drop_everywhere(urls: dict[str, str], entity_type: str) -> None:
    """Remove ``entity_type`` from every store (table, own Redis keys, index, directory).

    Elasticsearch: the index is deleted with the client. The adapter has no ``_drop`` of its own,
    so ``drop`` falls back to the base class (scan every ID into a list, bulk-delete them 1000 at
    a time, keep the index): minutes for 200k documents on the stand-in, and it timed out.
    """
    forge = open_forge(urls, None)
    try:
        from uuid_forge.entitytypes import EntityType  # what a cleanup may delete: proven ours
        from uuid_forge.ownership import Prover
        for h in forge.stores:
            try:
                if h.name == "elasticsearch":
                    h.adapter.client.options(request_timeout=120).indices.delete(
                        index=h.adapter.index_name(entity_type), ignore_unavailable=True)
                elif h.name == "amqp":  # a log cannot forget one type: the run's own exchange and stream go
                    h.adapter.delete_topology()
                else:
                    h.adapter.drop(entity_type, prover=Prover(forge.generator, {entity_type: EntityType(entity_type, key=("email",))}))
            except Exception as err:  # noqa: BLE001 - cleanup goes on with the other stores
                print(f"  cleanup of {h.name}: {err}", file=sys.stderr)
    finally:
        forge.close()


@contextmanager
def bench_urls(wanted: list[str]) -> Iterator[dict[str, str]]:
    """URLs of the wanted stores: the shared servers, a noida-db stand-in for Elasticsearch (unless
    ``UUID_FORGE_TEST_ELASTICSEARCH_URL`` is set) and a file root, all in one temporary directory
    that is removed afterwards (``common.store_urls`` leaves the stand-in's data directory behind)."""
    sys.path.insert(0, str(HERE.parent))
    from integration import servers

    defaults = servers.default_urls()
    out: dict[str, str] = {}
    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="uf-mem-"))
        for name in wanted:
            if name == "file":
                out[name] = f"file://{tmp}/files?fsync=false"
            elif name == "elasticsearch" and not defaults.get(name):
                try:
                    url, proc = servers.start_elasticsearch_standin(os.path.join(tmp, "es"))
                except Exception as err:  # noqa: BLE001 - reported, the store is left out
                    print(f"  elasticsearch: skipped, stand-in did not start: {err}", file=sys.stderr)
                    continue
                stack.callback(servers.stop_process, proc)
                out[name] = url
            elif defaults.get(name):
                out[name] = defaults[name]
        yield out


def write(urls: dict[str, str], entity_type: str, start: int, stop: int, journal_path: str) -> float:
    """Write entities ``start..stop-1`` through every store; returns the seconds taken."""
    forge = open_forge(urls, journal_path)
    try:
        report = forge.write_many(entities(entity_type, start, stop))
        if not report.complete:
            raise RuntimeError(f"write-through incomplete: {report}")
        return report.seconds
    finally:
        forge.close()


BULK_CHUNK = 50_000


def bulk_write(urls: dict[str, str], entity_type: str, start: int, stop: int, journal_path: str) -> float:
    """Load entities ``start..stop-1`` into PostgreSQL and Redis with COPY and pipelined MSET (the
    first ones through ``write_many``: the table, ``uf:types``, the ID marker); the seconds taken."""
    sys.path.insert(0, str(HERE))
    from handwritten.bulk import LOADERS

    started = time.perf_counter()
    first = min(stop, max(start, 1_000)) if start == 0 else start
    if first > start:
        write(urls, entity_type, start, first, journal_path)
    forge = open_forge(urls, None)
    try:
        for lo in range(first, stop, BULK_CHUNK):
            records = forge.records(list(entities(entity_type, lo, min(stop, lo + BULK_CHUNK))))
            for name, url in urls.items():
                LOADERS[name](url, entity_type, records)
    finally:
        forge.close()
    return time.perf_counter() - started


def rss() -> int:
    import psutil  # type: ignore[import-untyped]

    return int(psutil.Process().memory_info().rss)


def ru_maxrss() -> int:
    """``ru_maxrss`` of this process, in bytes (Linux reports KiB, macOS bytes).

    Caution: Linux keeps it across ``execve``, and a child starts from its parent's high-water
    mark, so in a child of a big process (pytest, or the bench after writing) it shows the
    parent's RSS, not the child's. :func:`peak_rss` is the figure to use.
    """
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak if sys.platform == "darwin" else peak * 1024)


def peak_rss() -> int:
    """Peak RSS of this process image: ``VmHWM`` from /proc/self/status (reset at exec, so it
    counts this interpreter only); ``ru_maxrss`` where there is no /proc."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return ru_maxrss()


class Sampler(threading.Thread):
    """Samples RSS every ``interval`` seconds: (time, rss bytes, phase) tuples in ``samples``."""

    def __init__(self, interval: float) -> None:
        super().__init__(daemon=True, name="rss-sampler")
        self.interval = interval
        self.phase = "start"
        self.samples: list[tuple[float, int, str]] = []
        self._halt = threading.Event()

    def sample(self) -> None:
        self.samples.append((time.perf_counter(), rss(), self.phase))

    def run(self) -> None:
        while not self._halt.is_set():
            self.sample()
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        self.join()
        self.sample()


class Progress:
    """Cumulative entity counts over time, from ``progress`` callbacks (write batches, audit partitions)."""

    def __init__(self) -> None:
        self.times: list[float] = [time.perf_counter()]
        self.counts: list[int] = [0]

    def __call__(self, n: int) -> None:
        self.times.append(time.perf_counter())
        self.counts.append(self.counts[-1] + n)

    def at(self, t: float) -> float:
        """Entities done at time ``t``, interpolated linearly between callbacks."""
        i = bisect.bisect_right(self.times, t)
        if i <= 0:
            return 0.0
        if i >= len(self.times):
            return float(self.counts[-1])
        t0, t1, c0, c1 = self.times[i - 1], self.times[i], self.counts[i - 1], self.counts[i]
        return c0 + (c1 - c0) * ((t - t0) / (t1 - t0) if t1 > t0 else 1.0)


def slope(points: list[tuple[float, float]], skip: float = 0.1) -> float | None:
    """Least-squares slope of (entities, RSS bytes), in MiB per 100k entities, over the points
    past the first ``skip`` share of the entities (the warm-up)."""
    if not points:
        return None
    last = max(x for x, _ in points)
    pts = [(x, y) for x, y in points if x >= skip * last]
    if len(pts) < 3:
        return None
    mx = sum(x for x, _ in pts) / len(pts)
    my = sum(y for _, y in pts) / len(pts)
    sxx = sum((x - mx) ** 2 for x, _ in pts)
    if sxx == 0:
        return None
    sxy = sum((x - mx) * (y - my) for x, y in pts)
    return sxy / sxx * 100_000 / MIB


def peak_growth(points: list[tuple[float, float]], start: float = 0.5) -> float | None:
    """How fast the peak RSS still climbs once the run is in its stride: the high-water mark at the
    end minus the high-water mark at ``start`` of the entities, in MiB per 100k entities.

    Why not :func:`slope`: the audit frees each partition, so RSS is a saw-tooth of ~5 MiB per
    partition on top of the allocator settling over the first few partitions (tracemalloc shows the
    Python heap flat from the first one). A least-squares line through that rose 6-8 MiB/100k at
    100k entities with no leak; the high-water mark ignores the teeth, and a leak of L bytes per
    entity raises it by L per entity whatever the saw-tooth does.
    """
    if not points:
        return None
    last = max(x for x, _ in points)
    cut = start * last
    before = [y for x, y in points if x <= cut]
    if not before or last <= cut or len(points) - len(before) < 3:
        return None
    return (max(y for _, y in points) - max(before)) / (last - cut) * 100_000 / MIB


# --------------------------------------------------------------------------- child processes


def _child_audit(spec: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: a full audit of one entity type, with its peak memory."""
    import tracemalloc

    from uuid_forge import audit as audit_module

    if spec.get("partition_target"):
        audit_module.PARTITION_TARGET = int(spec["partition_target"])
    forge = open_forge(spec["urls"], None)
    for h in forge.stores:
        h.adapter.ping()
    baseline = rss()
    sampler = Sampler(0.05)
    sampler.start()
    if spec.get("tracemalloc"):
        tracemalloc.start(8)
        before = tracemalloc.take_snapshot()
    started = time.perf_counter()
    report = forge.audit(spec["entity_type"])
    seconds = time.perf_counter() - started
    sampler.stop()
    out: dict[str, Any] = {
        "seconds": seconds, "baseline": baseline, "peak": peak_rss(), "ru_maxrss": ru_maxrss(),
        "sampled_peak": max(s[1] for s in sampler.samples), "partitions": report.partitions,
        "consistent": report.consistent, "counts": {n: dict(c) for n, c in report.stores.items()},
        "findings": len(report.findings), "partition_target": audit_module.PARTITION_TARGET,
    }
    if spec.get("tracemalloc"):
        out["traced_peak"] = tracemalloc.get_traced_memory()[1]
        diff = tracemalloc.take_snapshot().compare_to(before, "lineno")
        out["top"] = [str(d) for d in diff[:10]]
        tracemalloc.stop()
    forge.close()
    return out


def _child_sustained(spec: dict[str, Any]) -> dict[str, Any]:
    """In a fresh process: write N entities then audit them, RSS sampled all along."""
    import tracemalloc

    n, et = int(spec["n"]), spec["entity_type"]
    if spec.get("partition_target"):
        from uuid_forge import audit as audit_module

        audit_module.PARTITION_TARGET = int(spec["partition_target"])
    forge = open_forge(spec["urls"], spec["journal"])
    for h in forge.stores:
        h.adapter.ping()
    sampler = Sampler(float(spec.get("interval", 0.5)))
    sampler.start()
    if spec.get("tracemalloc"):
        tracemalloc.start(8)
    snaps: dict[str, Any] = {}
    sampler.phase = "write"
    wrote = Progress()
    written_at_tenth = max(1, n // 10)

    def on_batch(count: int) -> None:
        wrote(count)
        if spec.get("tracemalloc") and "write10" not in snaps and wrote.counts[-1] >= written_at_tenth:
            snaps["write10"] = tracemalloc.take_snapshot()

    report = forge.write_many(entities(et, 0, n), progress=on_batch)
    write_end = time.perf_counter()
    if not report.complete:
        raise RuntimeError(f"write-through incomplete: {report}")
    if spec.get("tracemalloc"):
        snaps["write_end"] = tracemalloc.take_snapshot()
    sampler.sample()
    sampler.phase = "audit"
    audited = Progress()
    audit_report = forge.audit(et, progress=audited)
    audit_end = time.perf_counter()
    sampler.stop()
    out: dict[str, Any] = {"n": n, "write_seconds": report.seconds, "audit_seconds": audit_report.seconds,
                           "consistent": audit_report.consistent, "partitions": audit_report.partitions,
                           "peak": peak_rss(), "ru_maxrss": ru_maxrss(), "samples": []}
    for t, value, phase in sampler.samples:
        if phase == "write" and t <= write_end:
            out["samples"].append(["write", t - wrote.times[0], wrote.at(t), value])
        elif phase == "audit" and t <= audit_end:
            out["samples"].append(["audit", t - wrote.times[0], audited.at(t), value])
        else:
            out["samples"].append([phase, t - wrote.times[0], None, value])
    if spec.get("tracemalloc"):
        out["traced_peak"] = tracemalloc.get_traced_memory()[1]
        if "write10" in snaps:
            diff = snaps["write_end"].compare_to(snaps["write10"], "lineno")
            out["top_write_growth"] = [str(d) for d in diff[:10]]
        tracemalloc.stop()
    forge.close()
    return out


def run_child(spec: dict[str, Any], timeout: float = 1800) -> dict[str, Any]:
    """Run ``spec`` (``{"mode": "audit"|"sustained", ...}``) in a fresh interpreter; its result."""
    proc = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", json.dumps(spec)],
                          capture_output=True, text=True, timeout=timeout, check=False)
    for line in proc.stdout.splitlines():
        if line.startswith(_MARK):
            return json.loads(line[len(_MARK):])
    raise RuntimeError(f"memory child failed (exit {proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


# --------------------------------------------------------------------------- the two measurements


def bounded_audit(urls: dict[str, str], sizes: list[int], *, partition_target: int | None = None,
                  isolate: bool = False, trace: bool = False, log: Any = None,
                  write_through: bool = False) -> list[dict[str, Any]]:
    """Write the sizes cumulatively into one new entity type; after each, audit in a fresh process.

    Returns one row per size (and per isolated store when ``isolate``): the child's result plus
    ``n``, ``stores`` and ``write_seconds``. The entity type is dropped from every store at the end.
    """
    et = f"mem{uuid.uuid4().hex[:10]}"
    urls = {k: store_url(k, v) for k, v in urls.items()}  # once: a RabbitMQ exchange of the run's own
    jdir = tempfile.mkdtemp(prefix="uf-mem-j-")
    rows: list[dict[str, Any]] = []
    done = 0
    try:
        for n in sorted(sizes):
            bulk = not write_through and set(urls) <= {"postgres", "redis"}
            seconds = (bulk_write if bulk else write)(urls, et, done, n, os.path.join(jdir, "journal.sqlite3"))
            if log:
                log(f"  wrote {n - done} entities ({done}..{n}) in {seconds:.1f}s")
            done = n
            subsets = [list(urls)]
            if isolate:
                subsets += [[SOURCE, s] for s in urls if s != SOURCE]
            for names in subsets:
                result = run_child({"mode": "audit", "entity_type": et, "partition_target": partition_target,
                                    "urls": {k: urls[k] for k in names}, "tracemalloc": trace})
                result.update(n=n, stores=names, write_seconds=seconds)
                rows.append(result)
                if log:
                    log(f"  audit n={n} stores={','.join(names)}: {result['seconds']:.1f}s, "
                        f"peak {result['peak'] / MIB:.1f} MiB")
    finally:
        drop_everywhere(urls, et)
        shutil.rmtree(jdir, ignore_errors=True)
    return rows


def growth(rows: list[dict[str, Any]], stores: list[str]) -> float:
    """Peak RSS growth (%) from the smallest to the largest N, among rows auditing ``stores``."""
    mine = sorted((r for r in rows if r["stores"] == stores), key=lambda r: r["n"])
    return (mine[-1]["peak"] - mine[0]["peak"]) / mine[0]["peak"] * 100


def sustained(urls: dict[str, str], n: int, *, interval: float = 0.5, trace: bool = False,
              partition_target: int | None = None) -> dict[str, Any]:
    """Write ``n`` entities then audit them in a fresh process, RSS sampled; with slopes and peaks."""
    et = f"mems{uuid.uuid4().hex[:9]}"
    urls = {k: store_url(k, v) for k, v in urls.items()}  # once: a RabbitMQ exchange of the run's own
    jdir = tempfile.mkdtemp(prefix="uf-mem-j-")
    try:
        result = run_child({"mode": "sustained", "entity_type": et, "n": n, "urls": urls, "interval": interval,
                            "journal": os.path.join(jdir, "journal.sqlite3"), "tracemalloc": trace,
                            "partition_target": partition_target})
    finally:
        drop_everywhere(urls, et)
        shutil.rmtree(jdir, ignore_errors=True)
    for phase in ("write", "audit"):
        pts = [(x, y) for p, _, x, y in result["samples"] if p == phase and x is not None]
        result[f"{phase}_slope"] = slope(pts)
        result[f"{phase}_growth"] = peak_growth(pts)
        result[f"{phase}_peak"] = max((y for _, y in pts), default=0)
        result[f"{phase}_samples"] = len(pts)
    return result


# --------------------------------------------------------------------------- script


def _print_bounded(rows: list[dict[str, Any]], label: str) -> None:
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(",".join(r["stores"]), []).append(r)
    for stores, mine in groups.items():
        mine.sort(key=lambda r: r["n"])
        first = mine[0]["peak"]
        print(f"\nfull audit in a fresh process, stores {stores} (source {SOURCE}){label}")
        print(f"  {'N':>8} {'parts':>5} {'write s':>8} {'audit s':>8} {'s/M keys':>8} {'base MiB':>9} {'peak RSS MiB':>13} "
              f"{'sampled MiB':>12} {'growth %':>9} {'(ru_maxrss)':>12}"
              + (f" {'py peak MiB':>12}" if "traced_peak" in mine[0] else ""))
        for r in mine:
            g = (r["peak"] - first) / first * 100
            print(f"  {r['n']:>8} {r['partitions']:>5} {r['write_seconds']:>8.1f} {r['seconds']:>8.1f} "
                  f"{r['seconds'] / r['n'] * 1e6:>8.2f} "
                  f"{r['baseline'] / MIB:>9.1f} {r['peak'] / MIB:>13.1f} {r['sampled_peak'] / MIB:>12.1f} "
                  f"{g:>+9.1f} {r['ru_maxrss'] / MIB:>12.1f}"
                  + (f" {r['traced_peak'] / MIB:>12.1f}" if "traced_peak" in r else "")
                  + ("" if r["consistent"] else "  INCONSISTENT"))
        if len(mine) > 1:
            lo, hi = mine[0], mine[-1]
            per_lo, per_hi = lo["seconds"] / lo["n"], hi["seconds"] / hi["n"]
            print(f"  linearity {lo['n']} -> {hi['n']}: keys x{hi['n'] / lo['n']:.1f}, audit time "
                  f"x{hi['seconds'] / lo['seconds']:.2f}, seconds per million keys x{per_hi / per_lo:.2f} "
                  f"(partitions x{hi['partitions'] / max(1, lo['partitions']):.1f}: time growing with keys x "
                  f"partitions would make it about that); "
                  + ("LINEAR" if per_hi / per_lo < 1.5 else "NOT LINEAR") + " (target: seconds per million keys "
                  "within 1.5x)")
        for r in mine:
            for line in r.get("top", [])[:5]:
                print(f"    n={r['n']} {line}")


def _print_sustained(r: dict[str, Any]) -> None:
    total = r["write_seconds"] + r["audit_seconds"]

    def fmt(s: float | None) -> str:
        return "n/a" if s is None else f"{s:+.2f}"

    print(f"\nsustained: {r['n']} entities written through then audited ({r['partitions']} partitions), "
          f"RSS sampled every ~0.5 s")
    print(f"  total {total:.1f}s; write {r['write_seconds']:.1f}s ({r['n'] / r['write_seconds']:.0f} entities/s); "
          f"audit {r['audit_seconds']:.1f}s ({r['n'] / r['audit_seconds']:.0f} entities/s); "
          f"consistent={r['consistent']}")
    print(f"  peak RSS {r['peak'] / MIB:.1f} MiB (VmHWM; ru_maxrss {r['ru_maxrss'] / MIB:.1f}); sampled peak: write {r['write_peak'] / MIB:.1f} MiB, "
          f"audit {r['audit_peak'] / MIB:.1f} MiB")
    print(f"  slope after the first 10%: write {fmt(r['write_slope'])} MiB/100k entities "
          f"({r['write_samples']} samples); audit {fmt(r['audit_slope'])} MiB/100k entities "
          f"({r['audit_samples']} samples)")
    print(f"  peak growth over the second half (the flatness test): write {fmt(r['write_growth'])}, "
          f"audit {fmt(r['audit_growth'])} MiB/100k entities")
    if "traced_peak" in r:
        print(f"  tracemalloc peak {r['traced_peak'] / MIB:.1f} MiB; growth from 10% to the end of the write phase:")
        for line in r.get("top_write_growth", [])[:8]:
            print(f"    {line}")


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        spec = json.loads(sys.argv[2])
        result = (_child_audit if spec["mode"] == "audit" else _child_sustained)(spec)
        print(_MARK + json.dumps(result), flush=True)
        return
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="50000,200000", help="entity counts to compare (bounded audit)")
    parser.add_argument("--stores", default=",".join(STORES), help="postgres (the source) and any of "
                        "redis, elasticsearch, file, amqp (a RabbitMQ history stream: the message log)")
    parser.add_argument("--sustained", action="store_true", help="also run the sustained write+audit")
    parser.add_argument("--only-sustained", action="store_true", help="run only the sustained write+audit")
    parser.add_argument("--n", type=int, default=200_000, help="entities for --sustained")
    parser.add_argument("--partition-target", type=int, default=None,
                        help="override audit.PARTITION_TARGET in the audit process (e.g. 10000000)")
    parser.add_argument("--isolate", action="store_true", help="also audit each store alone with the source")
    parser.add_argument("--tracemalloc", action="store_true", help="Python-heap peaks and top allocation sites")
    parser.add_argument("--write-through", action="store_true",
                        help="load with Forge.write_many even for postgres,redis (default there: COPY + MSET)")
    args = parser.parse_args()
    wanted = args.stores.split(",")
    with bench_urls(wanted) as urls:
        missing = [s for s in wanted if s not in urls]
        if missing:
            print(f"skipped, no server: {', '.join(missing)}", file=sys.stderr)
        urls = {k: store_url(k, v) for k, v in urls.items()}
        print(f"memory benchmark: stores {', '.join(urls)}; python {sys.version.split()[0]}")

        def log(msg: str) -> None:
            print(msg, file=sys.stderr, flush=True)

        if not args.only_sustained:
            sizes = [int(s) for s in args.sizes.split(",")]
            rows = bounded_audit(urls, sizes, partition_target=args.partition_target, isolate=args.isolate,
                                 trace=args.tracemalloc, log=log, write_through=args.write_through)
            label = f", PARTITION_TARGET={rows[0]['partition_target']}"
            _print_bounded(rows, label)
            g = growth(rows, list(urls))
            print(f"\n  growth of the audit's peak RSS, {min(sizes)} -> {max(sizes)} entities: {g:+.1f}%  "
                  f"target < 20%: {'PASS' if g < 20 else 'FAIL'}")
        if args.sustained or args.only_sustained:
            _print_sustained(sustained(urls, args.n, trace=args.tracemalloc, partition_target=args.partition_target))


if __name__ == "__main__":
    main()
