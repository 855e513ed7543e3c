"""Every command on the group: the one module that imports the group and the command modules.

Why here and not in :mod:`uuid_forge.cli.app`: the command modules import the group's settings
from ``app``, so ``app`` importing them back would be a cycle. Adding a command is one line here.
"""

from __future__ import annotations

from . import audit, delete, demo, deployment, ids, journal, markers, migrate, sql, stores, write
from .app import cli

__all__ = ["cli"]

for command in (
    ids.generate, ids.decode_, ids.inspect, ids.encode_, ids.extract,            # IDs, no store
    deployment.new_salt, deployment.init, deployment.config, deployment.validate, deployment.info,
    stores.adapters, stores.stores,                                                # adapters and stores
    write.write, write.replay, delete.delete, audit.audit,                         # the main jobs
    journal.journal, markers.ids, demo.demo, migrate.migrate,
    sql.sql,                                                                       # SQL inside a database
):
    cli.add_command(command)
