"""Where valuesim may write, and one line when it may not.

Every write goes to a temporary file beside its target that is then renamed over it
(``valuesim.artifacts``). A rename replaces whatever holds the name, so a target that
exists and is not a regular file (``/dev/full``, a FIFO, a folder) is refused before
anything is written. A write that the system refuses (read-only mount, full disk,
``/proc``, no permission) becomes an :class:`OutputError` naming the path, the cause
and the fix, instead of a traceback.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
from pathlib import Path

from valuesim.errors import OutputError

# what a non-regular file is, for the message (checked in this order)
_KINDS = (
    (stat.S_ISDIR, "a directory"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
    (stat.S_ISFIFO, "a FIFO (named pipe)"),
    (stat.S_ISSOCK, "a socket"),
)

# The temporary names artifacts makes (mkstemp/mkdtemp: ``.<name>.<8 random>.tmp``);
# a message names the target, not the temporary it was being built in.
_TEMP_PART = re.compile(r"^\.(?P<name>.+)\.[a-z0-9_]{8}\.tmp$")
# polars reports an I/O failure as text ("... (os error 28)"), without an errno
_OS_ERROR = re.compile(r"os error (\d+)")

# The probe written by check_writable: one block, so a full disk fails it too (an empty
# file needs only an inode, which a full file system usually still has).
_PROBE_BYTES = 4096


def shown(path: Path) -> str:
    """``path`` as a user should read it: temporary parts replaced by their target's name."""
    parts = [m.group("name") if (m := _TEMP_PART.match(p)) else p for p in Path(path).parts]
    return str(Path(*parts)) if parts else str(path)


def kind_of(path: Path) -> str | None:
    """What ``path`` is when it exists and is not a regular file, else None (symlinks
    followed: a link to ``/dev/full`` is a device)."""
    try:
        mode = Path(path).stat().st_mode
    except OSError:
        return None
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def error_number(exc: BaseException) -> int | None:
    """The errno of an OSError, or the one polars puts into its message text."""
    if isinstance(exc, OSError) and exc.errno is not None:
        return exc.errno
    found = _OS_ERROR.search(str(exc))
    return int(found.group(1)) if found else None


def _cause_and_fix(code: int | None, exc: BaseException, where: str) -> tuple[str, str]:
    if code == errno.EROFS:
        return (
            "read-only file system",
            f"make {where} writable (remount it read-write) or write elsewhere",
        )
    if code in (errno.ENOSPC, errno.EDQUOT):
        return "no space left on the device", f"free space on the disk holding {where} and rerun"
    if code == errno.EFBIG:
        return "file too large for the file system", "write to another disk"
    if code in (errno.EACCES, errno.EPERM):
        return "permission denied", f"make {where} writable for this user or write elsewhere"
    if code in (errno.ENOENT, errno.ENOTDIR) and Path(where).is_dir():
        # the folder exists but takes no new files: /proc, /sys and the like
        return "it takes no new files (a virtual file system like /proc or /sys)", (
            "write to a folder on a disk"
        )
    if code == errno.EISDIR:
        return "is a directory", "give a file name"
    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).splitlines()[0]
    return text, "write elsewhere"


def write_refused(exc: BaseException) -> bool:
    """True for an error that says the file system refused a write (it has an errno)."""
    return error_number(exc) is not None


def output_error(path: Path, exc: BaseException) -> OutputError:
    """The one line for a write to ``path`` that failed with ``exc``."""
    target = Path(shown(path))
    where = str(_nearest_folder(target.parent))
    cause, fix = _cause_and_fix(error_number(exc), exc, where)
    return OutputError(f"cannot write {target}: {cause}; {fix}")


def not_a_file(path: Path, what: str, label: str = "") -> OutputError:
    named = f"{label} {shown(path)}" if label else shown(path)
    return OutputError(
        f"{named} is {what}, not a regular file; give another path "
        "(valuesim replaces only regular files)"
    )


def _nearest_folder(folder: Path) -> Path:
    """``folder`` or its nearest existing ancestor: where a write would create things."""
    folder = Path(folder)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def check_writable(folder: Path, *, when: str = "") -> None:
    """Fail unless files can be created in ``folder`` (or, when it does not exist yet,
    in its nearest existing ancestor, where its own folders would be made): a probe
    file of one block is written there and removed. ``when`` ends the message (e.g.
    "checked before any request was sent")."""
    folder = Path(folder)
    where = _nearest_folder(folder)
    suffix = f" ({when})" if when else ""
    if not where.is_dir():
        raise OutputError(
            f"cannot write to {folder}: {where} is {kind_of(where) or 'a file'}, "
            f"not a folder; remove it or write elsewhere{suffix}"
        )
    fd = -1
    name = ""
    try:
        fd, name = tempfile.mkstemp(dir=where, prefix=".valuesim-probe.", suffix=".tmp")
        os.write(fd, b"\0" * _PROBE_BYTES)
        os.fsync(fd)
    except OSError as exc:
        cause, fix = _cause_and_fix(exc.errno, exc, str(where))
        raise OutputError(f"cannot write to {folder}: {cause}; {fix}{suffix}") from exc
    finally:
        if fd >= 0:
            os.close(fd)
        if name:
            Path(name).unlink(missing_ok=True)


def check_output_target(path: Path, label: str = "") -> Path:
    """A user-given output file, checked before any work: it must not exist as anything
    but a regular file, and its folder must take new files. ``label`` is the option
    (``--plot``) the message names."""
    path = Path(path)
    what = kind_of(path)
    if what is not None:
        raise not_a_file(path, what, label)
    try:
        check_writable(path.parent)
    except OutputError as exc:
        raise OutputError(f"{label} {path}: {exc}" if label else str(exc)) from exc.__cause__
    return path


def check_output_folder(path: Path, label: str = "") -> Path:
    """A user-given output folder (replaced whole): it must be a folder or absent, and
    the folder above it must take new files (the new one is built there)."""
    path = Path(path)
    what = kind_of(path)
    if path.exists() and what != "a directory":
        named = f"{label} {path}" if label else str(path)
        raise OutputError(f"{named} is {what or 'a file'}, not a folder; give a folder")
    try:
        check_writable(path.parent)
    except OutputError as exc:
        raise OutputError(f"{label} {path}: {exc}" if label else str(exc)) from exc.__cause__
    return path
