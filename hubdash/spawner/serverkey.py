"""The key of a server: its folder on the cluster and the last part of its job name.

One key per server name and one server name per key, over every name a hub may hold
(JupyterHub 6 creates only lowercase slugs, but older hubs allowed any text and
`allow_invalid_named_server_start` still starts such servers). Two servers of a user
never share a folder or a job name, so starting one never cancels the other's job as
one left over from an earlier start.

The three forms cannot meet:

- plain: a name of letters, digits, ``_`` and ``-`` that starts with a letter or a digit,
  at most 64 characters, not ``default``: kept as it is (every name JupyterHub 6 creates);
- escaped: any other name, as ``_`` then its UTF-8 bytes, each byte outside
  ``A-Z a-z 0-9 -`` (``_`` too) written ``_xx`` in lowercase hex: it starts with ``_``,
  which no plain key does, and reads back to the name alone;
- hashed: an escaped form longer than 64 characters, cut after at most 49 characters
  (at an escape's edge) and followed by ``-`` and 32 hex digits of the name's SHA-256:
  80 to 82 characters, longer than any plain or escaped key.

Keys hold only ``A-Z a-z 0-9 _ -``, never start with ``-`` and are at most 82 characters:
a file name that is never ``.`` or ``..``, and a job name part every scheduler takes (PBS
Pro's qsub refuses a ``.`` in -N, and takes at most 230 characters; Torque 256).
"""

from __future__ import annotations

import hashlib
import re

DEFAULT_KEY = "default"  # the default server's (name "")
MAX_KEY = 64  # plain and escaped keys; a hashed key is longer
HASHED_KEY_LENGTHS = range(80, 83)
_PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_KEPT = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-")
_CUT = 49  # characters of the escaped form a hashed key keeps, at most
_HASH_HEX = 32


def server_key(name: str) -> str:
    """The folder name and job name part of the server called `name` ("" is the default).

    >>> server_key(""), server_key("gpu-2"), server_key("my_server")
    ('default', 'gpu-2', 'my_server')
    >>> server_key("default"), server_key("a b"), server_key("a~b"), server_key("_x")
    ('_default', '_a_20b', '_a_7eb', '__5fx')
    >>> server_key(".."), server_key("a.b"), server_key("-rf"), server_key("é")
    ('__2e_2e', '_a_2eb', '_-rf', '__c3_a9')
    >>> key = server_key("x" * 65)
    >>> key[:10], key[49], len(key)
    ('_xxxxxxxxx', '-', 82)
    """
    if not name:
        return DEFAULT_KEY
    if name != DEFAULT_KEY and _PLAIN.fullmatch(name):
        return name
    data = name.encode("utf-8", "surrogatepass")  # a lone surrogate, too, has its bytes
    units = [chr(byte) if byte in _KEPT else f"_{byte:02x}" for byte in data]
    escaped = "_" + "".join(units)
    if len(escaped) <= MAX_KEY:
        return escaped
    kept = "_"
    for unit in units:
        if len(kept) + len(unit) > _CUT:
            break
        kept += unit
    return f"{kept}-{hashlib.sha256(data).hexdigest()[:_HASH_HEX]}"
