"""The cases ``uuid-forge sql postgres --check`` runs: the shipped vectors, and the library's answers.

No database here: that the cases' expected answers are the Python library's, and that the
vectors shipped in the package are the spec's (integration/test_cli_sql_postgres.py runs them).
"""

from __future__ import annotations

import json
from pathlib import Path

from uuid_forge import IDConfig, Namespace, UUIDGenerator
from uuid_forge.ids import canonical_name
from uuid_forge.pgcheck import cases, unsupported_place, vectors

SPEC_VECTORS = Path(__file__).resolve().parent / "vectors" / "ids-v1.json"


def test_the_packaged_vectors_are_the_spec_vectors() -> None:
    assert vectors() == json.loads(SPEC_VECTORS.read_text(encoding="utf-8"))


def test_every_expected_answer_is_the_python_librarys() -> None:
    every = cases()
    assert len(every) > len(vectors())
    for case in every:
        if case.error is not None:
            assert case.name is None and case.uuid is None
            continue
        generator = UUIDGenerator(IDConfig(namespace=case.namespace, salt=case.salt, secret=case.secret))
        assert case.name == canonical_name(case.entity_type, case.args, case.kwargs, case.salt), case.label
        assert case.uuid == generator.generate(case.entity_type, *case.args, **case.kwargs), case.label


def test_the_cases_cover_keyed_unkeyed_errors_and_nfc() -> None:
    every = cases()
    assert any(c.secret for c in every if c.error is None) and any(not c.secret for c in every if c.error is None)
    assert {c.error for c in every if c.origin == "vector" and c.error} == {"kwargs.amount"}  # float fraction
    assert any(c.label.startswith("NFC") for c in every)


def test_unsupported_place_names_the_first_unsupported_value() -> None:
    assert unsupported_place({"a": 1, "b": [True, None, "x", 10**20, 2.0]}, "kwargs") is None
    assert unsupported_place({"a": {"b": [1, 0.5]}}, "kwargs") == "kwargs.a.b[1]"
    assert unsupported_place([-(10**21)], "args") == "args[0]"
    assert unsupported_place(Namespace("x.y"), "args") == "args"  # no JSON value: SQL cannot take it
