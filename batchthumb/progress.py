"""Progress on stderr: a tqdm bar on a terminal, a status line every few seconds under cron.

The only module that imports tqdm. Cron mails everything a job prints, so without a terminal
there is no bar (it would flood the mail with carriage returns), only a periodic line.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TextIO

import anyio

from batchthumb.console import bar_drawn, bar_gone, write_line
from batchthumb.model import Tally

STATUS_INTERVAL = 10.0


class Progress(Protocol):
    """Shows a run's progress while it goes."""

    def update(self, tally: Tally) -> None:
        """An item finished."""
        ...

    def listed(self, done: int, total: int) -> None:
        """``done`` of the ``total`` projects to list are listed (the snapshot)."""
        ...

    async def heartbeat(self, tally: Tally) -> None:
        """Report periodically until cancelled, even when no item finishes for a while."""
        ...

    def close(self) -> None:
        """The run is over."""
        ...


class Silent:
    """No progress at all (``--no-progress``, tests)."""

    def update(self, tally: Tally) -> None:
        """Nothing to show."""

    def listed(self, done: int, total: int) -> None:
        """Nothing to show."""

    async def heartbeat(self, tally: Tally) -> None:
        """Nothing to show."""

    def close(self) -> None:
        """Nothing to close."""


class Bar:
    """A tqdm bar: items done, succeeded and failed, rate and ETA."""

    def __init__(self, stream: TextIO, *, total: int, skipped: int) -> None:
        from tqdm import tqdm  # imported here: `batchthumb --help` should not pay for it

        self._bar = tqdm(
            total=total + skipped,
            initial=skipped,
            file=stream,
            unit="plan",
            dynamic_ncols=True,
            smoothing=0.1,
        )
        self._stream = stream
        bar_drawn(stream, self._write)

    def _write(self, text: str) -> None:
        # tqdm's write clears the bar, prints, and draws the bar again below the line.
        self._bar.write(text, file=self._stream)
        self._stream.flush()

    def update(self, tally: Tally) -> None:
        """Advance by one and show the split."""
        self._bar.set_postfix_str(f"ok={tally.succeeded}, failed={tally.failed}", refresh=False)
        self._bar.update(1)

    def listed(self, done: int, total: int) -> None:
        """Say how far the snapshot is, before the counts, until every project is listed."""
        self._bar.set_description_str(listing(done, total), refresh=True)

    async def heartbeat(self, tally: Tally) -> None:
        """tqdm refreshes itself on update; keep the ETA moving while nothing finishes."""
        while True:
            await anyio.sleep(1)
            self._bar.refresh()

    def close(self) -> None:
        """Leave the final bar on screen."""
        bar_gone(self._stream)
        self._bar.close()


class StatusLines:
    """One plain line every ``interval`` seconds, for logs and cron mail."""

    def __init__(
        self,
        stream: TextIO,
        *,
        total: int,
        interval: float = STATUS_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = anyio.sleep,
    ) -> None:
        self._stream = stream
        self._total = total
        self._interval = interval
        self._clock = clock
        self._sleep = sleep
        self._start = clock()
        self._listing = ""

    def update(self, tally: Tally) -> None:
        """Lines are printed by the heartbeat, not per item."""

    def listed(self, done: int, total: int) -> None:
        """The next line says how far the snapshot is, until every project is listed."""
        self._listing = listing(done, total)

    def line(self, tally: Tally) -> str:
        """The status line for the current counts."""
        elapsed = max(self._clock() - self._start, 1e-9)
        done = tally.done
        rate = done / elapsed
        left = self._total - done
        eta = f", about {format_duration(left / rate)} left" if rate > 0 and left > 0 else ""
        skipped = f", {tally.skipped} already set" if tally.skipped else ""
        projects = f", {self._listing}" if self._listing else ""
        return (
            f"batchthumb: {done}/{self._total} done ({tally.succeeded} succeeded, "
            f"{tally.failed} failed{skipped}), {rate:.1f}/s{projects}{eta}"
        )

    async def heartbeat(self, tally: Tally) -> None:
        """Print the status line every interval."""
        while True:
            await self._sleep(self._interval)
            write_line(self._stream, self.line(tally))

    def close(self) -> None:
        """The summary follows; nothing more to print here."""


def listing(done: int, total: int) -> str:
    """``listing 12/200 projects`` while the snapshot goes on; empty once it is complete."""
    return f"listing {done}/{total} projects" if done < total else ""


def format_duration(seconds: float) -> str:
    """A duration for people: ``42 s``, ``3 min 5 s``, ``2 h 10 min``."""
    seconds = int(seconds + 0.5)
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60} min"


def choose_progress(stream: TextIO, *, enabled: bool, total: int, skipped: int = 0) -> Progress:
    """A bar on a terminal, status lines elsewhere, nothing when disabled."""
    if not enabled:
        return Silent()
    if stream.isatty():
        return Bar(stream, total=total, skipped=skipped)
    return StatusLines(stream, total=total)
