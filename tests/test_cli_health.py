"""From a fresh-eyes run: ``stores`` as a health check a scheduler can trust, and ``write`` of one
entity saying which ID it wrote. Embedded stores plus a Redis port nothing listens on (a fake of
nothing: a refused connection is what a down Redis gives)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from . import scaffold

SALT = {"UUID_FORGE_SALT": "health-salt"}


def _config(tmp_path: Path, cache_optional: bool | None) -> str:
    stores: dict[str, str | dict[str, object]] = {"db": f"sqlite:///{tmp_path}/src.db",
                                                  "files": f"file://{tmp_path}/files?fsync=false"}
    if cache_optional is not None:
        stores["cache"] = {"url": "redis://127.0.0.1:1/0?socket_connect_timeout=0.5", "optional": cache_optional}
    return str(scaffold.write_forge_toml(tmp_path / "uf.toml", stores, "db", namespace="health.example"))


def test_stores_exits_0_when_all_answer(tmp_path: Path) -> None:
    code, out, _ = scaffold.run_cli(["stores", "-c", _config(tmp_path, None)], SALT, columns=80)
    assert code == 0 and f"sqlite:///{tmp_path}/src.db" in out  # the URL whole, in the caption


@scaffold.requires_driver("redis")
@pytest.mark.parametrize(("optional", "expected"), [(False, 2), (True, 0)])
def test_stores_fails_when_a_required_store_is_down(tmp_path: Path, optional: bool, expected: int) -> None:
    code, out, err = scaffold.run_cli(["stores", "-c", _config(tmp_path, optional), "--json"], SALT)
    rows = {r["name"]: r for r in json.loads(out)}
    assert not rows["cache"]["reachable"] and rows["db"]["reachable"]
    assert code == expected, err
    if expected:
        assert "not reachable: cache" in err and "Traceback" not in err


def test_a_single_write_names_its_id_as_generate_gives_it(tmp_path: Path) -> None:
    conf = _config(tmp_path, None)
    code, out, err = scaffold.run_cli(["write", "-c", conf, "user", "-k", "email=a@example.com", "-d", "n:=1",
                                       "--json"], SALT)
    assert code == 0, err
    code, generated, _ = scaffold.run_cli(["generate", "-c", conf, "user", "-a", "email=a@example.com"], SALT)
    assert json.loads(out)["id"] == generated.strip()
