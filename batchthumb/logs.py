"""Machine-readable logs: one JSON object per event, secrets masked by value."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO

from batchthumb.errors import UsageError


class JsonEvents:
    """Writes each event as a JSON line: ``{"ts": ..., "event": ..., ...fields}``.

    A write that fails (a full disk) never raises into the run: the error is kept in
    :attr:`error`, ``on_error`` is told once, and later events are dropped.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        redact: Callable[[str], str] = str,
        on_error: Callable[[OSError], None] = lambda exc: None,
    ) -> None:
        self._stream = stream
        self._redact = redact
        self._on_error = on_error
        self.error: OSError | None = None

    def emit(self, event: str, **fields: Any) -> None:
        """Write one event and flush it, so a tailing collector sees it at once."""
        if self.error is not None:
            return
        record = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": event}
        record.update((k, v) for k, v in fields.items() if v is not None)
        try:
            self._stream.write(self._redact(json.dumps(record, ensure_ascii=False)) + "\n")
            self._stream.flush()
        except OSError as exc:
            self.error = exc
            self._on_error(exc)

    def check(self) -> None:
        """Raise :class:`UsageError` if a write failed (the CLI's exit 2)."""
        if self.error is not None:
            name = getattr(self._stream, "name", "the log")
            raise UsageError(
                f"{name}: cannot write the log: {self.error.strerror}; the run stopped "
                "(what was done is in the report)"
            )
