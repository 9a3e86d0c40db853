"""Server-sent events: reading the hub's event stream piece by piece, and writing our own.

Text handling only; no network and no knowledge of what the events mean.
"""

from __future__ import annotations

import json
from typing import Any


class EventStreamParser:
    """Turns chunks of a `text/event-stream` body into the JSON objects of its `data:` lines.

    >>> parser = EventStreamParser()
    >>> parser.feed(b'data: {"progress": 10}\\n\\n\\n\\ndata: {"pro')
    [{'progress': 10}]
    >>> parser.feed(b'gress": 20}\\n\\n')
    [{'progress': 20}]
    """

    def __init__(self) -> None:
        self._buffer = b""
        self._data: list[str] = []

    def feed(self, chunk: bytes) -> list[dict[str, Any]]:
        self._buffer += chunk
        events: list[dict[str, Any]] = []
        while b"\n" in self._buffer:
            raw, _, self._buffer = self._buffer.partition(b"\n")
            line = raw.decode("utf-8", errors="replace").rstrip("\r")
            if not line:
                # A blank line ends an event; the hub's keepalives are blank lines too.
                if self._data:
                    event = _load("\n".join(self._data))
                    self._data = []
                    if event is not None:
                        events.append(event)
                continue
            if line.startswith("data:"):
                self._data.append(line[5:].lstrip(" "))
        return events


def _load(text: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def format_event(name: str, data: Any) -> str:
    """One event for the browser's EventSource: a named event with JSON data.

    >>> format_event("server", {"ready": True})
    'event: server\\ndata: {"ready": true}\\n\\n'
    """
    # json.dumps never puts a raw newline in its output, so one data line is enough.
    return f"event: {name}\ndata: {json.dumps(data)}\n\n"
