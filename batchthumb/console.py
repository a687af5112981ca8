"""Where a command's messages go while it works: status lines, warnings, the progress bar.

Commands never print; they are handed a :class:`Console`. The CLI passes a
:class:`StderrConsole`; a script gets :class:`Quiet` unless it passes its own.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Protocol, TextIO


class Console(Protocol):
    """What a command may say while it works (its result is returned, not said)."""

    @property
    def stream(self) -> TextIO | None:
        """Where the progress bar or status lines and JSON logs go; None: nowhere."""
        ...

    def status(self, message: str) -> None:
        """One line about what is happening (``batchthumb: ...``)."""
        ...

    def warn(self, message: str) -> None:
        """Something the user should know, that does not stop the command."""
        ...


class StderrConsole:
    """The CLI's console: everything on standard error, where it does not mix with output.

    ``mask`` is applied to every line (the CLI masks the secrets it has loaded).
    """

    def __init__(self, stream: TextIO | None = None, *, mask: Callable[[str], str] = str) -> None:
        self._stream = stream
        self._mask = mask

    @property
    def stream(self) -> TextIO:
        """Standard error (looked up at each use, so that tests can capture it)."""
        return self._stream if self._stream is not None else sys.stderr

    def status(self, message: str) -> None:
        """``batchthumb: message``, flushed: it may be the last line before a signal."""
        print(f"batchthumb: {self._mask(message)}", file=self.stream, flush=True)

    def warn(self, message: str) -> None:
        """``warning: message``."""
        print(f"warning: {self._mask(message)}", file=self.stream)


class Quiet:
    """A console that says nothing: the library's default."""

    stream = None

    def status(self, message: str) -> None:
        """Nothing."""

    def warn(self, message: str) -> None:
        """Nothing."""
