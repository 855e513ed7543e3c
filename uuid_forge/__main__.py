"""``python -m uuid_forge``: the same as the ``uuid-forge`` command."""

from .cli import _entry

_entry()
