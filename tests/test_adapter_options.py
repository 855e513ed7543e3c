"""Declared adapter options: one parser for URL query and keywords, one error class, one table per
adapter (CLI and docs), and a core that never imports the adapters folder."""

from __future__ import annotations

import importlib.util
import json
import pkgutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

import uuid_forge
from uuid_forge import open_store
from uuid_forge.cli import cli
from uuid_forge.contract import Adapter
from uuid_forge.errors import ConfigError, OptionError, ValidationError
from uuid_forge.optiondocs import END, options_markdown, replace_section
from uuid_forge.options import BATCH_SIZE, Option, parse_options
from uuid_forge.registry import BUILTIN, adapter_class

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "configuration.md"
DRIVERS = ("psycopg", "pymysql", "pymongo", "bson", "redis", "elasticsearch", "elastic_transport", "pika")

TABLE = (
    Option("mode", str, "fast", "how", choices=("fast", "safe"), aliases=("speed",)),
    Option("ttl", int, None, "seconds", minimum=1),
    Option("ratio", float, 0.5, "share", minimum=0, exclusive=True),
    Option("flag", bool, True, "on or off"),
    Option("name", str, "", "a name"),
    Option("columns", dict, None, "a mapping"),
    BATCH_SIZE,
)


def parse(url: str = "x://h/0", *, driver_query: bool = False, driver_keywords: bool = False,
          **keywords: Any) -> Any:
    return parse_options("demo", TABLE, url, keywords, driver_query=driver_query, driver_keywords=driver_keywords)


# -- the parser ------------------------------------------------------------------------------
def test_url_and_keyword_forms_give_the_same_values() -> None:
    from_url = parse("x://h/0?mode=safe&ttl=60&ratio=0.25&flag=no&name=app&batch_size=7")
    from_kw = parse(mode="safe", ttl=60, ratio=0.25, flag=False, name="app", batch_size=7)
    assert from_url.values == from_kw.values == {
        "mode": "safe", "ttl": 60, "ratio": 0.25, "flag": False, "name": "app", "columns": None, "batch_size": 7}
    assert from_url.given == from_kw.given == {"mode", "ttl", "ratio", "flag", "name", "batch_size"}


def test_defaults_and_keyword_wins_over_url() -> None:
    assert parse().values == {o.name: o.default for o in TABLE}
    opts = parse("x://h/0?ttl=60&mode=safe", ttl=5, mode=None)  # None: not given, the URL's value stays
    assert (opts["ttl"], opts["mode"]) == (5, "safe")


@pytest.mark.parametrize("text, value", [("true", True), ("1", True), ("yes", True), ("ON", True),
                                         ("false", False), ("0", False), ("no", False), ("off", False)])
def test_bool_conversion(text: str, value: bool) -> None:
    assert parse(f"x://h/0?flag={text}")["flag"] is value
    assert parse(flag=text)["flag"] is value


def test_type_conversion_and_empty_url_values() -> None:
    assert parse("x://h/0?ttl=%2060")["ttl"] == 60  # percent-decoded, stripped
    assert parse(ttl="60")["ttl"] == 60 and parse(ratio=1)["ratio"] == 1.0
    assert parse("x://h/0?ttl=")["ttl"] is None  # "?ttl=" means: not given
    assert parse("x://h/0?name=")["name"] == ""  # but text may be empty
    assert parse(columns={"id": "user_id"})["columns"] == {"id": "user_id"}


def test_alias_and_its_option() -> None:
    assert parse("x://h/0?speed=safe")["mode"] == "safe"
    assert parse("x://h/0?mode=fast&speed=safe")["mode"] == "fast"  # the option's own name wins
    assert parse(speed="safe")["mode"] == "safe"


@pytest.mark.parametrize("kwargs, expects", [
    ({"ttl": "soon"}, "expected an int >= 1"), ({"ttl": 0}, "expected an int >= 1"), ({"ttl": 1.5}, "an int"),
    ({"ttl": True}, "an int"), ({"ratio": 0}, "a number > 0"), ({"ratio": "nan"}, "a number"),
    ({"flag": "maybe"}, "true or false"), ({"mode": "slow"}, "one of 'fast', 'safe'"),
    ({"name": 5}, "expected text"), ({"columns": ["id"]}, "a mapping"), ({"batch_size": 0}, ">= 1"),
])
def test_bad_values_name_the_option_the_value_and_what_it_expects(kwargs: dict[str, Any], expects: str) -> None:
    (name, value), = kwargs.items()
    with pytest.raises(OptionError, match=expects) as info:
        parse(**kwargs)
    assert f"demo option {name}={value!r}" in str(info.value)
    assert (info.value.adapter, info.value.option) == ("demo", name)
    with pytest.raises(OptionError, match=r"\(URL query\): expected"):
        parse("x://h/0?ttl=soon")


