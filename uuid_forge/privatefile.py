"""Private files (the journal, every ``--output`` file): created 0600, never through a symlink.

Why: such a file holds entity data or findings, and its path may lie in a directory others can
write. A symlink planted at the path must never redirect the write: its target is never
overwritten, never truncated and never chmodded. So a symlink (or anything but a regular file)
at the path is refused with an error naming the path; a new file is opened with ``O_NOFOLLOW``
and ``O_EXCL``, and a whole-file write goes to a temporary file in the same directory that then
replaces the path (a rename replaces a link planted meanwhile, never its target, and a full
disk leaves the previous file intact).
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat

from .errors import PrivateFileError

__all__ = ["check_folder", "create_private", "refuse_link", "write_private"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
# O_NOFOLLOW on a symlink fails with ELOOP (Linux) or EMLINK (FreeBSD).
_LINK_ERRNOS = {errno.ELOOP, errno.EMLINK}


def _link_refused(what: str, path: str) -> PrivateFileError:
    return PrivateFileError(f"{what} {path} is a symbolic link: refusing to follow it (its target is left "
                            "untouched); remove the link or name another path")


def _reason(err: OSError) -> str:
    return err.strerror or type(err).__name__


def refuse_link(path: str | os.PathLike[str], what: str = "file") -> bool:
    """Raise if ``path`` is a symlink or something other than a regular file; True if it exists."""
    path = os.fspath(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return False
    except OSError as err:
        raise PrivateFileError(f"{what} {path}: cannot check it: {_reason(err)}") from None
    if stat.S_ISLNK(st.st_mode):
        raise _link_refused(what, path)
    if not stat.S_ISREG(st.st_mode):
        raise PrivateFileError(f"{what} {path} exists and is not a regular file: refusing to write it")
    return True


def check_folder(path: str | os.PathLike[str], what: str = "file") -> None:
    """Raise unless the folder ``path`` would be written in exists: checked before a long run, not after."""
    folder = os.path.dirname(os.path.abspath(os.fspath(path)))
    if not os.path.isdir(folder):
        raise PrivateFileError(f"{what} {os.fspath(path)}: folder {folder} does not exist")


def create_private(path: str | os.PathLike[str], what: str = "file") -> tuple[int, int]:
    """Make sure ``path`` is a regular file of mode 0600 (created empty if absent), never via a link.

    Returns its (device, inode), so a caller that must reopen it by name (SQLite) can check that
    the name still means the same file afterwards.
    """
    path = os.fspath(path)
    refuse_link(path, what)
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW | _CLOEXEC, 0o600)
    except OSError as err:
        if err.errno in _LINK_ERRNOS:
            raise _link_refused(what, path) from None
        raise PrivateFileError(f"{what} {path}: cannot open it: {_reason(err)}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise PrivateFileError(f"{what} {path} is not a regular file")
        if stat.S_IMODE(st.st_mode) != 0o600:
            if hasattr(os, "fchmod"):
                os.fchmod(fd, 0o600)  # the file itself, never a link's target
            else:  # Windows before 3.13: the path was checked above
                os.chmod(path, 0o600)
        return st.st_dev, st.st_ino
    except OSError as err:
        raise PrivateFileError(f"{what} {path}: cannot make it private (mode 0600): {_reason(err)}") from None
    finally:
        os.close(fd)


def write_private(path: str | os.PathLike[str], data: str | bytes, what: str = "file", mode: int = 0o600) -> None:
    """Write ``data`` as the whole content of ``path`` (mode 0600), refusing a symlink at ``path``.

    ``mode`` is for a file another user must read and that holds no data (a metrics file that
    node_exporter reads): it is set exactly, whatever the umask.

    The data goes to a new temporary file beside ``path`` (``O_CREAT|O_EXCL|O_NOFOLLOW``), is
    fsynced and then renamed over ``path``. On any error the temporary file is removed, the old
    file (if any) is left as it was, and the error names ``path``.
    """
    path = os.fspath(path)
    refuse_link(path, what)
    body = data.encode("utf-8") if isinstance(data, str) else data
    folder, name = os.path.split(path)
    tmp = os.path.join(folder, f".{name}.{secrets.token_hex(4)}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _CLOEXEC, 0o600)
    except OSError as err:
        raise PrivateFileError(f"{what} {path}: cannot create it: {_reason(err)}") from None
    try:
        try:
            if mode != 0o600 and hasattr(os, "fchmod"):
                os.fchmod(fd, mode)
            view = memoryview(body)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise PrivateFileError(f"{what} {path}: cannot write it ({len(body)} bytes): {_reason(err)}; "
                               f"{path} was left as it was") from None
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
