"""The one ownership rule (uuid_forge.ownership): an entry is ours only when its key fields rebuild
its ID by the configured ID function, or it carries our mark naming it. A look-alike name proves
nothing."""

from __future__ import annotations

import uuid

from uuid_forge.entitytypes import EntityType, TypedGenerator
from uuid_forge.ids import IDConfig, UUIDGenerator
from uuid_forge.masking import mask_name
from uuid_forge.ownership import Prover
from uuid_forge.record import Record
from uuid_forge.view import FieldView

TYPES = {"user": EntityType("user", key=("email",))}
PROVER = Prover(TypedGenerator(IDConfig(), TYPES), TYPES)


def _ours(email: str) -> Record:
    ident = PROVER.generator.generate_many("user", [{"email": email}])[0]
    return Record("user", ident, {"email": email, "name": "A"})


def test_key_fields_that_rebuild_the_id_prove_it() -> None:
    r = _ours("a@example.com")
    assert PROVER.prove("user", {r.id: r})[r.id].ok


def test_look_alike_names_prove_nothing() -> None:
    v4, v5 = uuid.uuid4(), uuid.uuid5(uuid.NAMESPACE_DNS, "theirs.example")
    records = {i: Record("user", i, {"token": "t"}) for i in (v4, v5)}
    proofs = PROVER.prove("user", records)
    assert not any(p.ok for p in proofs.values())
    assert all("email" in p.reason for p in proofs.values())


def test_key_fields_that_give_another_id_prove_nothing() -> None:
    r = _ours("a@example.com")
    moved = Record("user", uuid.uuid4(), r.data)
    proof = PROVER.prove("user", {moved.id: moved})[moved.id]
    assert not proof.ok and proof.expected == r.id and "another ID" in proof.reason


def test_the_mark_proves_and_a_projection_without_key_fields_is_named() -> None:
    theirs = Record("user", uuid.uuid4(), {"name": "x"})
    marked = Record("user", uuid.uuid4(), {"name": "x"})
    marked.marked = True
    proofs = PROVER.prove("user", {theirs.id: theirs, marked.id: marked}, FieldView(projection=("name",)))
    assert proofs[marked.id].ok and not proofs[theirs.id].ok
    assert "projection" in proofs[theirs.id].reason


def test_undeclared_type_is_proven_by_the_stored_key_only() -> None:
    prover = Prover(UUIDGenerator(IDConfig()))
    ident = prover.generator.generate_many("thing", [{"n": 1}])[0]
    keyed, bare = Record("thing", ident, {"n": 1}, {"n": 1}), Record("thing", uuid.uuid4(), {"n": 1})
    assert prover.proven("thing", {keyed.id: keyed, bare.id: bare}) == {ident}


def test_names_not_proven_ours_keep_only_their_shape() -> None:
    name = str(uuid.uuid4())  # a look-alike: another application's session ID
    shown = mask_name(name)
    assert shown[0] == name[0] and shown.count("-") == 4 and len(shown) == len(name)
    assert all(part[1:] not in shown for part in name.split("-") if len(part) > 1)
    assert mask_name("session:john@example.com") == "s••••••:j•••@e••••••.c••"


def test_the_mark_never_overrides_key_fields_that_give_another_id() -> None:
    """Another application's document copied with our mark (uf_id equal to _id) but its own e-mail:
    its key fields rebuild another ID, so it is not ours; the mark counts only without key fields."""
    planted = Record("user", uuid.uuid4(), {"email": "theirs@example.org", "name": "T"})
    planted.marked = True
    ours = _ours("a@example.com")
    ours.marked = True
    proofs = PROVER.prove("user", {planted.id: planted, ours.id: ours})
    assert not proofs[planted.id].ok and "another ID" in proofs[planted.id].reason
    assert proofs[planted.id].expected == _ours("theirs@example.org").id
    assert proofs[ours.id].ok
