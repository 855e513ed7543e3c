"""Benchmark (issue 13): a full audit of N entities across PostgreSQL, Redis and files, in one
process and as partition tasks on 1, 2 and 4 local processes and on 2 Celery workers, in one run.

Run as a script:  python bench/scale.py [--n 200000] [--rounds 3] [--no-celery]

Servers from UUID_FORGE_TEST_POSTGRES_URL / _REDIS_URL / _AMQP_URL (defaults: the local ones).
Prints the median time per setting, entities/s, the speedup over the single-process audit, the
speedup per core used (min(workers, cores)), per-partition rates (for docs/scaling.md's model)
and the largest resident memory of a worker process.
"""

from __future__ import annotations

import argparse
import os
import resource
import secrets
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from uuid_forge import Forge
from uuid_forge.distributed import audit_on
from uuid_forge.executors import LocalExecutor

BATCH = 20_000
RSS: list[float] = []


def _pooled(executor: Any, forge: Forge, et: str) -> Any:
    report = audit_on(executor, forge, et)
    RSS.append(getattr(executor, "max_rss_mib", 0.0))
    return report


def _urls() -> dict[str, str]:
    env = os.environ
    return {"postgres": env.get("UUID_FORGE_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
            "redis": env.get("UUID_FORGE_TEST_REDIS_URL", "redis://127.0.0.1:6379/0"),
            "amqp": env.get("UUID_FORGE_TEST_AMQP_URL", "amqp://guest:guest@127.0.0.1:5672/")}


def _config(folder: Path, tag: str, urls: dict[str, str]) -> Path:
    path = folder / "uuid-forge.toml"
    path.write_text(f"""[ids]
namespace = "bench-scale.uuid-forge.dev"
[journal]
path = "{folder}/journal.sqlite3"
[executor]
broker = "{urls['amqp']}"
backend = "{urls['redis']}"
result_expires = 3600
queue = "uf_bench_{tag}"
[stores.db]
url = "{urls['postgres']}"
role = "source"
options = {{ prefix = "{tag}_" }}
[stores.cache]
url = "{urls['redis']}"
options = {{ prefix = "{tag}" }}
[stores.files]
url = "file://{folder}/files?fsync=false"
""")
    return path


def _timed(fn: Any) -> tuple[float, Any]:
    t = time.perf_counter()
    out = fn()
    return time.perf_counter() - t, out


def _workers(config: Path, folder: Path, n: int) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, "UUID_FORGE_CONFIG": str(config)}
    procs = [subprocess.Popen([sys.executable, "-m", "celery", "-A", "uuid_forge.celery", "worker", "--concurrency",
                               "1", "-n", f"bench{i}@%h", "-l", "warning", "--without-gossip", "--without-mingle",
                               "--without-heartbeat"], env=env, stdout=open(folder / f"w{i}.log", "wb"),  # noqa: SIM115
                              stderr=subprocess.STDOUT, start_new_session=True) for i in range(n)]
    time.sleep(8)  # -l warning prints no ready line: give them time to connect
    return procs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--no-celery", action="store_true")
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    tag = "bs" + secrets.token_hex(3)
    et = "member"
    with tempfile.TemporaryDirectory(prefix="uf-bench-scale-") as tmp:
        folder = Path(tmp)
        config = _config(folder, tag, _urls())
        forge = Forge.from_config(str(config))
        procs: list[subprocess.Popen[bytes]] = []
        try:
            t, _ = _timed(lambda: [forge.write_many([(et, {"email": f"user{i}@example.com"},
                                                      {"email": f"user{i}@example.com", "name": f"User {i}",
                                                       "plan": "pro", "visits": i})
                                                     for i in range(lo, min(args.n, lo + BATCH))])
                                   for lo in range(0, args.n, BATCH)])
            print(f"wrote {args.n:,} entities to db (PostgreSQL), cache (Redis), files in {t:.1f}s", flush=True)
            settings: list[tuple[str, int, Any]] = [("single process", 1, lambda: forge.audit(et))]
            for w in (1, 2, 4):
                settings.append((f"local {w} process{'es' if w > 1 else ''}", w,
                                 lambda w=w: _pooled(LocalExecutor(str(config), w), forge, et)))
            if not args.no_celery:
                from uuid_forge.celery import CeleryExecutor

                procs = _workers(config, folder, 2)
                settings.append(("celery 2 workers", 2, lambda: _pooled(CeleryExecutor(str(config), 2), forge, et)))
            results: dict[str, list[float]] = {name: [] for name, _, _ in settings}
            inside: dict[str, list[float]] = {name: [] for name, _, _ in settings}  # sum of partition times
            parts: list[tuple[str, str, float, int]] = []
            for _ in range(args.rounds):
                for name, _, run in settings:
                    seconds, report = _timed(run)
                    assert report.consistent and report.stores["cache"]["ok"] == args.n, report
                    results[name].append(seconds)
                    inside[name].append(sum(p[2] for p in report.partition_times))
                    if name == "single process":
                        parts = report.partition_times
                    print(f"  {name}: {seconds:.2f}s", flush=True)
            base = statistics.median(results["single process"])
            print(f"\nfull audit of {args.n:,} entities, 3 stores, {len(parts)} partitions, {cores} cores, "
                  f"median of {args.rounds}; load average before: {os.getloadavg()[0]:.1f}")
            print(f"{'setting':<20}{'median s':>10}{'entities/s':>12}{'speedup':>9}{'per core':>10}"
                  f"{'partition s (sum)':>19}")
            for name, w, _ in settings:
                m = statistics.median(results[name])
                speed = base / m
                print(f"{name:<20}{m:>10.2f}{args.n / m:>12,.0f}{speed:>9.2f}{speed / min(w, cores):>10.2f}"
                      f"{statistics.median(inside[name]):>19.2f}")
            secs = [p[2] for p in parts]
            print(f"\nper partition (single process): {statistics.median([p[3] for p in parts]):,.0f} records, "
                  f"median {statistics.median(secs):.2f}s, {statistics.median([p[3] / p[2] for p in parts]):,.0f} "
                  f"records/s")
            print(f"largest resident memory of a worker process: {max(RSS or [0]):.0f} MiB; of this process: "
                  f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
        finally:
            for p in procs:
                os.killpg(p.pid, signal.SIGTERM)
            for p in procs:
                p.wait(30)
            from uuid_forge.entitytypes import EntityType  # what a cleanup may delete: proven ours
            from uuid_forge.ownership import Prover
            for h in forge.stores:
                if "delete" in h.adapter.capabilities and not h.adapter.append_only:
                    h.adapter.drop(et, prover=Prover(forge.generator, {et: EntityType(et, key=("email",))}))
            forge.close()


if __name__ == "__main__":
    main()
