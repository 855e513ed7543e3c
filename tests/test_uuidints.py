"""uuid_forge.uuidints: UUIDs made without ``uuid.UUID.__init__`` are ordinary UUIDs in every way
the audit and its callers use them (equality, hashing, text, version, pickling), and the exact
forms of uuid_forge.classify give the UUID the uuid module gives."""

from __future__ import annotations

import base64
import pickle
import uuid

from hypothesis import given
from hypothesis import strategies as st

from uuid_forge.classify import exact_id
from uuid_forge.uuidints import uuid_of_bytes, uuid_of_int, uuid_of_text

VALUES = st.one_of(st.integers(min_value=0, max_value=2**128 - 1), st.sampled_from([0, 1, 2**127, 2**128 - 1]))


def _same(made: uuid.UUID, reference: uuid.UUID) -> None:
    assert type(made) is uuid.UUID
    assert made == reference and hash(made) == hash(reference) and made.int == reference.int
    assert str(made) == str(reference) and made.bytes == reference.bytes and made.hex == reference.hex
    assert made.version == reference.version and made.variant == reference.variant
    assert made.is_safe == uuid.SafeUUID.unknown == reference.is_safe
    assert pickle.loads(pickle.dumps(made)) == reference
    assert {reference: 1}[made] == 1 and sorted([made, reference]) == [reference, reference]


@given(VALUES)
def test_a_uuid_from_its_int_bytes_or_text_is_the_uuid_modules(value: int) -> None:
    reference = uuid.UUID(int=value)
    _same(uuid_of_int(value), reference)
    _same(uuid_of_bytes(reference.bytes), reference)
    _same(uuid_of_text(str(reference)), reference)


@given(VALUES)
def test_the_exact_forms_give_the_uuid_modules_uuid(value: int) -> None:
    reference = uuid.UUID(int=value)
    text = str(reference)
    b64 = base64.urlsafe_b64encode(reference.bytes).rstrip(b"=").decode()
    for form, written in (("string", text), ("hex", reference.hex), ("base64url", b64)):
        found = exact_id(written, form)
        assert found is not None, (form, written)
        _same(found, reference)
    # another form of the same ID is not the exact form asked for
    assert exact_id(text.upper(), "string") is None if text != text.upper() else True
    assert exact_id(reference.hex, "string") is None and exact_id(text, "hex") is None
    assert exact_id("{" + text + "}", "string") is None and exact_id(text + " ", "string") is None
