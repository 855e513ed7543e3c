"""The ``uuid-forge`` command line. Exit codes: 0 ok, 1 inconsistent (audit), 2 bad input or error.

Errors are one line on stderr, never a traceback (set UUID_FORGE_DEBUG=1 to see one).
The group is :mod:`~uuid_forge.cli.app`, its commands are added in :mod:`~uuid_forge.cli.commands`.
"""

from __future__ import annotations

import logging
import os
import sys

import click

from ..errors import UUIDForgeError
from ..precedence import DEBUG_ENV
from ..urls import mask_text
from .commands import cli

__all__ = ["cli", "entry", "main"]


def _quiet_write_log() -> None:
    """The write report the CLI prints names every store error and dead letter: the library's
    per-batch warnings about the same events would say each one twice on stderr."""
    forge_log = logging.getLogger("uuid_forge.forge")
    if not forge_log.handlers:
        forge_log.addHandler(logging.NullHandler())
        forge_log.propagate = False


#: where a driver's message stops being about the error (SQLAlchemy's link to its docs)
_TRAILERS = ("(Background on this error",)


def _one_line(text: str) -> str:
    """An error as the one line the CLI prints: a driver's multi-line message (psycopg's
    "Is the server running...", SQLAlchemy's background link) folded, secrets masked."""
    for marker in _TRAILERS:
        cut = text.find(marker)
        if cut > 0:
            text = text[:cut]
    return " ".join(part.strip() for part in mask_text(text).splitlines() if part.strip())


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point."""
    try:
        code = cli.main(args=argv, prog_name="uuid-forge", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("uuid-forge: aborted", err=True)
        return 2
    except click.exceptions.Exit as done:
        return int(done.exit_code)
    except click.exceptions.NoArgsIsHelpError as err:  # a group given no command: its help, as asked
        click.echo(err.format_message())
        return 0
    except click.UsageError as err:  # one line, as every other error, with where to read more
        where = err.ctx.command_path if err.ctx is not None else "uuid-forge"
        click.echo(f"{where}: error: {_one_line(err.format_message()).rstrip('.')} (see '{where} --help')", err=True)
        return 2
    except click.ClickException as err:
        err.show()
        return 2
    except (UUIDForgeError, ValueError, TypeError, OSError) as err:
        if os.environ.get(DEBUG_ENV):
            raise
        click.echo(f"uuid-forge: error: {_one_line(str(err))}", err=True)
        return 2
    except KeyboardInterrupt:
        click.echo("uuid-forge: interrupted", err=True)
        return 130
    except Exception as err:  # the CLI never shows a raw traceback
        if os.environ.get(DEBUG_ENV):
            raise
        click.echo(f"uuid-forge: unexpected error ({type(err).__name__}): {_one_line(str(err))} "
                   f"(set {DEBUG_ENV}=1 for a traceback)", err=True)
        return 2
    return code if isinstance(code, int) else 0


def entry() -> None:
    """The ``uuid-forge`` command and ``python -m uuid_forge`` (not in-process callers of main())."""
    _quiet_write_log()
    sys.exit(main())


_entry = entry  # the console script's name in pyproject.toml (and in installs made before it was public)
