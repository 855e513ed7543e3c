"""The audit's outputs for people and for alerting, from real runs against real servers.

* ``audit --html``: a real audit with planted faults (PostgreSQL source, Redis and files),
  rendered by a real headless Chromium: a screenshot that is not blank, bars in the chart (in
  the DOM and as coloured pixels), no console error, and a store's ``<script>`` key shown as text.
* ``--metrics``: the finding counts of a real drifted audit (exit 1) in the file, and a run with
  a required store down (exit 2) that still writes its file and keeps the last success.

Chromium comes from Debian (``apt-get install chromium``; .ci/services.sh installs it). Without
it these browser tests skip locally and fail under CI=true.
"""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import time
import uuid
import zlib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from uuid_forge import Forge, html_report

from .conftest import IN_CI
from .scaffold import FAST_WRITE, forget_redis_type, run_cli, write_forge_toml
from .servers import PrivateRedis

prometheus_parser = pytest.importorskip("prometheus_client.parser")

SALT = "report-k-salt-not-shown"
EVIL_KEY = "<script>document.title='pwned'</script>"


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return run_cli(*args, salt=SALT)


def metric_values(path: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {(s.name, tuple(sorted((k, v) for k, v in s.labels.items() if k not in ("entity_type", "partition")))):
            s.value for f in prometheus_parser.text_string_to_metric_families(path.read_text()) for s in f.samples}


def value(found: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return found[(name, tuple(sorted(labels.items())))]


def write_config(tmp_path: Path, source: str, cache: str, et: str | None = None) -> Path:
    """The test's configuration; with ``et``, that type declares its key (``email``, held in the
    data), so an orphan of it is proven ours and repairable."""
    extra = f'[types.{et}]\nkey = ["email"]\n' if et else ""
    return write_forge_toml(tmp_path / "uuid-forge.toml",
                            {"db": source, "cache": f"{cache}?socket_timeout=2&socket_connect_timeout=2",
                             "files": f"file://{tmp_path}/files?fsync=false"},
                            "db", namespace="report.uuid-forge.test", write=FAST_WRITE, extra=extra)


def write_people(path: Path, et: str, n: int) -> None:
    lines = "".join(json.dumps({"entity_type": et, "key": {"email": f"u{i}@example.com"},
                                "data": {"email": f"u{i}@example.com", "n": i}}) + "\n"
                    for i in range(n))
    (path.parent / "people.jsonl").write_text(lines)
    done = cli("write", "-c", str(path), "--jsonl", str(path.parent / "people.jsonl"), "--json")
    assert done.returncode == 0, done.stderr


@pytest.fixture
def drifted(postgres_url: str, redis_url: str, tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """200 entities in PostgreSQL, Redis and files, then drift planted behind uuid-forge's back:
    3 missing and 2 stale in Redis, an orphan in files, foreign keys in Redis (one named like a script)."""
    redis = pytest.importorskip("redis")
    et = f"rep{uuid.uuid4().hex[:8]}"
    path = write_config(tmp_path, postgres_url, redis_url, et)
    write_people(path, et, 200)
    r = redis.Redis.from_url(redis_url)
    with Forge.from_config(str(path), env={"UUID_FORGE_SALT": SALT}) as forge:
        ids = [forge.id_for(et, {"email": f"u{i}@example.com"}) for i in range(5)]
    r.delete(*(f"{et}:{i}" for i in ids[:3]))
    for i in ids[3:5]:
        r.set(f"{et}:{i}", '{"n":-1}')  # the default layout: the data as a JSON string
    foreign = [f"{et}:{EVIL_KEY}", f"{et}:session-john@example.com"]
    for k in foreign:
        r.set(k, "someone else's")
    with Forge.from_config(str(path), env={"UUID_FORGE_SALT": SALT}) as forge:  # an entity the source lost
        orphan = str(forge.id_for(et, {"email": "gone@example.com"}))
    folder = tmp_path / "files" / et / orphan[:2] / orphan[2:4]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{orphan}.json").write_text('{"email":"gone@example.com","n":-5}\n')
    yield path, et
    r.delete(*foreign)
    r.close()
    with Forge.from_config(str(path), env={"UUID_FORGE_SALT": SALT}) as forge:
        for h in forge.stores:
            h.adapter.drop(et, prover=forge.prover)
    forget_redis_type(redis_url, et)


# ------------------------------------------------------------------ a tiny PNG reader (no Pillow needed)

def read_png(path: Path) -> tuple[int, int, int, list[bytes]]:
    """(width, height, bytes per pixel, rows) of an 8-bit RGB/RGBA non-interlaced PNG (what Chromium writes)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat = 8, []
    width = height = depth = ctype = interlace = 0
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        pos += 12 + length
    assert depth == 8 and ctype in (2, 6) and interlace == 0, f"unsupported PNG ({depth}, {ctype}, {interlace})"
    bpp = 3 if ctype == 2 else 4
    raw = zlib.decompress(b"".join(idat))
    stride = width * bpp
    rows: list[bytes] = []
    prev = bytearray(stride)
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 255
        elif kind == 2:
            line = bytearray((a + b) & 255 for a, b in zip(line, prev))
        elif kind == 3:
            for i in range(stride):
                line[i] = (line[i] + (((line[i - bpp] if i >= bpp else 0) + prev[i]) >> 1)) & 255
        elif kind == 4:
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, bpp, rows


def colours(rows: list[bytes], bpp: int) -> Counter[bytes]:
    return Counter(row[i:i + 3] for row in rows for i in range(0, len(row), bpp))


# ------------------------------------------------------------------ Chromium

def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
    if found:
        return found
    message = "no chromium binary (apt-get install chromium; .ci/services.sh installs it)"
    if IN_CI:
        pytest.fail(f"CI=true and {message}", pytrace=False)
    pytest.skip(message)


def browse(page: Path, tmp_path: Path, *mode: str) -> subprocess.CompletedProcess[str]:
    """Run headless Chromium on ``page``; its console messages go to stderr as ``:CONSOLE`` lines."""
    # --no-sandbox: it renders only our own local file, and the sandbox cannot start as root or in
    # a container without user namespaces
    args = [chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--no-first-run",
            "--disable-extensions", f"--user-data-dir={tmp_path / 'chromium-profile'}", "--enable-logging=stderr",
            "--v=0", "--window-size=1200,1600", *mode, page.resolve().as_uri()]
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False)


def console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ":CONSOLE" in line or "Uncaught" in line]


def test_html_report_in_headless_chromium(drifted: tuple[Path, str], tmp_path: Path) -> None:
    path, et = drifted
    page, prom = tmp_path / "audit.html", tmp_path / "audit.prom"
    done = cli("audit", "-c", str(path), "--entity", et, "--html", str(page), "--metrics", str(prom), "--json")
    assert done.returncode == 1, done.stderr
    assert SALT not in done.stdout + done.stderr and "Traceback" not in done.stderr
    stores, hashed = json.loads(done.stdout)["stores"], json.loads(done.stdout)["hashed"]
    assert stores["cache"]["missing"] == 3 and stores["cache"]["stale"] == 2 and stores["cache"]["foreign"] == 2
    assert stores["files"]["orphan"] == 1
    assert oct(page.stat().st_mode & 0o777) == "0o600"
    text = page.read_text()
    assert "<script" not in text and "john@example.com" not in text  # escaped, and masked

    # the checker itself must be able to see a console error: a page that throws is caught
    canary = tmp_path / "canary.html"
    canary.write_text("<!DOCTYPE html><p>x</p><script>console.error('canary'); notDefined();</script>")
    assert any("Uncaught" in line for line in console_errors(browse(canary, tmp_path, "--dump-dom").stderr))

    shot = tmp_path / "audit.png"
    took = browse(page, tmp_path, f"--screenshot={shot}")
    assert took.returncode == 0, took.stderr[-2000:]
    assert console_errors(took.stderr) == []
    assert shot.stat().st_size > 20_000
    width, height, bpp, rows = read_png(shot)
    assert (width, height) == (1200, 1600)
    seen = colours(rows[::2], bpp)
    assert len(seen) > 50, "the screenshot is (nearly) blank"
    for cls in ("missing", "stale", "orphan"):  # the chart's bars, as pixels of their class's colour
        rgb = bytes.fromhex(html_report.COLORS[cls][1:])
        assert seen[rgb] > 100, f"no {cls} bar in the screenshot"

    dom = browse(page, tmp_path, "--dump-dom")
    assert dom.returncode == 0 and console_errors(dom.stderr) == []
    assert "<script" not in dom.stdout  # the key named like a script stayed text
    assert "<title>uuid-forge audit" in dom.stdout and "pwned" not in dom.stdout.split("</title>")[0]
    for cls in ("missing", "stale", "orphan"):
        assert f'class="bar bar-{cls}"' in dom.stdout
    assert "Slowest partitions" in dom.stdout and f">{et}</td>" in dom.stdout
    assert "Compared by hashes" in dom.stdout  # the stores compared by hashes, or that none was

    # the same run's metrics: the report's counts, exit 1, no success recorded
    found = metric_values(prom)
    for store, counts in stores.items():
        for cls, n in counts.items():
            assert value(found, "uuid_forge_audit_findings", store=store, **{"class": cls}) == n
    assert value(found, "uuid_forge_audit_exit_status") == 1
    assert value(found, "uuid_forge_audit_entities") == 200
    for store, counts in hashed.items():  # a store hashing as the source does: its counters, as --json has them
        for counter, n in counts.items():
            assert value(found, "uuid_forge_audit_hashed", store=store, counter=counter) == n
    assert value(found, "uuid_forge_audit_last_success_timestamp_seconds") == 0


def test_metrics_written_when_a_required_store_is_down(postgres_url: str, tmp_path: Path) -> None:
    pytest.importorskip("redis")
    et = f"rep{uuid.uuid4().hex[:8]}"
    with PrivateRedis() as cache:
        path = write_config(tmp_path, postgres_url, cache.url)
        try:
            write_people(path, et, 50)
            prom = tmp_path / "audit.prom"
            ok = cli("audit", "-c", str(path), "--entity", et, "--metrics", str(prom))
            assert ok.returncode == 0, ok.stderr
            success = value(metric_values(prom), "uuid_forge_audit_last_success_timestamp_seconds")
            assert success > 0
            cache.kill()
            time.sleep(0.05)
            down = cli("audit", "-c", str(path), "--entity", et, "--metrics", str(prom))
            assert down.returncode == 2 and "Traceback" not in down.stderr
            found = metric_values(prom)
            assert value(found, "uuid_forge_audit_exit_status") == 2
            assert value(found, "uuid_forge_audit_last_success_timestamp_seconds") == success  # kept: alerts on age
            assert value(found, "uuid_forge_audit_last_run_timestamp_seconds") > success

            wprom = tmp_path / "write.prom"
            failed = cli("write", "-c", str(path), et, "-k", "email=late@example.com", "--metrics", str(wprom))
            assert failed.returncode == 2
            found = metric_values(wprom)
            assert value(found, "uuid_forge_write_exit_status") == 2
            assert value(found, "uuid_forge_write_records", store="cache", outcome="pending") == 1
            assert value(found, "uuid_forge_write_journal_pending_entries", store="cache") == 1
            assert value(found, "uuid_forge_write_last_success_timestamp_seconds") == 0
        finally:
            with Forge.from_config(str(path), env={"UUID_FORGE_SALT": SALT}) as forge:
                for h in forge.stores:
                    if h.name != "cache":
                        h.adapter.drop(et, prover=forge.prover)