def test_unknown_option_lists_the_valid_ones_with_a_suggestion() -> None:
    with pytest.raises(OptionError) as info:
        parse(tll=60)
    text = str(info.value)
    assert "demo: unknown option 'tll'. Did you mean 'ttl'?" in text
    assert "Valid options: mode, ttl, ratio, flag, name, columns (keyword only), batch_size" in text
    with pytest.raises(OptionError, match="unknown query parameter 'zzz'. Valid options: mode"):
        parse("x://h/0?zzz=red")
    with pytest.raises(OptionError, match="'columns' cannot come from the URL query"):
        parse("x://h/0?columns=id")


def test_one_error_class_that_old_callers_still_catch() -> None:
    assert issubclass(OptionError, ConfigError) and issubclass(OptionError, ValidationError)
    for error in (TypeError, ValueError):  # unknown keywords were TypeErrors, bad values ValueErrors
        with pytest.raises(error):
            parse(nope=1)
        with pytest.raises(error):
            parse(ttl="soon")


def test_driver_options_pass_through_except_typos() -> None:
    opts = parse("x://h/0?heartbeat=30&ttl=5&appname=a%20b", driver_query=True, serverSelectionTimeoutMS=500,
                 driver_keywords=True)
    assert opts.driver_query == [("heartbeat", "30"), ("appname", "a b")]
    assert opts.driver_keywords == {"serverSelectionTimeoutMS": 500}
    assert opts.url_names == {"ttl"}
    with pytest.raises(OptionError, match="Did you mean 'batch_size'"):
        parse("x://h/0?batch_sise=5", driver_query=True)  # a typo of ours never reaches the driver
    with pytest.raises(OptionError, match="Did you mean 'mode'"):
        parse(mdoe="safe", driver_keywords=True)
    assert parse("x://h/0?columns=x", driver_query=True).driver_query == [("columns", "x")]


# -- the adapters ----------------------------------------------------------------------------
def _classes() -> list[type[Adapter]]:
    found: dict[str, type[Adapter]] = {}
    for spec in BUILTIN:
        try:
            found.setdefault(spec.target, adapter_class(spec.schemes[0]))
        except ImportError:
            continue
    return list(found.values())


def test_every_adapter_declares_a_documented_table() -> None:
    classes = _classes()
    assert {c.name for c in classes} >= {"memory", "file"}
    for cls in classes:
        names = [o.name for o in cls.options]
        assert names and "batch_size" in names, cls.name
        assert len(names) == len(set(names)), cls.name
        for o in cls.options:
            assert len(o.doc) > 8 and o.type_name and o.default_text, (cls.name, o.name)
            if o.choices and o.default is not None:
                assert o.default in o.choices, (cls.name, o.name)


def test_adapters_reject_unknown_options_with_one_error(tmp_path: Path) -> None:
    with pytest.raises(OptionError, match="memory: unknown option 'batchsize'. Did you mean 'batch_size'"):
        open_store("memory://", batchsize=5)
    with pytest.raises(OptionError, match="file: unknown query parameter 'fsnyc'. Did you mean 'fsync'"):
        open_store(f"file://{tmp_path}?fsnyc=false")
    with pytest.raises(OptionError, match=r"file option fsync='sometimes' \(URL query\): expected true or false"):
        open_store(f"file://{tmp_path}?fsync=sometimes")
    with pytest.raises(OptionError, match="sql: unknown option 'tabel_prefix'"):
        open_store(f"sqlite:///{tmp_path / 'x.db'}", tabel_prefix="a_")
    with pytest.raises(OptionError, match=r"sql option id_format='binary'.*one of 'uuid', 'hex', 'string'"):
        open_store(f"sqlite:///{tmp_path / 'x.db'}?id_format=binary")
    assert open_store(f"file://{tmp_path}?fsync=no&batch_size=7").batch_size == 7
    assert open_store("memory://?batch_size=3").batch_size == 3


@pytest.mark.parametrize("url, keywords, expected", [
    ("redis://127.0.0.1:1/0?id_format=base64url&ttl=60", {}, {"key_format": "base64url", "ttl": 60}),
    ("redis://127.0.0.1:1/0?ttl=60", {"ttl": 5, "prefix": "app"}, {"ttl": 5, "prefix": "app:"}),
    ("redis://127.0.0.1:1/0?health_check_interval=10", {}, {"key_format": "string", "ttl": None}),
])
def test_redis_options_both_forms(url: str, keywords: dict[str, Any], expected: dict[str, Any]) -> None:
    pytest.importorskip("redis")
    store = open_store(url, **keywords)
    assert {k: getattr(store, k) for k in expected} == expected
    with pytest.raises(OptionError, match="Did you mean 'key_format'"):
        open_store("redis://127.0.0.1:1/0?key_fromat=base64url")


