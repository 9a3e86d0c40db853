"""The last lines of a job's output, as the hub shows them when a start fails or a job ends.

The log is the job's own output: any size, any line length. Only its end is read (a bounded
number of bytes, from the end of the file), and only a bounded number of lines of bounded
length is kept.
"""

from __future__ import annotations

from hubdash.transport.base import Transport, TransportError

TAIL_BYTES = 64 * 1024  # read from the end of the log, whatever its size
TAIL_LINES = 20
LINE_CHARS = 1000  # a longer line is cut, and says so


def tail_text(
    data: bytes, *, lines: int = TAIL_LINES, width: int = LINE_CHARS, cut_start: bool = False
) -> str:
    """The last `lines` lines of `data`, each cut at `width` characters with a marker.

    `cut_start`: `data` starts inside the file, so its first line is likely a piece of one;
    it is dropped when whole lines follow it.

    >>> tail_text(b"one\\ntwo\\nthree\\n", lines=2)
    'two\\nthree'
    >>> tail_text(b"x" * 12, width=5)
    'xxxxx… [7 more characters cut]'
    >>> tail_text(b"ial line\\nwhole\\n", cut_start=True)
    'whole'
    """
    text = data.decode(errors="replace").splitlines()
    if cut_start and len(text) > 1:
        text = text[1:]
    kept = text[-lines:] if lines > 0 else []
    return "\n".join(_cut(line, width) for line in kept)


def _cut(line: str, width: int) -> str:
    if len(line) <= width:
        return line
    return f"{line[:width]}… [{len(line) - width} more characters cut]"


async def read_log_tail(transport: Transport, path: str, *, max_bytes: int = TAIL_BYTES) -> str:
    """The last lines of the log at `path`; "" when there is none or it cannot be read."""
    try:
        # One byte more tells whether the file holds more than we keep.
        data = await transport.read_tail(path, max_bytes=max_bytes + 1)
    except (FileNotFoundError, PermissionError, TransportError):
        return ""
    cut = len(data) > max_bytes
    return tail_text(data[1:] if cut else data, cut_start=cut)
