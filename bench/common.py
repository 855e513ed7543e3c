"""Shared bench helpers: store URLs (starting the stand-ins when needed), timing, records."""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from integration import servers
from uuid_forge import IDConfig, Namespace, Record, UUIDGenerator
from uuid_forge.entitytypes import EntityType
from uuid_forge.ownership import Prover

GEN = UUIDGenerator(IDConfig(namespace=Namespace("bench.uuid-forge.dev"), salt="bench"))


def median_time(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def median(samples: list[float]) -> float:
    return statistics.median(samples)


def make_records(entity_type: str, n: int) -> list[Record]:
    """``n`` records with realistic small documents, fingerprints computed up front (both sides reuse them)."""
    keys = [{"email": f"user{i}@example.com"} for i in range(n)]
    ids = GEN.generate_many(entity_type, keys)
    records = [Record(entity_type, ident, {"email": k["email"], "name": f"User {i}", "plan": "pro", "visits": i,
                                           "tags": ["a", "b"]}, k) for i, (ident, k) in enumerate(zip(ids, keys))]
    for r in records:
        r.fingerprint  # noqa: B018
        r.key_json  # noqa: B018
    return records


@contextmanager
def store_urls(wanted: list[str], files: str | None = None) -> Iterator[dict[str, str]]:
    """URLs for the wanted stores; stand-ins and temp dirs are started/created and cleaned up
    (``files``: the file store's folder, left in place, for a run whose data is kept)."""
    urls = servers.default_urls()
    out: dict[str, str] = {}
    with ExitStack() as stack:
        tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="uf-bench-"))
        for name in wanted:
            if name == "sqlite":
                out[name] = f"sqlite:///{tmp}/bench.sqlite3"
            elif name == "file":
                out[name] = f"file://{files or tmp + '/files'}"
            elif name in ("mongodb", "elasticsearch") and not urls.get(name):
                try:
                    if name == "mongodb":
                        url, proc = servers.start_mongodb_standin()
                    else:
                        url, proc = servers.start_elasticsearch_standin(tempfile.mkdtemp(prefix="uf-bench-es-"))
                except Exception as err:  # noqa: BLE001 - reported, the store is skipped
                    print(f"  {name}: skipped, stand-in did not start: {err}", file=sys.stderr)
                    continue
                stack.callback(servers.stop_process, proc)
                out[name] = url
            elif urls.get(name):
                out[name] = urls[name]
        yield out


def bench_prover(generator: UUIDGenerator, entity_type: str) -> Prover:
    """The ownership proof for a bench run's records (their ``email`` key field is in their data):
    what a cleanup drop may delete in a container shared with others (a Redis database, a directory)."""
    return Prover(generator, {entity_type: EntityType(entity_type, key=("email",))})
