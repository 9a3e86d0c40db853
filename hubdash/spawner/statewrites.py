"""StateWrites: the spawners' saved state written to the hub's database, the saves of many
spawners in one commit. Decides nothing about what is saved (JobSpawner.get_state does).

Why: each commit of the hub's SQLite database waits for the disk on the hub's event loop. A
class of 100 starting at once saved each server's state three times (job submitted, running,
tunnel open): 300 commits within half a minute, the largest single cause of the hub's loop
stalls in bench/class_burst.py. Saves within STATE_COMMIT_DELAY seconds now share one commit.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import sqlalchemy

# Seconds a save may wait for the commit it shares with others. A hub killed meanwhile has
# the job in its database without the newest details; one never written there at all is
# found by its name after the restart (orphansweep.py).
STATE_COMMIT_DELAY = 0.25

_log = logging.getLogger(__name__)


class StateWrites:
    """One per hub (HubState.state_writes): `save()` puts a spawner's state into the hub's
    database session at once and commits it within `delay` seconds, with every other save
    meanwhile."""

    def __init__(self, delay: float = STATE_COMMIT_DELAY, log: logging.Logger | None = None):
        self.delay = delay
        self.log = log or _log
        self._sessions: dict[int, Any] = {}  # sessions holding saves not yet committed
        self._timer: asyncio.TimerHandle | None = None
        self.saves = 0
        self.commits = 0

    def save(self, orm_spawner: Any, state: dict, *, now: bool = False) -> None:
        """Put `state` on the spawner's database row; committed within `delay` seconds, or
        before returning with `now` (or outside an event loop)."""
        if orm_spawner is None:
            return
        session = sqlalchemy.inspect(orm_spawner).session  # the hub's own session
        if session is None:
            return
        orm_spawner.state = state
        self.saves += 1
        self._sessions[id(session)] = session
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            now = True
        if now:
            self.commit()
        elif self._timer is None:
            self._timer = loop.call_later(self.delay, self.commit)

    @property
    def waiting(self) -> bool:
        """Whether saves wait for their commit."""
        return bool(self._sessions)

    def commit(self) -> None:
        """Commit every save made so far."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        sessions, self._sessions = list(self._sessions.values()), {}
        for session in sessions:
            try:
                session.commit()
                self.commits += 1
            except Exception:  # noqa: BLE001 - the hub must go on; JupyterHub saves again
                self.log.exception("Could not write the servers' state to the hub's database")
                session.rollback()
