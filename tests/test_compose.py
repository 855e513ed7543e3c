"""docker-compose.yml serves the very URLs the tests use, with real images and healthchecks."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML is in the test extra")

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
TEXT = (ROOT / "docker-compose.yml").read_text()

# service -> (image prefix, the URL the tests use for it)
EXPECTED = {
    "postgres": ("postgres:", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    "mariadb": ("mariadb:", "mysql+pymysql://root@127.0.0.1:3306/test"),
    "redis": ("redis:", "redis://127.0.0.1:6379/15"),
    "rabbitmq": ("rabbitmq:", "amqp://guest:guest@127.0.0.1:5672/uuid_forge_test"),  # made through 15672
    "mongodb": ("mongo:", "mongodb://127.0.0.1:27017/uuid_forge_test"),
    "elasticsearch": ("docker.elastic.co/elasticsearch/elasticsearch:8.", "elasticsearch+http://127.0.0.1:9200"),
}


def test_every_store_has_a_service_with_a_real_image_and_healthcheck() -> None:
    services = COMPOSE["services"]
    assert set(EXPECTED) <= set(services)
    for name, (image, _) in EXPECTED.items():
        svc = services[name]
        assert svc["image"].startswith(image), name
        assert ":latest" not in svc["image"]
        check = svc["healthcheck"]["test"]
        assert check and check[0] in ("CMD", "CMD-SHELL"), name


@pytest.mark.parametrize("service", sorted(EXPECTED))
def test_ports_match_the_test_urls(service: str) -> None:
    url = EXPECTED[service][1]
    parts = urlsplit(url.replace("elasticsearch+", ""))
    published = {str(p) for p in COMPOSE["services"][service]["ports"]}
    assert f"{parts.hostname}:{parts.port}:{parts.port}" in published


def test_default_urls_in_the_test_suite_agree(monkeypatch: pytest.MonkeyPatch) -> None:
    from integration import servers

    for var in servers.ENV_VARS.values():  # the defaults, not this shell's UUID_FORGE_TEST_*_URL overrides
        monkeypatch.delenv(var, raising=False)
    defaults = servers.default_urls()
    for key, service in (("postgres", "postgres"), ("mariadb", "mariadb"), ("redis", "redis"), ("amqp", "rabbitmq")):
        assert defaults[key] == EXPECTED[service][1]
    for service in ("mongodb", "elasticsearch"):
        assert EXPECTED[service][1] in TEXT  # documented at the top of the compose file


def test_credentials_match_what_the_urls_assume() -> None:
    services = COMPOSE["services"]
    assert services["postgres"]["environment"]["POSTGRES_HOST_AUTH_METHOD"] == "trust"
    assert services["postgres"]["environment"]["POSTGRES_DB"] == "test"
    env = services["mariadb"]["environment"]
    assert str(env.get("MARIADB_ALLOW_EMPTY_ROOT_PASSWORD")).lower() in ("1", "yes", "true")
    assert env["MARIADB_DATABASE"] == "test"
    es_env = services["elasticsearch"]["environment"]
    flat = " ".join(es_env) if isinstance(es_env, list) else " ".join(f"{k}={v}" for k, v in es_env.items())
    assert "discovery.type=single-node" in flat and "xpack.security.enabled=false" in flat
