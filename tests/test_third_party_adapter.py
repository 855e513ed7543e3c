"""A third party's adapter registers through the ``uuid_forge.adapters`` entry point and passes
the shipped contract suite, exactly as a separately installed package would.

``tests/plugin/acme_uf_kv.py`` is the plugin's code. The fast tests make it visible the way an
installed distribution is (a ``*.dist-info`` folder with ``entry_points.txt`` on ``sys.path``,
which is what ``importlib.metadata`` reads); the slow one installs it with pip.
"""

from __future__ import annotations

import dbm.dumb
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from uuid_forge import Record, open_store
from uuid_forge.contract import Adapter
from uuid_forge.registry import BUILTIN, ENTRY_POINT_GROUP, adapter_class, known_schemes
from uuid_forge.testing import AdapterContract

PLUGIN = Path(__file__).resolve().parent / "plugin" / "acme_uf_kv.py"
ROOT = Path(__file__).resolve().parent.parent


def _install_by_dist_info(where: Path) -> Path:
    """The plugin module plus the metadata an installed distribution of it would have."""
    where.mkdir(parents=True, exist_ok=True)
    shutil.copy(PLUGIN, where / PLUGIN.name)
    info = where / "acme_uf_kv-1.0.dist-info"
    info.mkdir(exist_ok=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: acme-uf-kv\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[{ENTRY_POINT_GROUP}]\nacmekv = acme_uf_kv:KVFileAdapter\n")
    return where


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The plugin installed for this process: on sys.path, its entry point visible to the registry."""
    from uuid_forge import registry

    where = _install_by_dist_info(tmp_path_factory.mktemp("site"))
    sys.path.insert(0, str(where))
    registry._entry_point_targets.cache_clear()
    yield where
    sys.path.remove(str(where))
    sys.modules.pop("acme_uf_kv", None)
    registry._entry_point_targets.cache_clear()


def test_the_entry_point_serves_the_plugins_scheme(plugin_path: Path) -> None:
    assert "acmekv" in known_schemes()
    cls = adapter_class("acmekv")
    assert cls.__module__ == "acme_uf_kv" and cls.__name__ == "KVFileAdapter"


class TestThirdPartyAdapter(AdapterContract):
    """The same contract every built-in adapter passes."""

    bulk_size = 2_000

    @pytest.fixture
    def store(self, plugin_path: Path, tmp_path: Path) -> Iterator[Adapter]:
        with open_store(f"acmekv://{tmp_path}/kv") as s:
            yield s

    def assert_stored_natively(self, store: Adapter, record: Record) -> None:
        path = store.path  # type: ignore[attr-defined]
        store.close()
        with dbm.dumb.open(path, "r") as raw:
            keys = [k.decode() for k in raw]
        assert keys == [f"{record.entity_type}/{record.id.hex}"]

    # -- ownership (issue 18): another application's field in the stored data --------------------
    def add_foreign_field(self, store: Adapter, entity_type: str, ident: uuid.UUID, name: str, value: str) -> bool:
        db = store._db  # type: ignore[attr-defined]
        key = store.key_of(entity_type, ident)  # type: ignore[attr-defined]
        doc = json.loads(db[key])
        db[key] = json.dumps({**doc, "data": json.dumps({**json.loads(doc["data"]), name: value})})
        return True

    def read_foreign_field(self, store: Adapter, entity_type: str, ident: uuid.UUID, name: str) -> Any:
        doc = json.loads(store._db[store.key_of(entity_type, ident)])  # type: ignore[attr-defined]
        return json.loads(doc["data"]).get(name)


def _cli_adapters(env: dict[str, str]) -> set[str]:
    out = subprocess.run([sys.executable, "-m", "uuid_forge", "adapters", "--json"], env=env, check=True,
                         capture_output=True, text=True, timeout=120).stdout
    rows = json.loads(out)
    rows = rows.get("adapters", rows) if isinstance(rows, dict) else rows
    return {scheme for row in rows for scheme in ([row.get("name")] + list(row.get("schemes", [])))}


def test_cli_lists_every_builtin_adapter_and_the_plugin(tmp_path: Path) -> None:
    where = _install_by_dist_info(tmp_path / "site")
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(where), os.environ.get("PYTHONPATH", "")]))
    listed = _cli_adapters(env)
    assert {spec.name for spec in BUILTIN} <= listed
    assert "acmekv" in listed


@pytest.mark.slow
def test_pip_installed_plugin_registers_and_round_trips(tmp_path: Path) -> None:
    """The plugin as a real distribution: pip builds and installs it; its entry point is found."""
    project = tmp_path / "acme-uf-kv"
    project.mkdir()
    shutil.copy(PLUGIN, project / PLUGIN.name)
    (project / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=68"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "acme-uf-kv"\nversion = "1.0"\n[tool.setuptools]\npy-modules = ["acme_uf_kv"]\n'
        f'[project.entry-points."{ENTRY_POINT_GROUP}"]\nacmekv = "acme_uf_kv:KVFileAdapter"\n')
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                    "--target", str(target), str(project)], check=True, timeout=300)
    env = dict(os.environ, PYTHONPATH=str(target))
    assert "acmekv" in _cli_adapters(env)
    code = ("import uuid, sys\nfrom uuid_forge import Record, open_store\n"
            f"s = open_store('acmekv://{tmp_path}/kv')\n"
            "i = uuid.uuid5(uuid.NAMESPACE_DNS, 'x')\n"
            "s.put_many([Record('user', i, {'n': 1})])\n"
            "print(s.get_many('user', [i])[i].data)\n")
    out = subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True, text=True,
                         timeout=120).stdout
    assert out.strip() == "{'n': 1}"
