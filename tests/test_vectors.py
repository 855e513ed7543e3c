"""Every known answer in the spec's vector files, for the library (the CLI has its own test)."""

from __future__ import annotations

import uuid

import pytest

from uuid_forge import (
    IDConfig,
    Namespace,
    UUIDGenerator,
    canonical_name,
    decode,
    detect_form,
    encode,
    generate_uuid_only,
)

from .conftest import load_vectors

V1 = load_vectors("ids-v1.json")
LEGACY = load_vectors("ids-legacy-uuid-forge-0.1.json")
ENCODINGS = load_vectors("encodings.json")


def _config(v: dict, scheme: str = "uuid-forge/1") -> IDConfig:
    return IDConfig(namespace=Namespace(v["namespace_domain"]), salt=v["salt"], scheme=scheme,
                    secret=v.get("secret"))


@pytest.mark.parametrize("v", V1, ids=[v["label"] for v in V1])
def test_v1_name_and_uuid(v: dict) -> None:
    assert canonical_name(v["entity_type"], v["args"], v["kwargs"], v["salt"]) == v["name"]
    got = UUIDGenerator(_config(v)).generate(v["entity_type"], *v["args"], **v["kwargs"])
    assert str(got) == v["uuid"]
    assert got.version == (8 if v["secret"] else 5)
    assert generate_uuid_only(v["entity_type"], *v["args"], config=_config(v), **v["kwargs"]) == got


@pytest.mark.parametrize("v", V1, ids=[v["label"] for v in V1])
def test_v1_generate_many_matches_generate(v: dict) -> None:
    gen = UUIDGenerator(_config(v))
    if v["args"] and v["kwargs"]:
        pytest.skip("generate_many keys are either named or positional")
    key = dict(v["kwargs"]) if not v["args"] else tuple(v["args"])
    assert [str(u) for u in gen.generate_many(v["entity_type"], [key, key])] == [v["uuid"]] * 2


@pytest.mark.parametrize("v", LEGACY, ids=[v["label"] for v in LEGACY])
def test_legacy_scheme_is_bit_identical_to_0_1(v: dict) -> None:
    gen = UUIDGenerator(_config(v, scheme="uuid-forge-0.1"))
    assert str(gen.generate(v["entity_type"], *v["args"], **v["kwargs"])) == v["uuid"]


@pytest.mark.parametrize("v", ENCODINGS, ids=[v["string"][:8] for v in ENCODINGS])
def test_encodings(v: dict) -> None:
    u = uuid.UUID(v["string"])
    for form in ("string", "hex", "base64url", "base32", "int", "urn", "short"):
        assert encode(u, form) == v[form], form
    assert encode(u, "bytes") == bytes.fromhex(v["bytes_hex"])
    for form in ("string", "hex", "base64url", "base32", "urn"):
        assert decode(v[form]) == u, form
        assert detect_form(v[form]) == form
    assert decode(v["int"], form="int") == u
    assert decode(bytes.fromhex(v["bytes_hex"])) == u
