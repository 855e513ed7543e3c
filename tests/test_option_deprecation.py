"""Old option names and values keep working, warn once per process, and the docs list them."""

from __future__ import annotations

import warnings

import pytest

from uuid_forge import options as options_module
from uuid_forge.options import Option, OptionDeprecationWarning, parse_options

TABLE = (Option("layout", str, "data", "shape", choices=("data", "hash"), deprecated=("value",),
                deprecated_values=(("json", "data"),)),
         Option("prefix", str, "", "prefix", deprecated=("table_prefix",)))


@pytest.fixture(autouse=True)
def _fresh_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(options_module, "_warned", set())


def test_old_name_in_the_url_sets_the_new_option_and_warns() -> None:
    with pytest.warns(OptionDeprecationWarning, match="table_prefix is deprecated, use prefix"):
        parsed = parse_options("x", TABLE, "x://h/?table_prefix=acme_", {})
    assert parsed["prefix"] == "acme_" and "prefix" in parsed.given


def test_old_name_as_keyword_and_old_value_both_map_to_the_new_ones() -> None:
    with pytest.warns(OptionDeprecationWarning) as caught:
        parsed = parse_options("x", TABLE, "x://h/", {"value": "json"})
    assert parsed["layout"] == "data"
    assert {str(w.message).split(" is deprecated")[0] for w in caught} == {"x: option value", "x: layout=json"}


def test_each_old_spelling_warns_once_per_process() -> None:
    with pytest.warns(OptionDeprecationWarning):
        parse_options("x", TABLE, "x://h/?layout=json", {})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parse_options("x", TABLE, "x://h/?layout=json", {})["layout"] == "data"


def test_the_new_name_wins_over_the_old_one_and_new_names_do_not_warn() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert parse_options("x", TABLE, "x://h/?layout=hash&prefix=a_", {})["layout"] == "hash"
    with pytest.warns(OptionDeprecationWarning):
        assert parse_options("x", TABLE, "x://h/?value=data&layout=hash", {})["layout"] == "hash"


def test_an_unknown_value_is_still_refused_after_the_old_values_are_mapped() -> None:
    with pytest.raises(Exception, match="expected one of 'data', 'hash'"):
        parse_options("x", TABLE, "x://h/?layout=xml", {})
