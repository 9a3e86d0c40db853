"""The hub's own SQLite database under a burst of spawns: write-ahead logging.

JupyterHub commits its database five or six times per spawn, on the event loop. With
SQLite's default rollback journal each commit creates, syncs and deletes a journal file:
on a busy disk the loop waits for those syncs, and a class starting at once saw stalls of
0.3-0.9 s made mostly of such waits (bench/README.md, section 8). In WAL mode with
`synchronous=NORMAL` a commit appends to one log file and syncs only at checkpoints.

The cost: after a power loss or an OS crash (not a hub crash) the last commits before it
may be lost; the database stays consistent. The WAL mode stays with the file.
"""

from __future__ import annotations

import sqlite3
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import Engine
from traitlets import Bool
from traitlets.config import LoggingConfigurable


class HubDatabaseSettings(LoggingConfigurable):
    hub_database_wal = Bool(
        True,
        help="""Put the hub's SQLite database (c.JupyterHub.db_url) in write-ahead-log
        mode with synchronous=NORMAL when the hub opens it: each commit no longer waits for
        the disk, which under a class starting at once kept the hub's event loop stalled
        for up to a second. After a power loss the last commits may be lost (the database
        stays consistent). The mode stays with the file: back up the '-wal' file beside
        it, or copy with `sqlite3 jupyterhub.sqlite ".backup copy.sqlite"`. The database
        must not be on a network file system (WAL needs shared memory between the hub's
        connections). It applies to every SQLite database the hub process opens (an
        authenticator's own, too); no effect on other databases (PostgreSQL, MySQL).""",
    ).tag(config=True)


def write_ahead_log(connection: Any, _record: Any = None) -> None:
    """A new SQLite connection of the hub's: WAL, and sync at checkpoints only."""
    if not isinstance(connection, sqlite3.Connection):
        return
    cursor = connection.cursor()
    try:
        cursor.execute("PRAGMA journal_mode=WAL")  # 'memory' for an in-memory database
        cursor.execute("PRAGMA synchronous=NORMAL")
    finally:
        cursor.close()


def use_write_ahead_log() -> None:
    """Apply write_ahead_log to every SQLite connection the hub process opens from now on
    (JupyterHub opens its engine after reading the config). Once per process."""
    if not event.contains(Engine, "connect", write_ahead_log):
        event.listen(Engine, "connect", write_ahead_log)
