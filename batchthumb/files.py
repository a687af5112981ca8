"""Opening the files batchthumb reads: regular files only, never blocking, never unbounded.

Every file a user names (job, items, images, auth and credentials files, the mapping CSV, a
sandbox seed, a report read back) is opened here. A FIFO opened for reading blocks until a
writer comes, and a device such as ``/dev/zero`` reports size 0 and never ends, so a size
check on ``stat`` proves nothing: the file is opened with ``O_NONBLOCK``, refused unless
``fstat`` says it is a regular file, and read with a cap that counts the bytes actually read.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import sys
from typing import BinaryIO

if sys.platform != "win32":  # making a descriptor blocking again is fcntl(2): POSIX
    import fcntl

# Flags that do not exist on Windows, where batchthumb's lock refuses to run anyway.
NONBLOCK = getattr(os, "O_NONBLOCK", 0)
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
# Appending to a file batchthumb writes (the report, the log): created if missing, and never
# through a symlink, which a dangling link would otherwise create wherever it points.
APPEND = os.O_WRONLY | os.O_APPEND | os.O_CREAT | NOFOLLOW

KIB = 1024
MIB = 1024 * KIB
# The caps, by what a file is for (README, "Limits").
JOB_FILE_LIMIT = 1024 * MIB  # streamed, so only time grows: about 5 million inline items
AUTH_FILE_LIMIT = 1 * MIB  # an `auth:` section
SECRET_FILE_LIMIT = 64 * KIB  # a token file or an SDK credentials file
MAPPING_FILE_LIMIT = 64 * MIB  # migrate's source_plan_id,target_plan_id CSV
SEED_FILE_LIMIT = 16 * MIB  # a sandbox seed
ITEMS_FILE_LIMIT = 4096 * MIB  # an items_file, counted as it streams (tens of millions of items)
ITEMS_LINE_LIMIT = 16 * KIB  # one line of an items_file; an item takes about 150 bytes


class FileRefused(Exception):
    """A file that is not read; ``reason`` says why, for a message that names the file."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def describe(limit: int) -> str:
    """A cap for a message: ``5 MB``, ``64 KB``."""
    return f"{limit // MIB} MB" if limit >= MIB else f"{limit // KIB} KB"


def open_fd(path: os.PathLike[str] | str, flags: int, *, mode: int = 0o644) -> int:
    """``os.open`` that never blocks on a FIFO and refuses anything but a regular file.

    ``flags`` may add ``O_CREAT``, ``O_NOFOLLOW`` and the like; the descriptor returned is
    blocking again. Raises :class:`FileRefused` (the OS's reason, or what the file is).
    """
    try:
        fd = os.open(path, flags | NONBLOCK | os.O_CLOEXEC, mode)
    except FileNotFoundError:
        raise FileRefused("no such file") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP and flags & NOFOLLOW:
            raise FileRefused("is a symbolic link; refusing to follow it") from None
        if isinstance(exc, IsADirectoryError):
            raise FileRefused("is a directory") from None
        if exc.errno == errno.ENXIO:  # O_NONBLOCK write-open of a FIFO that nobody reads
            raise FileRefused("is a FIFO (named pipe), not a regular file") from None
        raise FileRefused(f"cannot open: {exc.strerror}") from None
    try:
        mode_now = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode_now):
            raise FileRefused(f"is {_kind(mode_now)}, not a regular file")
        if sys.platform != "win32":
            fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~NONBLOCK)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_regular(path: os.PathLike[str] | str) -> BinaryIO:
    """A regular file opened for reading in binary, without ever blocking on a FIFO."""
    return os.fdopen(open_fd(path, os.O_RDONLY), "rb")


def read_regular(path: os.PathLike[str] | str, *, limit: int, what: str) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, whatever ``stat`` says.

    At most ``limit + 1`` bytes are read, so a file that grows, or lies about its size, costs
    no more memory than the cap.
    """
    with open_regular(path) as file:
        try:
            data = file.read(limit + 1)
        except OSError as exc:
            raise FileRefused(f"cannot read: {exc.strerror}") from None
    if len(data) > limit:
        raise FileRefused(f"is larger than {describe(limit)}, the limit for {what}")
    return data


def open_new(path: os.PathLike[str] | str) -> BinaryIO:
    """A fresh file at ``path`` for writing: whatever was there (a symlink planted by another
    user, a hard link to one of ours) is unlinked, never written through.

    For temporary files that are renamed over their target once complete. Raises OSError.
    """
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | NOFOLLOW | os.O_CLOEXEC
    return os.fdopen(os.open(path, flags, 0o644), "wb")
