"""Each adapter's declared extra exists in pyproject.toml and installs that adapter's driver.

The registry (``uuid_forge.registry.BUILTIN``) tells a user ``pip install "uuid-forge[EXTRA]"``
when a driver is missing, and ``uuid-forge adapters`` prints the same extra; these tests fail when
that hint names an extra pyproject.toml lacks, or one that does not install the driver, or when
``all`` leaves a store's extra out.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from uuid_forge.registry import BUILTIN, AdapterSpec

PYPROJECT = Path(__file__).resolve().parent.parent / "pyproject.toml"
SELF = "uuid-forge"


def _extras() -> dict[str, list[str]]:
    with PYPROJECT.open("rb") as f:
        return tomllib.load(f)["project"]["optional-dependencies"]  # type: ignore[no-any-return]


def _name(requirement: str) -> str:
    """The distribution name of a requirement string, normalised (PEP 503, '-' for '_' and '.')."""
    match = re.match(r"\s*([A-Za-z0-9][A-Za-z0-9._-]*)", requirement)
    assert match, f"unparsable requirement {requirement!r} in {PYPROJECT}"
    return re.sub(r"[-_.]+", "-", match.group(1)).lower()


def _self_extras(requirement: str) -> set[str]:
    """``uuid-forge[a,b]`` -> {"a", "b"}; any other requirement -> empty."""
    match = re.match(r"\s*uuid[-_.]forge\s*\[([^\]]*)\]", requirement, re.IGNORECASE)
    return {e.strip() for e in match.group(1).split(",") if e.strip()} if match else set()


def _installs(extra: str, extras: dict[str, list[str]], seen: frozenset[str] = frozenset()) -> set[str]:
    """Every distribution an extra installs, following ``uuid-forge[...]`` self-references."""
    names: set[str] = set()
    for req in extras[extra]:
        nested = _self_extras(req)
        if nested:
            for other in nested - seen:
                assert other in extras, f"[{extra}] refers to uuid-forge[{other}], which pyproject.toml lacks"
                names |= _installs(other, extras, seen | {extra})
        else:
            names.add(_name(req))
    return names


STORE_SPECS = [s for s in BUILTIN if s.extra is not None]


def test_some_adapters_declare_an_extra() -> None:
    """The checks below must check something: the driver-backed stores declare their extras."""
    assert {s.name for s in STORE_SPECS} >= {"postgresql", "mariadb", "mongodb", "redis", "elasticsearch",
                                             "rabbitmq"}


@pytest.mark.parametrize("spec", STORE_SPECS, ids=lambda s: s.name)
def test_declared_extra_exists_and_names_the_driver(spec: AdapterSpec) -> None:
    extras = _extras()
    assert spec.extra in extras, (f"adapter {spec.name!r} says pip install \"uuid-forge[{spec.extra}]\", "
                                  f"but {PYPROJECT.name} has no such extra (it has {sorted(extras)})")
    installed = _installs(spec.extra, extras)  # type: ignore[arg-type]
    assert spec.drivers, f"adapter {spec.name!r} declares extra {spec.extra!r} but no driver module"
    for driver in spec.drivers:
        assert _name(driver) in installed, (f"extra [{spec.extra}] of adapter {spec.name!r} does not install its "
                                            f"driver {driver!r} (it installs {sorted(installed)})")


def test_all_includes_every_store_extra() -> None:
    extras = _extras()
    assert "all" in extras, f"{PYPROJECT.name} has no [all] extra"
    listed = set().union(*(_self_extras(r) for r in extras["all"]))
    missing = {s.extra for s in STORE_SPECS} - listed
    assert not missing, f"[all] leaves out the store extras {sorted(missing)}"  # type: ignore[type-var]
    # and what it installs covers every store's drivers, whichever way [all] is written
    installed = _installs("all", extras)
    assert {_name(d) for s in STORE_SPECS for d in s.drivers} <= installed


def test_built_in_adapters_need_no_extra_driver() -> None:
    """An adapter without an extra must run on the core dependencies alone (else its hint misleads)."""
    with PYPROJECT.open("rb") as f:
        core = {_name(r) for r in tomllib.load(f)["project"]["dependencies"]}
    for spec in BUILTIN:
        if spec.extra is None:
            assert {_name(d) for d in spec.drivers} <= core, (spec.name, spec.drivers, sorted(core))


def test_the_parsers_read_requirement_strings() -> None:
    """The helpers above can fail: a wrong extra or a missing driver is seen."""
    assert _name("psycopg[binary]>=3.1") == "psycopg" and _name("prometheus_client>=0.17") == "prometheus-client"
    fake = {"a": ["redis>=5"], "b": ["uuid-forge[a]", "pika"], "all": ["uuid-forge[b]"]}
    assert _installs("all", fake) == {"redis", "pika"}
    assert _self_extras("uuid-forge[postgres, redis]") == {"postgres", "redis"}
    assert "pymongo" not in _installs("b", fake)


BLOCKER = '''"""pytest plugin: the store drivers behave as if they were not installed."""
import sys
for _name in list(sys.modules):
    if _name.split(".")[0] in {blocked!r}:
        del sys.modules[_name]
for _name in {blocked!r}:
    sys.modules[_name] = None  # import raises ModuleNotFoundError; importlib.util.find_spec gives None
'''
DRIVERS = ("redis", "hiredis", "pymongo", "bson", "elasticsearch", "elastic_transport", "pika", "psycopg", "pymysql",
           "prometheus_client")


def test_fast_tests_collect_without_any_store_driver(tmp_path: Path) -> None:
    """A newcomer without the drivers gets skips with reasons, never a collection error.

    (The run itself was checked the same way: ``PYTHONPATH=DIR python -m pytest -p blocker tests/``
    gives passes and skips naming the extra to install.)
    """
    (tmp_path / "uf_block_drivers.py").write_text(BLOCKER.format(blocked=DRIVERS))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), os.environ.get("PYTHONPATH")]))}
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "uf_block_drivers", "-p", "no:cacheprovider",
                           "--collect-only", "-q", "-m", "not slow", str(Path(__file__).parent)],
                          capture_output=True, text=True, env=env, timeout=300, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "error" not in done.stdout.lower().split("short test summary")[-1], done.stdout[-3000:]
    assert "collected" in done.stdout, done.stdout[-3000:]
