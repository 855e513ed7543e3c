"""``python -m uuid_forge``: the same as the ``uuid-forge`` command."""

from .cli import entry

entry()
