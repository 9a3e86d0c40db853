"""How the hub and its forward keeper talk: one JSON object per line over a Unix socket in a
folder only the hub's user may enter, with every line bounded, and each end checking that the
other runs as the same user."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import stat
import struct
from pathlib import Path
from typing import Any

# The longest line either side reads: requests carry at most a key and a few settings.
MAX_LINE = 64 * 1024
# A Unix socket's path is at most 107 bytes on Linux (sun_path is 108 with its NUL).
MAX_SOCKET_PATH = 107


class WireError(Exception):
    """The other end sent something that is not a message, or is not who it must be."""


def encode(message: dict[str, Any]) -> bytes:
    line = json.dumps(message, separators=(",", ":")).encode() + b"\n"
    if len(line) > MAX_LINE:
        raise WireError(f"a keeper message of {len(line)} bytes is over the {MAX_LINE} limit")
    return line


async def read_message(reader: asyncio.StreamReader) -> dict[str, Any] | None:
    """The next message, or None at the end of the stream. The reader must be made with
    limit=MAX_LINE, so that a longer line is an error and never a buffer without bound."""
    try:
        line = await reader.readline()
    except (asyncio.LimitOverrunError, ValueError) as exc:
        raise WireError(f"a keeper message over {MAX_LINE} bytes ({exc})") from None
    if not line:
        return None
    if not line.endswith(b"\n"):
        raise WireError("the keeper connection ended inside a message")
    try:
        message = json.loads(line)
    except ValueError as exc:
        raise WireError(f"a keeper message that is not JSON: {exc}") from None
    if not isinstance(message, dict):
        raise WireError("a keeper message must be a JSON object")
    return message


def peer_uid(writer: asyncio.StreamWriter) -> int:
    """The user id of the process at the other end of a Unix socket (SO_PEERCRED)."""
    sock = writer.get_extra_info("socket")
    if sock is None or sock.family != socket.AF_UNIX:
        raise WireError("the keeper talks over Unix sockets only")
    creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", creds)
    return uid


def check_peer(writer: asyncio.StreamWriter) -> None:
    """WireError unless the other end runs as this process's user."""
    uid = peer_uid(writer)
    if uid != os.geteuid():
        raise WireError(f"a process of uid {uid} is not the hub's user (uid {os.geteuid()})")


def private_folder(path: Path) -> Path:
    """Make `path` (mode 0700) if missing; ValueError when it exists and anyone but this user
    owns it or may enter it, since a socket there could be someone else's."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode):
        raise ValueError(f"{path} is not a folder (the forward keeper's socket goes there)")
    if info.st_uid != os.geteuid():
        raise ValueError(
            f"{path} belongs to uid {info.st_uid}, not the hub's user: the forward keeper "
            "will not put its socket there (JobSpawner.forward_keeper_socket)"
        )
    if info.st_mode & 0o077:
        raise ValueError(
            f"{path} may be entered by others (mode {stat.S_IMODE(info.st_mode):o}): the forward "
            "keeper's folder must be 0700 (JobSpawner.forward_keeper_socket)"
        )
    return path


def check_socket_path(path: str) -> str:
    """ValueError naming the setting when a socket cannot have this path."""
    if not os.path.isabs(path):
        raise ValueError(f"JobSpawner.forward_keeper_socket must be an absolute path: {path!r}")
    if len(os.fsencode(path)) > MAX_SOCKET_PATH:
        raise ValueError(
            f"JobSpawner.forward_keeper_socket {path!r} is longer than the {MAX_SOCKET_PATH} "
            "bytes a Unix socket's path may have: set a shorter one"
        )
    return path
