"""What a run says, and where: quiet or verbose, the log file, JSON events.

One :class:`RunOutput` per run wraps the command's console with the run's settings:

- ``quiet``: the console hears nothing (the summary still comes when something failed);
- ``verbose``: retries and throttling are status lines too;
- ``log_file`` without ``log_json``: every line said, dated, is appended there as well;
- ``log_json``: events go to ``log_file`` as JSON lines, or, without one, to the console's
  stream, which then carries nothing else: no bar, no status line, JSON only.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any, TextIO

from batchthumb.console import Console
from batchthumb.errors import BatchthumbError, UsageError, os_errors
from batchthumb.files import APPEND, FileRefused, open_fd
from batchthumb.logs import JsonEvents
from batchthumb.model import RunSettings

# Events that are a line of their own with --verbose (the rest are in the summary).
_VERBOSE = {"retry", "throttled"}


class RunOutput:
    """A :class:`~batchthumb.console.Console` and :class:`~batchthumb.sending.Events` for a run."""

    def __init__(self, console: Console, settings: RunSettings, log: TextIO | None) -> None:
        self._console = console
        self._quiet = settings.quiet
        self._verbose = settings.verbose
        json_on_console = settings.log_json and log is None
        self.json: TextIO | None = (
            (console.stream if json_on_console else log) if settings.log_json else None
        )
        self.json_on_console = json_on_console and console.stream is not None
        self._log = None if settings.log_json else log  # the human log file
        self._json_events: JsonEvents | None = None
        self.redact: Callable[[str], str] = str
        # A log write that fails never raises into the run: it is kept, the run told once.
        self.log_error: OSError | None = None
        self.on_log_error: Callable[[OSError], None] = lambda exc: None
        self._log_name = getattr(log, "name", "the log")

    @property
    def stream(self) -> TextIO | None:
        """Where the bar or status lines go: the console's, unless quiet or taken by JSON."""
        if self._quiet or self.json_on_console:
            return None
        return self._console.stream

    def status(self, message: str) -> None:
        """A status line: on the console unless quiet, in the log file, as a JSON event."""
        self._say("status", message)
        if not self._quiet and not self.json_on_console:
            self._console.status(message)

    def warn(self, message: str) -> None:
        """A warning: like a status line (quiet keeps it in the log only)."""
        self._say("warning", message)
        if not self._quiet and not self.json_on_console:
            self._console.warn(message)

    def error(self, exc: BatchthumbError) -> None:
        """What stopped the command, in the log; on the console when JSON took its stream."""
        self._say("error", str(exc))  # a JobFileError's text is its problems, one a line
        if self.json_on_console:
            exc.shown = True  # the console's stream holds JSON only: cli must not add a line

    def log_only(self, lines: list[str]) -> None:
        """Lines the CLI prints itself (the summary): into the human log file too."""
        for text in lines:
            for line in text.splitlines():
                self._write_log(line)

    def emit(self, event: str, **fields: Any) -> None:
        """One event: a JSON line with log_json; a status line for retries with verbose."""
        if self.json is not None:
            if self._json_events is None:
                self._json_events = JsonEvents(
                    self.json, redact=lambda text: self.redact(text), on_error=self._failed
                )
            self._json_events.emit(event, **fields)
        if event in _VERBOSE and not fields.get("throttled"):  # its "throttled" line said it
            line = self.redact(_describe(event, fields))
            self._write_log(line)
            if self._verbose and not self.json_on_console:
                self._console.status(line)

    def _say(self, event: str, message: str) -> None:
        message = self.redact(message)
        prefix = "warning: " if event == "warning" else "error: " if event == "error" else ""
        self._write_log(prefix + message)
        if self.json is not None:
            self.emit(event, message=message)

    def _write_log(self, line: str) -> None:
        if self._log is None or self.log_error is not None:
            return
        stamp = datetime.now(UTC).isoformat(timespec="seconds")
        try:
            self._log.write(f"{stamp} batchthumb: {line}\n")
            self._log.flush()
        except OSError as exc:
            self._failed(exc)

    def _failed(self, exc: OSError) -> None:
        if self.log_error is None:
            self.log_error = exc
            self.on_log_error(exc)

    def check_log(self) -> None:
        """Raise :class:`UsageError` (exit 2) if a write to the log failed."""
        if self.log_error is not None:
            raise UsageError(
                f"{self._log_name}: cannot write the log: {self.log_error.strerror}; the run "
                "stopped (what was done is in the report)"
            )


def _describe(event: str, fields: dict[str, Any]) -> str:
    """``retry PUT plan X (attempt 2): HTTP 503 ...`` for a person reading along."""
    status = fields.get("http_status")
    answer = f"HTTP {status}" if status else "no answer"
    if fields.get("error_code"):
        answer += f" {fields['error_code']}"
    if fields.get("error"):
        answer += f": {fields['error']}"
    after = fields.get("retry_after")
    wait = f"; the server asked to wait {after:g} s" if after else ""
    subject = fields.get("subject")
    if event == "throttled":
        return f"throttled on {subject}: {answer}{wait}; slowing down"
    return f"retrying {subject} (attempt {fields.get('attempt')} failed: {answer}){wait}"


def _open_append(path: str, flags: int) -> int:
    return open_fd(path, APPEND)


@contextmanager
def open_output(settings: RunSettings, console: Console) -> Iterator[RunOutput]:
    """The run's output; what stops the run is logged before it leaves.

    Given a :class:`RunOutput` already (a command that opened it before connecting), that one.
    """
    if isinstance(console, RunOutput):
        yield console
        return
    log: TextIO | None = None
    if settings.log_file is not None:
        with os_errors(settings.log_file, "write the log", UsageError):
            settings.log_file.parent.mkdir(parents=True, exist_ok=True)
        try:  # closed below, when the run ends
            log = open(settings.log_file, "a", encoding="utf-8", opener=_open_append)  # noqa: SIM115
        except FileRefused as exc:
            raise UsageError(f"{settings.log_file}: cannot write the log: {exc.reason}") from None
    output = RunOutput(console, settings, log)
    try:
        yield output
    except BatchthumbError as exc:
        output.error(exc)
        raise
    finally:
        if log is not None:
            # Each line is flushed as written: a close that fails repeats a known error.
            with contextlib.suppress(OSError):
                log.close()
