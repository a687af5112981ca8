"""Progress: a bar on a terminal, periodic status lines under cron, nothing when asked."""

from __future__ import annotations

import io

import anyio
import anyio.lowlevel
import pytest

from batchthumb.model import Tally
from batchthumb.progress import Bar, Silent, StatusLines, choose_progress, format_duration

pytestmark = pytest.mark.anyio


class Terminal(io.StringIO):
    """A stream that says it is a terminal."""

    def isatty(self) -> bool:
        return True


def tally(succeeded: int, failed: int = 0, skipped: int = 0) -> Tally:
    return Tally(succeeded=succeeded, failed=failed, skipped=skipped)


def test_a_terminal_gets_a_bar_cron_gets_lines_and_no_progress_gets_nothing() -> None:
    """The kind of progress follows where stderr goes and the --no-progress flag."""
    assert isinstance(choose_progress(Terminal(), enabled=True, total=5), Bar)
    assert isinstance(choose_progress(io.StringIO(), enabled=True, total=5), StatusLines)
    assert isinstance(choose_progress(Terminal(), enabled=False, total=5), Silent)


def test_the_bar_shows_items_done_and_the_split() -> None:
    """Each update advances the bar and shows succeeded and failed counts."""
    stream = Terminal()
    bar = choose_progress(stream, enabled=True, total=3)
    bar.update(tally(1))
    bar.update(tally(1, 1))
    bar.close()
    text = stream.getvalue()
    assert "2/3" in text
    assert "ok=1, failed=1" in text


def test_the_status_line_says_how_far_how_fast_and_how_long_is_left() -> None:
    """Under cron, one plain line carries counts, rate and an estimate of the time left."""
    now = [100.0]
    lines = StatusLines(io.StringIO(), total=200, clock=lambda: now[0])
    now[0] += 10
    assert lines.line(tally(48, 2)) == (
        "batchthumb: 50/200 done (48 succeeded, 2 failed), 5.0/s, about 30 s left"
    )
    assert lines.line(tally(40, 0, 10)).startswith(
        "batchthumb: 50/200 done (40 succeeded, 0 failed, 10 already set)"
    )


async def test_status_lines_are_printed_every_interval_even_when_nothing_finishes() -> None:
    """The heartbeat prints on its own schedule, so a stalled run is not silent."""
    stream = io.StringIO()
    naps: list[float] = []

    async def sleep(seconds: float) -> None:
        naps.append(seconds)
        if len(naps) == 3:
            raise anyio.get_cancelled_exc_class()
        await anyio.lowlevel.checkpoint()

    lines = StatusLines(stream, total=10, interval=10.0, sleep=sleep)
    with pytest.raises(anyio.get_cancelled_exc_class()):
        await lines.heartbeat(tally(0))
    assert naps == [10.0, 10.0, 10.0]
    assert stream.getvalue().count("batchthumb: 0/10 done") == 2


@pytest.mark.parametrize(
    ("seconds", "text"), [(42.4, "42 s"), (185, "3 min 5 s"), (7800, "2 h 10 min")]
)
def test_durations_read_naturally(seconds: float, text: str) -> None:
    """Estimates are printed as people say them."""
    assert format_duration(seconds) == text


def test_the_status_line_says_how_far_the_snapshot_is_until_it_is_complete() -> None:
    """While projects are still being listed, the status line says how many; then it stops."""
    now = [100.0]
    lines = StatusLines(io.StringIO(), total=200, clock=lambda: now[0])
    now[0] += 10
    lines.listed(12, 200)
    assert lines.line(tally(50)) == (
        "batchthumb: 50/200 done (50 succeeded, 0 failed), 5.0/s, listing 12/200 projects, "
        "about 30 s left"
    )
    lines.listed(200, 200)
    assert "listing" not in lines.line(tally(50))


def test_the_bar_says_how_far_the_snapshot_is() -> None:
    """On a terminal the bar is labelled with the listing's progress."""
    stream = Terminal()
    bar = choose_progress(stream, enabled=True, total=3)
    bar.listed(2, 3)
    bar.update(tally(1))
    bar.close()
    assert "listing 2/3 projects" in stream.getvalue()
