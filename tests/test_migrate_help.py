"""``uuid-forge migrate --help`` and each phase's help teach the workflow: the phases in the order
they run, rollback before contract, resume after a kill, --dry-run; the commands listed in that
order, not alphabetically."""

from __future__ import annotations

import pytest

from .scaffold import run_cli

PHASES = ("plan", "expand", "verify", "contract")


def _help(*argv: str) -> str:
    code, stdout, stderr = run_cli([*argv, "--help"], {}, columns=100)
    assert code == 0, stderr
    return stdout


def _in_order(text: str, parts: list[str]) -> None:
    at = [text.find(p) for p in parts]
    assert -1 not in at, [p for p, i in zip(parts, at) if i == -1]
    assert at == sorted(at), list(zip(parts, at))


def test_migrate_help_shows_the_workflow_in_order() -> None:
    text = _help("migrate")
    example, commands = text.split("Commands:")
    _in_order(example, [f"uuid-forge migrate {p}" for p in PHASES])
    _in_order(example, ["uuid-forge migrate contract", "Undo instead of contract", "uuid-forge migrate rollback"])
    assert "plan --dry-run" in example and "contract --dry-run" in example
    assert "Killed halfway" in example and "Run the same phase again" in example
    _in_order(commands, [f"  {p} " for p in (*PHASES, "rollback", "status")])


@pytest.mark.parametrize("phase", [*PHASES, "rollback", "status"])
def test_each_phase_help_places_itself_and_shows_examples(phase: str) -> None:
    text = _help("migrate", phase)
    assert "plan -> expand -> verify -> contract" in text
    examples = text.split("Examples:")[1].split("Options:")[0]
    assert f"uuid-forge migrate {phase}" in examples
    if phase in PHASES:
        assert f"Step {PHASES.index(phase) + 1} of" in text
        if phase != "verify":
            assert f"uuid-forge migrate {phase} --dry-run" in examples
    if phase == "contract":
        assert "rollback is refused" in text and "cannot be undone" in text
    if phase in ("expand", "contract"):
        assert "Resumable" in text
