"""Other applications' names are masked in every output format of ``audit`` (issue 18, rule 6).

Another application keeps keys holding e-mail addresses in the Redis database uuid-forge shares.
The HTML report always showed them as shapes; the text output, ``--json`` and the ``--output``
file printed them as they are. Now all four go through one masking function
(uuid_forge.masking), and ``--show-values`` shows them in all four alike.

Servers: Redis (the shared database); the source is SQLite.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.scaffold import driver_missing

redis = pytest.importorskip("redis", reason=driver_missing("redis"))

from uuid_forge import IDConfig, Namespace
from uuid_forge.masking import mask_value

from .scaffold import make_forge, run_cli, write_forge_toml

EMAILS = ("john.doe@example.com", "alice@corp.example")


@pytest.fixture
def shared(redis_url: str, tmp_path: Path) -> Iterator[tuple[Path, str, list[str]]]:
    """A config (SQLite source, the shared Redis db), three of our records, and two foreign keys."""
    et = f"u{uuid.uuid4().hex[:8]}"
    urls = {"db": f"sqlite:///{tmp_path}/source.db", "cache": redis_url}
    config = write_forge_toml(tmp_path / "uuid-forge.toml", urls, "db", namespace="masked.uuid-forge.test")
    with make_forge(tmp_path, urls["db"], ("cache", urls["cache"]), ids=IDConfig(
            namespace=Namespace("masked.uuid-forge.test"), salt="integration-salt-not-shown")) as forge:
        forge.write_many([(et, {"n": i}, {"n": i}) for i in range(3)])
    raw = redis.Redis.from_url(redis_url)
    foreign = [f"{et}:session:{EMAILS[0]}", f"{et}:{EMAILS[1]}"]
    for key in foreign:
        raw.set(key, "another application's value")
    yield config, et, foreign
    raw.delete(*foreign, *raw.keys(f"{et}:*"))
    raw.close()


def _no_email(text: str) -> None:
    for email in EMAILS:
        assert email not in text
        assert email.split("@")[0] not in text  # not even the local part


def test_foreign_redis_keys_are_masked_in_text_json_and_output(shared: tuple[Path, str, list[str]],
                                                               tmp_path: Path) -> None:
    config, et, foreign = shared
    text = run_cli("audit", "-c", str(config), "-e", et, columns=400)
    assert text.returncode == 0, text.stdout + text.stderr  # foreign entries are not a finding
    assert "left alone" in text.stdout and mask_value(f"session:{EMAILS[0]}") in text.stdout
    _no_email(text.stdout + text.stderr)

    output = tmp_path / "audit.json"
    as_json = run_cli("audit", "-c", str(config), "-e", et, "--json", "--output", str(output))
    assert as_json.returncode == 0, as_json.stdout + as_json.stderr
    for body in (as_json.stdout, output.read_text(encoding="utf-8")):
        _no_email(body)
        samples = json.loads(body)["foreign_samples"]["cache"]
        assert sorted(samples) == sorted(f"{et}: {mask_value(k)}" for k in foreign)

    shown = run_cli("audit", "-c", str(config), "-e", et, "--json", "--show-values")
    assert sorted(json.loads(shown.stdout)["foreign_samples"]["cache"]) == sorted(f"{et}: {k}" for k in foreign)


def test_the_html_report_masks_them_the_same_way(shared: tuple[Path, str, list[str]], tmp_path: Path) -> None:
    config, et, _ = shared
    page = tmp_path / "audit.html"
    done = run_cli("audit", "-c", str(config), "-e", et, "--json", "--html", str(page))
    assert done.returncode == 0, done.stdout + done.stderr
    html = page.read_text(encoding="utf-8")
    _no_email(html)
    for sample in json.loads(done.stdout)["foreign_samples"]["cache"]:
        assert sample.split(": ", 1)[1] in html  # the text formats show what the page shows
