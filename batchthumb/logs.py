"""Machine-readable logs: one JSON object per event, secrets masked by value."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, TextIO


class JsonEvents:
    """Writes each event as a JSON line: ``{"ts": ..., "event": ..., ...fields}``."""

    def __init__(self, stream: TextIO, *, redact: Callable[[str], str] = str) -> None:
        self._stream = stream
        self._redact = redact

    def emit(self, event: str, **fields: Any) -> None:
        """Write one event and flush it, so a tailing collector sees it at once."""
        record = {"ts": datetime.now(UTC).isoformat(timespec="milliseconds"), "event": event}
        record.update((k, v) for k, v in fields.items() if v is not None)
        self._stream.write(self._redact(json.dumps(record, ensure_ascii=False)) + "\n")
        self._stream.flush()
