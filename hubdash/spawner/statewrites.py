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
from collections.abc import Callable
from typing import Any

import sqlalchemy

# Seconds a save may wait for the commit it shares with others. A hub killed meanwhile has
# the job in its database without the newest details; one never written there at all is
# found by its name after the restart (orphansweep.py).
STATE_COMMIT_DELAY = 0.25

_log = logging.getLogger(__name__)


class StateWrites:
    """One per hub (HubState.state_writes): `save()` asks for a spawner's state to be written
    to its database row within `delay` seconds, with every other save meanwhile.

    Nothing touches the row until the commit: the state is taken then (the newest, never
    one older than JupyterHub has written since), put on the row and committed in one step,
    with no await between. A row changed and left uncommitted would be rolled back by the
    next JupyterHub request to finish ("Rolling back dirty objects"), losing the save.
    """

    def __init__(self, delay: float = STATE_COMMIT_DELAY, log: logging.Logger | None = None):
        self.delay = delay
        self.log = log or _log
        # Rows waiting for their commit, each with what gives its state then.
        self._pending: dict[int, tuple[Any, Callable[[], dict]]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self.saves = 0
        self.commits = 0

    def save(self, orm_spawner: Any, state_of: Callable[[], dict], *, now: bool = False) -> None:
        """Write `state_of()` to the spawner's database row within `delay` seconds, or
        before returning with `now` (or outside an event loop)."""
        if orm_spawner is None:
            return
        self._pending[id(orm_spawner)] = (orm_spawner, state_of)
        self.saves += 1
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
        return bool(self._pending)

    def commit(self) -> None:
        """Write and commit every save asked for so far."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = list(self._pending.values()), {}
        sessions: dict[int, Any] = {}
        for orm_spawner, state_of in pending:
            row = sqlalchemy.inspect(orm_spawner)
            if row.session is None or row.deleted or row.detached:
                continue  # the server was removed meanwhile
            try:
                orm_spawner.state = state_of()
            except Exception:  # noqa: BLE001 - one server's failure must not lose the others'
                self.log.exception("Could not take a server's state to save it")
                continue
            sessions[id(row.session)] = row.session
        for session in sessions.values():
            try:
                session.commit()
                self.commits += 1
            except Exception:  # noqa: BLE001 - the hub must go on; JupyterHub saves again
                self.log.exception("Could not write the servers' state to the hub's database")
                session.rollback()
