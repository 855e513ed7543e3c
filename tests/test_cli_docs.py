"""docs/cli.md is generated from the CLI; these tests fail when the two disagree."""

from __future__ import annotations

from pathlib import Path

import click

from uuid_forge.cli import docs
from uuid_forge.cli.app import cli

PAGE = Path(__file__).resolve().parent.parent / "docs" / "cli.md"


def test_docs_cli_md_matches_the_cli() -> None:
    assert PAGE.read_text(encoding="utf-8") == docs.render(), (
        "docs/cli.md is out of date: run python -m uuid_forge.cli.docs docs/cli.md")


def test_every_command_and_option_is_on_the_page() -> None:
    text = docs.render()
    for name, command in docs._commands(cli):
        assert f"### `uuid-forge {name}`" in text
        for p in command.params:
            if isinstance(p, click.Option):
                assert f"`{p.opts[0]}`" in text, (name, p.opts)


def test_the_exit_code_table_names_every_command_that_sets_1() -> None:
    named = " ".join(row[0] for row in docs.EXIT_CODES)
    for command in ("audit", "replay", "validate", "ids status", "demo", "write", "stores"):
        assert command in named


def test_a_changed_help_text_is_drift(monkeypatch: object) -> None:
    before = docs.render()
    command = cli.commands["audit"]
    option = next(p for p in command.params if isinstance(p, click.Option) and p.name == "as_json")
    monkeypatch.setattr(option, "help", "something else")  # type: ignore[attr-defined]
    assert docs.render() != before
