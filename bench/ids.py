"""Benchmark: ID generation against stdlib uuid5 and uuid-forge 0.1.1, measured in the same run.

Run as a script (not a test):  python bench/ids.py [--n 20000] [--rounds 9] [--no-legacy]

* stdlib ``uuid.uuid5`` hashes the very same name text our scheme builds, so the comparison is
  "our canonicalisation + hashing" against "hashing a ready-made name".
* uuid-forge 0.1.1 is installed into a throwaway virtualenv and driven in a subprocess (both
  packages are named ``uuid_forge``); that subprocess also times stdlib uuid5 so its figures can
  be checked against ours. Prints medians (machines are noisy) and ratios.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
import venv
from collections.abc import Callable
from pathlib import Path

from uuid_forge import IDConfig, Namespace, UUIDGenerator, canonical_name

LEGACY_SCRIPT = r"""
import json, statistics, sys, time, uuid
from uuid_forge import IDConfig, Namespace, generate_uuid_only
n, rounds = int(sys.argv[1]), int(sys.argv[2])
emails = [f"user{i}@example.com" for i in range(n)]
cfg = IDConfig(namespace=Namespace("users.myapp.com"), salt="v1")
ns = cfg.namespace_uuid
names = [f"user|salt:v1|email={e!r}" for e in emails]
legacy, std = [], []
for _ in range(rounds):  # interleaved, as in the parent
    t = time.perf_counter(); [generate_uuid_only("user", email=e, config=cfg) for e in emails]
    legacy.append(time.perf_counter() - t)
    t = time.perf_counter(); [uuid.uuid5(ns, s) for s in names]
    std.append(time.perf_counter() - t)
print(json.dumps({"legacy": statistics.median(legacy), "uuid5": statistics.median(std)}))
"""


def timed(fn: Callable[[], object], rounds: int) -> float:
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - t)
    return statistics.median(samples)


def legacy_peer(n: int, rounds: int) -> dict[str, float] | None:
    """Time uuid-forge 0.1.1 in its own virtualenv; None (with a note) if it cannot be installed."""
    with tempfile.TemporaryDirectory(prefix="uf-bench-legacy-") as tmp:
        env_dir = Path(tmp) / "venv"
        venv.create(env_dir, with_pip=True)
        py = env_dir / "bin" / "python"
        pip = subprocess.run([str(py), "-m", "pip", "install", "-q", "uuid-forge==0.1.1"], capture_output=True,
                             text=True, check=False)
        if pip.returncode != 0:
            print(f"note: could not install uuid-forge 0.1.1: {pip.stderr.strip().splitlines()[-1:]}", file=sys.stderr)
            return None
        done = subprocess.run([str(py), "-c", LEGACY_SCRIPT, str(n), str(rounds)], capture_output=True, text=True,
                              check=True, cwd=tmp)
        return json.loads(done.stdout)  # type: ignore[no-any-return]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=20_000, help="IDs per timed round")
    parser.add_argument("--rounds", type=int, default=9, help="rounds; medians are reported")
    parser.add_argument("--no-legacy", action="store_true", help="skip uuid-forge 0.1.1")
    args = parser.parse_args()
    n, rounds = args.n, args.rounds

    gen = UUIDGenerator(IDConfig(namespace=Namespace("users.myapp.com"), salt="v1"))
    ns = gen.config.namespace_uuid
    emails = [f"user{i}@example.com" for i in range(n)]
    keys = [{"email": e} for e in emails]
    names = [canonical_name("user", [], k, "v1") for k in keys]
    assert [uuid.uuid5(ns, s) for s in names[:100]] == gen.generate_many("user", keys[:100])

    # Interleaved: each round times all three in turn, so load on the machine hits them alike.
    samples: dict[str, list[float]] = {"std": [], "single": [], "many": []}
    for _ in range(rounds):
        samples["std"].append(timed(lambda: [uuid.uuid5(ns, s) for s in names], 1))
        samples["single"].append(timed(lambda: [gen.generate("user", email=e) for e in emails], 1))
        samples["many"].append(timed(lambda: gen.generate_many("user", keys), 1))
    std, single, many = (statistics.median(samples[k]) for k in ("std", "single", "many"))
    peer = None if args.no_legacy else legacy_peer(n, rounds)

    def rate(seconds: float) -> str:
        return f"{n / seconds / 1000:8.0f}k IDs/s"

    print(f"uuid-forge ID benchmark: {n} IDs per round, median of {rounds} rounds, Python {sys.version.split()[0]}")
    print(f"  stdlib uuid.uuid5 (same name text)   {rate(std)}")
    print(f"  uuid-forge generate()                {rate(single)}   {std / single:5.2f}x uuid5")
    print(f"  uuid-forge generate_many()           {rate(many)}   {std / many:5.2f}x uuid5 per ID")
    if peer:
        print(f"  uuid-forge 0.1.1 generate_uuid_only  {rate(peer['legacy'])}   (its process: uuid5 {rate(peer['uuid5'])})")
        # Each process also timed uuid5 on the same machine; dividing by it cancels load that hit
        # one process and not the other.
        scale = std / peer["uuid5"]
        print(f"  generate() vs 0.1.1                  {peer['legacy'] / single:5.2f}x raw, "
              f"{peer['legacy'] * scale / single:5.2f}x normalised by each process's uuid5")
        print(f"  generate_many() vs 0.1.1             {peer['legacy'] / many:5.2f}x raw, "
              f"{peer['legacy'] * scale / many:5.2f}x normalised")
    print("targets: generate >= 1.0x uuid5 and >= 2x 0.1.1; generate_many >= 3x uuid5 per ID")


if __name__ == "__main__":
    main()
