"""Elasticsearch's options and layout without a server: ``prefix`` (``index_prefix`` still
working and warning once), ``layout=data``, and the layout class's own operations."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

pytest.importorskip("elasticsearch")

from uuid_forge.adapters.elasticsearch import LAYOUTS, DataLayout, ElasticsearchAdapter, Hit

from uuid_forge import options as options_module
from uuid_forge.errors import ConfigError
from uuid_forge.options import OptionDeprecationWarning
from uuid_forge.record import ForeignEntry, MalformedID, Partition, Record

#: nothing listens there: the client connects on the first request, and these tests send none
URL = "elasticsearch+http://127.0.0.1:9"
BIG = Decimal("12345678901234567890.5")  # more digits than a double holds: written as text
RECORD = Record("order", uuid.uuid5(uuid.NAMESPACE_URL, "o-1"), {"total": BIG, "state": "paid"})


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(options_module, "_warned", set())


def _open(url: str = URL, **options: Any) -> ElasticsearchAdapter:
    return ElasticsearchAdapter(url, **options)


@pytest.fixture
def store() -> Iterator[ElasticsearchAdapter]:
    adapter = _open()
    yield adapter
    adapter.close()


def test_prefix_and_layout_without_a_warning() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        adapter = _open(f"{URL}?prefix=acme-&layout=data")
    assert adapter.prefix == "acme-" and adapter.index_name("user") == "acme-user"
    assert isinstance(adapter.layout, DataLayout) and adapter.layout.name == "data"
    adapter.close()


@pytest.mark.parametrize("where", ["keyword", "url"])
def test_index_prefix_is_the_prefix_and_warns_once(where: str) -> None:
    given = {"index_prefix": "acme-"} if where == "keyword" else {}
    url = URL if where == "keyword" else f"{URL}?index_prefix=acme-"
    with pytest.warns(OptionDeprecationWarning, match="index_prefix is deprecated, use prefix"):
        adapter = _open(url, **given)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = _open(url, **given)
    for one in (adapter, again):
        assert one.prefix == "acme-" and one.index_name("user") == "acme-user"
        one.close()


@pytest.mark.filterwarnings("ignore::uuid_forge.options.OptionDeprecationWarning")
def test_the_old_prefix_name_is_checked_like_the_new_one() -> None:
    for name in ("prefix", "index_prefix"):
        with pytest.raises(ConfigError, match="es-index"):
            _open(**{name: "UF-"})


def test_layouts_table_and_choices_agree() -> None:
    option = next(o for o in ElasticsearchAdapter.options if o.name == "layout")
    assert option.choices == tuple(LAYOUTS) == ("data",) and option.default == "data"


def test_the_layout_writes_the_id_field_and_exact_numbers(store: ElasticsearchAdapter) -> None:
    layout = store.layout
    text = layout.encode(RECORD)
    assert text.endswith(f',"uf_id":"{RECORD.id}","uf_numbers":["/total"]}}') and '"total":"1234' in text
    assert layout.owned_fields(RECORD) == {"total", "state", "uf_id", "uf_numbers"}
    plain = Record("order", RECORD.id, {"total": 3})
    assert layout.owned_fields(plain) == {"total", "uf_id"}  # uf_numbers only where a number needs it


def test_the_layout_reads_back_the_data_and_fingerprints_it(store: ElasticsearchAdapter) -> None:
    import json

    from uuid_forge.record import load_json

    source = load_json(store.layout.encode(RECORD))
    assert isinstance(source, dict) and json.dumps(source["uf_id"]) == f'"{RECORD.id}"'
    back = store.layout.decode("order", RECORD.id, Hit(source))
    assert back.data_json == RECORD.data_json and back.key is None
    assert back.fingerprint == store.layout.fingerprint(Hit(source)) == RECORD.fingerprint
    assert store.layout.has_id(source) and not store.layout.has_id({"total": 1})
    assert isinstance(store.layout.classify_hit("legacy-42", {}), ForeignEntry)


def test_without_an_id_field_a_partition_reads_everything() -> None:
    adapter = _open(id_field="")
    try:
        assert adapter.layout.partition_query(Partition(1, 4)) == {"match_all": {}}
        assert adapter.layout.mappings() == {"properties": {}} and adapter.layout.id_source() is False
    finally:
        adapter.close()


def test_the_former_envelope_indices_are_refused(store: ElasticsearchAdapter) -> None:
    envelope = {"dynamic": "strict", "properties": {"id": {"type": "keyword"}, "fp": {"type": "keyword"},
                                                    "key": {"type": "object", "enabled": False},
                                                    "data": {"type": "object", "enabled": False}}}
    assert "former envelope layout" in (store.layout.refusal(envelope) or "")
    assert store.layout.refusal({"properties": {"fp": {"type": "keyword"}}}) is None


def test_the_documented_mapping_for_your_own_index_is_the_one_uuid_forge_creates(store: ElasticsearchAdapter) -> None:
    """stores.md gives the mapping a user's own index needs (dynamic mapping makes uf_id text):
    the JSON there parses, is what uuid-forge puts on an index it creates, and passes its check,
    while the dynamic text mapping is refused."""
    import json
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parent.parent / "docs" / "stores.md").read_text(encoding="utf-8")
    section = page.split("\n## Elasticsearch: `uf_id` must be a keyword\n", 1)[1].split("\n## ", 1)[0]
    [block] = re.findall(r"^```json\n(.*?)^```", section, re.DOTALL | re.MULTILINE)
    documented = json.loads(block)["mappings"]
    assert documented == store.layout.mappings() == {"properties": {"uf_id": {"type": "keyword"}}}
    assert store.layout.refusal(documented) is None
    dynamic = {"properties": {"uf_id": {"type": "text", "fields": {"keyword": {"type": "keyword"}}}}}
    assert "maps 'uf_id' as 'text'" in (store.layout.refusal(dynamic) or "")


V5 = uuid.uuid5(uuid.NAMESPACE_URL, "hit-1")


@pytest.mark.parametrize(("raw", "source", "expected"), [
    (str(V5), {"uf_id": str(V5), "total": 1}, V5),  # the usual document: the shortcut
    (str(V5), {"total": 1}, V5),  # a seed-era document without the id field: the _id alone
    (str(V5).upper(), {"uf_id": str(V5).upper()}, MalformedID),  # both upper case: ours, wrong form
    (str(V5), {"uf_id": str(V5).upper()}, MalformedID),  # the id field in another form
    (str(V5), {"uf_id": str(uuid.uuid5(uuid.NAMESPACE_URL, "other"))}, MalformedID),  # another ID
    ("legacy-42", {"uf_id": "legacy-42"}, ForeignEntry),  # equal, but no UUID at all
    (str(V5)[:-1] + "x", {"uf_id": str(V5)[:-1] + "x"}, ForeignEntry),  # 36 chars, not hex
])
def test_a_hit_whose_id_field_repeats_its_id_is_classified_as_any_other(store: ElasticsearchAdapter, raw: str,
                                                                          source: dict[str, Any],
                                                                          expected: Any) -> None:
    """classify_hit's shortcut (the id field equal to a canonical _id) gives what the full
    classification gives, and nothing takes it that is not exactly that case."""
    found = store.layout.classify_hit(raw, source)
    if isinstance(expected, uuid.UUID):
        assert type(found) is uuid.UUID and found == expected and hash(found) == hash(expected)
        assert str(found) == raw and found.version == 5
    else:
        assert isinstance(found, expected), found
