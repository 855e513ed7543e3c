"""``uuid-forge ids status|accept``: the ID-configuration marker each entity type keeps in the source."""

from __future__ import annotations

from typing import Any

import click
from rich.markup import escape

from .. import idmarker
from ..forge import Forge
from .app import CONTEXT, emit_json, out
from .configuration import config_option, open_forge

__all__ = ["ids"]

_STATE = {"none": "no marker yet", "same": "matches the configuration in use", "differs": "DIFFERS"}


@click.group(context_settings=CONTEXT)
def ids() -> None:
    """The ID configuration each entity type was written with, as the source remembers it.

    On the first write of an entity type the source of truth records a marker: the scheme, the
    namespace, and for the salt and the secret either "unset" or a slow keyed digest (never the
    values). A later write, replay or repair under a configuration that differs (a salt missing
    from cron's environment, another UUID_FORGE_SECRET) is refused before any store is touched,
    and an audit reports it. A lost marker is recorded again only by a configuration that rebuilds
    the IDs the source holds from their key fields. 'ids status' shows the markers; 'ids accept'
    restores one, or with --rotate changes it on purpose.
    """


def _types(forge: Forge, entity_types: tuple[str, ...]) -> list[str]:
    types = list(entity_types) or forge.entity_types()
    if not types:
        raise click.UsageError("the stores hold no entity type yet; name one with --entity")
    return types


def _describe(row: dict[str, Any]) -> str:
    return _STATE[row["state"]] + (f": {row['message'].split(': ', 1)[1]}" if row["message"] else "")


@ids.command("status", context_settings=CONTEXT)
@config_option()
@click.option("--entity", "-e", "entity_types", multiple=True, help="Only this entity type (repeat for more) "
              "[default: every type the stores hold].")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(config_path: str, entity_types: tuple[str, ...], as_json: bool) -> None:
    """Show, per entity type, whether the configuration in use matches its marker.

    Exit 0 when every marker matches (or none is recorded yet), 1 when one differs.
    """
    with open_forge(config_path) as forge:
        rows = idmarker.status(forge, _types(forge, entity_types))
    if as_json:
        emit_json(rows)
    else:
        for r in rows:
            out.print(escape(f"{r['entity_type']}: {_describe(r)}"), highlight=False)
    if any(r["state"] == "differs" for r in rows):
        raise click.exceptions.Exit(1)


@ids.command("accept", context_settings=CONTEXT)
@config_option()
@click.option("--entity", "-e", "entity_types", multiple=True, help="This entity type (repeat for more) "
              "[default: every type the stores hold].")
@click.option("--yes", is_flag=True, help="Record it; without --yes only show what would change.")
@click.option("--rotate", is_flag=True, help="Record it even though it does not rebuild the IDs the source "
              "holds (a deliberate rotation); with --yes.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def accept(config_path: str, entity_types: tuple[str, ...], yes: bool, rotate: bool, as_json: bool) -> None:
    """Record the ID configuration in use as the marker of each entity type.

    First it proves, on a sample of the entries the source holds (up to 100 with their key
    fields), that the configuration in use rebuilds their IDs from their key fields: then it only
    restores a marker that was lost or wrong. When it rebuilds none of them, or no entry holds its
    key fields, it is refused unless --rotate says the change is deliberate. Without --yes it only
    shows what would change (exit 1 if something would).

    Existing IDs keep their old values: records already written stay under the IDs the old
    configuration gave them, and writing the same keys again creates new records beside them.
    There is no re-key command: to move a type to the new IDs, read its records (they keep their
    keys) under the old configuration, write them under the new one, then delete the old IDs
    from every store (Forge.records gives the new IDs, adapter.delete_many removes the old).

    \b
    Examples:
      uuid-forge ids accept -c uuid-forge.toml --entity user                   # what would change
      uuid-forge ids accept -c uuid-forge.toml --entity user --yes             # restore a lost marker
      uuid-forge ids accept -c uuid-forge.toml --entity user --rotate --yes    # a deliberate rotation
    """
    if rotate and not yes:
        raise click.UsageError("--rotate records a configuration on purpose: give --yes with it")
    with open_forge(config_path) as forge:
        types = _types(forge, entity_types)
        rows = idmarker.accept(forge, types, rotate=rotate) if yes else idmarker.plan(forge, types)
    changing = [r for r in rows if r["state"] != "same"]
    if as_json:
        emit_json({"recorded": yes, "rotated": yes and rotate, "entity_types": rows})
    else:
        for r in rows:
            why = idmarker.needs_rotate(r)
            if r["state"] == "same":
                line = "unchanged (the marker already matches)"
            elif yes:
                line = f"recorded the configuration in use (before: {_describe(r)})" + (" as a rotation" if why else "")
            else:
                line = f"would record the configuration in use (now: {_describe(r)})" + (
                    f"; needs --rotate: {why}" if why else "")
            out.print(escape(f"{r['entity_type']}: {line}"), highlight=False)
        if changing and not yes:
            out.print("nothing recorded: add --yes to record it", highlight=False)
    if changing and not yes:
        raise click.exceptions.Exit(1)
