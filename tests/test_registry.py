"""The adapter registry: lookup order, suggestions, install hints, entry points, lazy imports."""

from __future__ import annotations

import importlib
import importlib.util
import json
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from uuid_forge.adapters.memory import MemoryAdapter

from uuid_forge import AdapterNotFoundError, DriverMissingError, ValidationError, open_store, register_adapter, registry
from uuid_forge.cli import main

DRIVERS = ("sqlalchemy", "psycopg", "pymysql", "pymongo", "bson", "redis", "elasticsearch", "elastic_transport", "pika")


def test_import_uuid_forge_imports_no_store_driver() -> None:
    code = f"import sys, uuid_forge, uuid_forge.cli; print([m for m in sys.modules if m.split('.')[0] in {DRIVERS!r}])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_each_adapter_imports_only_its_own_driver() -> None:
    own = {"mongodb": {"pymongo", "bson"}, "redis": {"redis"}, "elasticsearch": {"elasticsearch", "elastic_transport"},
           "rabbitmq": {"pika"}, "sql": {"sqlalchemy", "psycopg", "pymysql"}, "filesystem": set(), "memory": set()}
    needs = {"mongodb": "pymongo", "redis": "redis", "elasticsearch": "elasticsearch", "rabbitmq": "pika"}
    checked = [m for m in own if m not in needs or importlib.util.find_spec(needs[m]) is not None]
    assert {"sql", "filesystem", "memory"} <= set(checked)  # a store whose extra is missing cannot be imported
    for module in checked:
        allowed = own[module]
        code = (f"import sys, uuid_forge.adapters.{module}; "
                f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({DRIVERS!r})))")
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
        assert set(json.loads(out.replace("'", '"'))) <= allowed, module


def test_unknown_scheme_suggests_the_closest() -> None:
    with pytest.raises(AdapterNotFoundError, match="Did you mean 'redis'"):
        open_store("redsi://127.0.0.1:6379/0")
    with pytest.raises(AdapterNotFoundError, match="Known: .*amqp"):
        open_store("zzzzzz://x")


def test_url_without_scheme() -> None:
    with pytest.raises(ValidationError, match="has no scheme"):
        open_store("127.0.0.1:6379")


def test_missing_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.import_module

    def fake(name: str, *args: Any) -> Any:
        if name == "uuid_forge.adapters.mongodb":
            raise ModuleNotFoundError("No module named 'pymongo'", name="pymongo")
        return real(name, *args)

    monkeypatch.setattr(registry.importlib, "import_module", fake)
    with pytest.raises(DriverMissingError) as info:
        open_store("mongodb://127.0.0.1:27017/x")
    assert "pymongo" in str(info.value) and 'pip install "uuid-forge[mongodb]"' in str(info.value)


@pytest.mark.parametrize(("url", "driver", "extra"), [("postgresql://u:pw@127.0.0.1/x", "psycopg", "postgres"),
                                                      ("mariadb://u:pw@127.0.0.1/x", "pymysql", "mariadb"),
                                                      ("mysql+pymysql://u:pw@127.0.0.1/x", "pymysql", "mariadb")])
def test_a_missing_sql_driver_names_the_extra(monkeypatch: pytest.MonkeyPatch, url: str, driver: str,
                                             extra: str) -> None:
    """SQLAlchemy is installed, the backend's driver is not: the SQL adapter loads, then
    create_engine fails on the driver's import; the error is ours, with the install line."""
    pytest.importorskip("sqlalchemy")
    monkeypatch.setitem(sys.modules, driver, None)  # its import now fails as if not installed
    with pytest.raises(DriverMissingError) as info:
        open_store(url)
    assert repr(driver) in str(info.value) and f'pip install "uuid-forge[{extra}]"' in str(info.value)
    assert "pw" not in str(info.value)


def test_register_adapter_and_clobber(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(registry, "_registered", {})
    monkeypatch.setattr(registry, "registered", registry.MappingProxyType(registry._registered))

    class Custom(MemoryAdapter):
        name = "custom"

    register_adapter("custom", Custom)
    assert isinstance(open_store("custom://anything"), Custom)
    with pytest.raises(ValidationError, match="already served"):
        register_adapter("custom", MemoryAdapter)
    with pytest.raises(ValidationError, match="already served"):
        register_adapter("redis", MemoryAdapter)
    register_adapter("redis", MemoryAdapter, clobber=True)
    assert isinstance(open_store("redis://127.0.0.1:1/0"), MemoryAdapter)
    register_adapter("lazy", "uuid_forge.adapters.memory:MemoryAdapter")
    assert type(open_store("lazy://")) is MemoryAdapter
    with pytest.raises(TypeError):
        registry.registered["x"] = Custom  # type: ignore[index]


def test_third_party_adapter_through_an_entry_point(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "thirdparty_store.py").write_text(textwrap.dedent('''
        from uuid_forge.adapters.memory import MemoryAdapter

        class ThirdPartyAdapter(MemoryAdapter):
            name = "thirdparty"
    '''))
    dist = tmp_path / "thirdparty_store-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-store\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[uuid_forge.adapters]\nthirdparty = thirdparty_store:ThirdPartyAdapter\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    registry._entry_point_targets.cache_clear()
    store = open_store("thirdparty://x")
    assert type(store).__name__ == "ThirdPartyAdapter"
    assert "thirdparty" in registry.known_schemes()
    assert any(r["name"] == "thirdparty" and r["source"] == "entry point" for r in registry.available())
    registry._entry_point_targets.cache_clear()


def test_adapters_command_lists_every_builtin(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["adapters", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    names = {r["name"] for r in rows}
    assert {"memory", "file", "postgresql", "sqlite", "mariadb", "mongodb", "redis", "elasticsearch", "rabbitmq"} <= names
    for r in rows:
        if r["name"] in ("memory", "file", "sqlite"):  # no driver beyond the core dependencies
            assert r["install"] == "built in"
        else:
            assert r["install"].startswith('pip install "uuid-forge[')


def test_adapters_table_fits_80_columns_without_cutting(capsys: pytest.CaptureFixture[str],
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")  # an 80-column terminal (no terminal and no COLUMNS: never cut, wider)
    assert main(["adapters"]) == 0
    text = capsys.readouterr().out
    assert "…" not in text  # folded, never cut
    assert max(len(line) for line in text.splitlines()) <= 80
    assert 'pip install "uuid-forge[EXTRA]"' in text and "elasticsearch" in text and "built in" in text