# -- CLI and docs ----------------------------------------------------------------------------
def test_cli_prints_one_adapters_options() -> None:
    runner = CliRunner()
    result = runner.invoke(cli, ["adapters", "--options", "file"])
    assert result.exit_code == 0 and "fsync" in result.output and "batch_size" in result.output
    result = runner.invoke(cli, ["adapters", "--options", "memory", "--json"])
    data = json.loads(result.output)
    assert data["adapter"] == "memory"
    assert data["options"][0] | {} == {"name": "batch_size", "type": "int >= 1", "default": "1000",
                                       "doc": BATCH_SIZE.doc, "aliases": [], "deprecated": [],
                                       "deprecated_values": [], "url": True}
    assert runner.invoke(cli, ["adapters"]).exit_code == 0


def test_cli_unknown_adapter_is_one_line_exit_2() -> None:
    proc = subprocess.run([sys.executable, "-m", "uuid_forge", "adapters", "--options", "redsi"],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "Did you mean 'redis'?" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_configuration_doc_matches_the_declared_options() -> None:
    """Fails when an option changes without `python -m uuid_forge.optiondocs docs/configuration.md`."""
    for driver in ("sqlalchemy", "pymongo", "redis", "elasticsearch", "pika"):
        pytest.importorskip(driver)
    text = DOC.read_text(encoding="utf-8")
    assert text.startswith("# ") and END in text
    assert replace_section(text, options_markdown()) == text, \
        "docs/configuration.md is stale: run python -m uuid_forge.optiondocs docs/configuration.md"


# -- import isolation ------------------------------------------------------------------------
def test_the_core_never_imports_the_adapters_folder() -> None:
    # uuid_forge.celery is the celery extra's entry point: it needs Celery, so it is imported only where installed
    skip = {"uuid_forge.__main__"} | ({"uuid_forge.celery"} if importlib.util.find_spec("celery") is None else set())
    core = sorted(m.name for m in pkgutil.walk_packages(uuid_forge.__path__, "uuid_forge.")
                  if not m.name.startswith("uuid_forge.adapters") and m.name not in skip)
    assert "uuid_forge.contract" in core and "uuid_forge.options" in core and "uuid_forge.cli.stores" in core
    code = ("import sys, importlib\n"
            f"for name in {core!r}: importlib.import_module(name)\n"
            "print([m for m in sys.modules if m == 'uuid_forge.adapters' or m.startswith('uuid_forge.adapters.')"
            f" or m.split('.')[0] in {DRIVERS!r}])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert out.strip() == "[]", out


def test_import_uuid_forge_imports_no_sqlalchemy() -> None:
    """SQLAlchemy is a core dependency (SQLite needs nothing else), yet `import uuid_forge` stays light."""
    code = "import sys, uuid_forge, uuid_forge.contract, uuid_forge.options; print('sqlalchemy' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize(("query", "said"), [("tll=60", "Did you mean 'ttl'"),
                                             ("bogus_param=1", "nor one redis-py accepts")])
def test_redis_refuses_at_open_what_neither_it_nor_redis_py_knows(query: str, said: str) -> None:
    """A fresh-eyes run: '?tll=60' reached redis-py, failed at the first connection as a TypeError,
    and write-through journaled it as an outage. Now it is refused when the store is opened."""
    pytest.importorskip("redis")
    from uuid_forge import open_store
    from uuid_forge.errors import OptionError

    with pytest.raises(OptionError, match=said):
        open_store(f"redis://127.0.0.1:6379/0?{query}")


def test_a_url_the_driver_cannot_parse_names_the_file_and_store(tmp_path: Path) -> None:
    """A fresh-eyes run: 'redis://127.0.0.1:6379x/13' gave redis-py's bare 'Port could not be cast
    to integer value' with no file or store named."""
    pytest.importorskip("redis")
    from uuid_forge import Forge
    from uuid_forge.errors import ConfigError

    path = tmp_path / "uf.toml"
    path.write_text(f'[stores.db]\nurl = "sqlite:///{tmp_path}/a.db"\nrole = "source"\n'
                    '[stores.cache]\nurl = "redis://127.0.0.1:6379x/13"\n')
    with pytest.raises(ConfigError, match=r"uf\.toml: store 'cache': store URL 'redis://127\.0\.0\.1:6379x/13'"):
        Forge.from_config(str(path))
