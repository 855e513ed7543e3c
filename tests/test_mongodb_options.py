"""MongoDB's options and layouts without a server: the one vocabulary (``layout=data``, ``prefix``)
with the old spellings still working and warning once, and the layout classes' own operations."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("pymongo")

from uuid_forge.adapters.mongodb import (
    LAYOUTS,
    DataLayout,
    EnvelopeLayout,
    MongoAdapter,
    StringIds,
)

from uuid_forge import options as options_module
from uuid_forge.errors import ValidationError
from uuid_forge.options import OptionDeprecationWarning
from uuid_forge.record import Record
from uuid_forge.view import FieldView

#: nothing listens there: pymongo connects lazily, and these tests never send a command
URL = "mongodb://127.0.0.1:9/uf_options?serverSelectionTimeoutMS=50"
RECORD = Record("user", uuid.uuid5(uuid.NAMESPACE_URL, "ann"), {"name": "Ann", "total": Decimal("12.50")},
                {"email": "ann@example.com"})


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(options_module, "_warned", set())


def _open(url: str = URL, **options: Any) -> MongoAdapter:
    return MongoAdapter(url, **options)


@pytest.fixture
def store() -> Iterator[MongoAdapter]:
    adapter = _open()
    yield adapter
    adapter.close()


def test_new_names_choose_the_layout_and_prefix_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        adapter = _open(layout="envelope", prefix="acme_", id_format="string")
    try:
        assert isinstance(adapter.layout, EnvelopeLayout) and adapter.layout.name == "envelope"
        assert adapter.prefix == "acme_" and adapter.containers.name_for("user") == "acme_user"
        assert isinstance(adapter.ids, StringIds) and adapter.id_encoding == "string"
    finally:
        adapter.close()


def test_layout_flat_is_the_data_layout_and_warns_once() -> None:
    with pytest.warns(OptionDeprecationWarning, match="layout=flat is deprecated, use layout=data"):
        first = _open(layout="flat")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process
        second = _open(f"{URL}&layout=flat")
    for adapter in (first, second):
        assert isinstance(adapter.layout, DataLayout) and adapter.layout.name == "data"
        adapter.close()


@pytest.mark.parametrize("where", ["keyword", "url"])
def test_collection_prefix_is_the_prefix_and_warns_once(where: str) -> None:
    given = {"collection_prefix": "acme_"} if where == "keyword" else {}
    url = URL if where == "keyword" else f"{URL}&collection_prefix=acme_"
    with pytest.warns(OptionDeprecationWarning, match="collection_prefix is deprecated, use prefix"):
        adapter = _open(url, **given)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = _open(url, **given)
    for one in (adapter, again):
        assert one.prefix == "acme_" and one.containers.name_for("user") == "acme_user"
        one.close()


@pytest.mark.filterwarnings("ignore::uuid_forge.options.OptionDeprecationWarning")
def test_the_old_prefix_name_is_checked_like_the_new_one() -> None:
    for name in ("prefix", "collection_prefix"):
        with pytest.raises(ValidationError, match=r"prefix 'a\$b'"):
            _open(**{name: "a$b"})


def test_layouts_table_and_choices_agree() -> None:
    option = next(o for o in MongoAdapter.options if o.name == "layout")
    assert option.choices == tuple(LAYOUTS) == ("data", "envelope")
    assert option.default == "data" and ("flat", "data") in option.deprecated_values
    assert all(cls.name == name for name, cls in LAYOUTS.items())


def test_data_layout_encodes_decodes_and_owns_the_data_fields(store: MongoAdapter) -> None:
    layout = store.layout
    stored = layout.encode(RECORD)
    assert stored == {"name": "Ann", "total": 12.5}  # a double holds 12.50's canonical digits exactly
    assert layout.owned_fields(RECORD) == {"_id", "name", "total"}
    back = layout.decode("user", RECORD.id, {"_id": RECORD.id, **stored})
    assert back.data_json == RECORD.data_json and back.key is None
    assert back.fingerprint == layout.fingerprint({"_id": RECORD.id, **stored}) == RECORD.fingerprint
    with pytest.raises(ValidationError, match="data field '_id'"):
        layout.validate("user", [Record("user", RECORD.id, {"_id": 1})])


def test_envelope_layout_keeps_the_key_and_fingerprints_the_data_not_fp() -> None:
    adapter = _open(layout="envelope")
    try:
        layout = adapter.layout
        stored = layout.encode(RECORD)
        assert set(stored) == {"fp", "data", "key"} and stored["key"] == {"email": "ann@example.com"}
        assert layout.owned_fields(RECORD) == {"_id", "fp", "data", "key"}
        back = layout.decode("user", RECORD.id, {**stored, "fp": "0" * 32})  # a stored fp is never trusted
        assert back.key == RECORD.key and back.fingerprint == RECORD.fingerprint
        as_text = {**stored, "data": RECORD.data_json}  # what BSON could not hold is kept as text
        assert layout.decode("user", RECORD.id, as_text).fingerprint == RECORD.fingerprint
        layout.validate("user", [Record("user", RECORD.id, {"_id": 1})])  # the envelope holds any field
    finally:
        adapter.close()


def test_a_viewed_twin_fingerprints_through_its_own_view(store: MongoAdapter) -> None:
    twin = store.viewed(FieldView(projection=("name",)))
    assert isinstance(twin, MongoAdapter) and twin.layout is not store.layout
    stored = {"_id": RECORD.id, **store.layout.encode(RECORD)}
    assert twin.layout.fingerprint(stored) == twin.fingerprint_data({"name": "Ann"})
    assert store.layout.fingerprint(stored) == RECORD.fingerprint
    assert twin.layout.scan_fields() == {"name": 1} and store.layout.scan_fields() is None


# -- a store that is down: bounded, one clear line ------------------------------------------------
def _closed_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed again when the block ends: nothing listens there


def test_connect_timeout_sets_both_driver_timeouts_unless_the_url_gives_them() -> None:
    with MongoAdapter("mongodb://127.0.0.1:9/x") as default:
        assert default._client.options.server_selection_timeout == 2.0
        assert default._client.options.pool_options.connect_timeout == 2.0
    with MongoAdapter("mongodb://127.0.0.1:9/x?connect_timeout=0.25") as short:
        assert short._client.options.server_selection_timeout == 0.25
        assert short._client.options.pool_options.connect_timeout == 0.25
    with MongoAdapter("mongodb://127.0.0.1:9/x?connect_timeout=0.25&serverSelectionTimeoutMS=700") as given:
        assert given._client.options.server_selection_timeout == 0.7  # pymongo's own name wins
        assert given._client.options.pool_options.connect_timeout == 0.25
    with MongoAdapter("mongodb://127.0.0.1:9/x", serverSelectionTimeoutMS=300) as keyword:
        assert keyword._client.options.server_selection_timeout == 0.3


def test_a_required_mongodb_store_that_is_down_fails_fast_in_one_line(tmp_path: Any) -> None:
    """It took 24 s (four retries of pymongo's 5 s server selection) and printed the driver's
    topology dump twice; now one timeout, the retries fail at once, one line names the store."""
    import time

    from .scaffold import run_cli, write_forge_toml

    url = f"mongodb://app:s3cret-pw@127.0.0.1:{_closed_port()}/shop"
    config = write_forge_toml(tmp_path / "uuid-forge.toml", {"db": f"sqlite:///{tmp_path / 'db.sqlite'}",
                                                             "docs": url}, "db", namespace="t")
    started = time.monotonic()
    code, out, err = run_cli(["write", "-c", str(config), "user", "-k", "email=a@example.com", "-d", "n=1"],
                             env={"UUID_FORGE_SALT": "s"}, columns=400)
    took = time.monotonic() - started
    assert code == 2 and took < 8, (code, took)  # 2 s of server selection, then the write's backoff
    assert "Topology" not in out + err and "s3cret-pw" not in out + err
    [line] = [x for x in err.splitlines() if "no server reachable" in x]
    assert line.startswith("uuid-forge: error: required store(s) docs could not be written: mongodb://app:")
    assert "no server reachable within 2 s (connect_timeout): 127.0.0.1:" in line and "Connection refused" in line
