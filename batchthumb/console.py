"""Where a command's messages go while it works: status lines, warnings, the progress bar.

Commands never print; they are handed a :class:`Console`. The CLI passes a
:class:`StderrConsole`; a script gets :class:`Quiet` unless it passes its own.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Protocol, TextIO

# Streams a progress bar is drawn on, and how to print a line above it (set by progress.Bar).
_bars: dict[TextIO, Callable[[str], None]] = {}


def bar_drawn(stream: TextIO, write_above: Callable[[str], None]) -> None:
    """A bar is drawn on ``stream`` from now on: lines go above it through ``write_above``."""
    _bars[stream] = write_above


def bar_gone(stream: TextIO) -> None:
    """The bar on ``stream`` is closed."""
    _bars.pop(stream, None)


def write_line(stream: TextIO, text: str) -> None:
    """Print one line and flush it; above the bar when one is drawn, never inside it."""
    above = _bars.get(stream)
    if above is not None:
        above(text)
    else:
        print(text, file=stream, flush=True)


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
        write_line(self.stream, f"batchthumb: {self._mask(message)}")

    def warn(self, message: str) -> None:
        """``warning: message``."""
        write_line(self.stream, f"warning: {self._mask(message)}")


class Quiet:
    """A console that says nothing: the library's default."""

    stream = None

    def status(self, message: str) -> None:
        """Nothing."""

    def warn(self, message: str) -> None:
        """Nothing."""
