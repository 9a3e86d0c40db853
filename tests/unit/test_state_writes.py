"""The spawners' state written to the hub's database: saves made close together share one
commit, a save asked for now commits at once, outside an event loop every save does; the
state is taken at the commit, so that nothing waits uncommitted on a row."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import JSON, Column, Integer, create_engine, select
from sqlalchemy.orm import Session, declarative_base

from hubdash.spawner.statewrites import StateWrites

Base = declarative_base()


class Row(Base):
    """A stand-in for JupyterHub's orm.Spawner: a row with a JSON state."""

    __tablename__ = "spawners"
    id = Column(Integer, primary_key=True)
    state = Column(JSON)


@pytest.fixture
def db(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path}/hub.sqlite")
    Base.metadata.create_all(engine)
    session = Session(engine)
    rows = [Row(id=n, state={}) for n in range(3)]
    session.add_all(rows)
    session.commit()
    return engine, session, rows


class CountingSession:
    """Counts commits of the session it wraps."""

    def __init__(self, session: Session) -> None:
        self.session, self.commits = session, 0
        self._commit = session.commit
        session.commit = self._counted  # type: ignore[method-assign]

    def _counted(self) -> None:
        self.commits += 1
        self._commit()


def saved(engine) -> dict[int, dict]:
    """What another connection reads from the database: committed rows only."""
    with Session(engine) as other:
        return {row.id: row.state for row in other.scalars(select(Row))}


async def test_saves_of_many_servers_close_together_share_one_commit(db):
    engine, session, rows = db
    counter = CountingSession(session)
    writes = StateWrites(delay=0.05)
    for n, row in enumerate(rows):
        writes.save(row, lambda n=n: {"job": n})
    assert counter.commits == 0 and writes.waiting
    assert saved(engine) == {0: {}, 1: {}, 2: {}}  # not yet in the database
    for _ in range(100):  # up to 5 s: an upper bound, not a timing
        if not writes.waiting:
            break
        await asyncio.sleep(0.05)
    assert counter.commits == 1
    assert saved(engine) == {0: {"job": 0}, 1: {"job": 1}, 2: {"job": 2}}
    assert (writes.saves, writes.commits) == (3, 1)


async def test_a_save_asked_for_now_commits_at_once_with_those_waiting(db):
    engine, session, rows = db
    counter = CountingSession(session)
    writes = StateWrites(delay=60)
    writes.save(rows[0], lambda: {"job": "queued"})
    writes.save(rows[1], lambda: {"job": "left for the next hub"}, now=True)
    assert counter.commits == 1 and not writes.waiting
    assert saved(engine)[0] == {"job": "queued"}
    assert saved(engine)[1] == {"job": "left for the next hub"}


def test_outside_an_event_loop_every_save_commits_at_once(db):
    engine, session, rows = db
    writes = StateWrites(delay=60)
    writes.save(rows[2], lambda: {"job": 7})
    assert saved(engine)[2] == {"job": 7}


def test_a_server_without_a_database_row_is_not_saved():
    writes = StateWrites()
    writes.save(None, lambda: {"job": 1})
    assert writes.saves == 0


async def test_a_failed_commit_is_logged_and_the_session_stays_usable(db, caplog):
    engine, session, rows = db
    writes = StateWrites(delay=60)

    def broken() -> None:
        raise RuntimeError("disk full")

    session.commit = broken  # type: ignore[method-assign]
    writes.save(rows[0], lambda: {"job": 1}, now=True)
    assert "Could not write the servers' state" in caplog.text
    del session.commit  # the real one again
    writes.save(rows[0], lambda: {"job": 2}, now=True)
    assert saved(engine)[0] == {"job": 2}


async def test_a_request_that_rolls_back_meanwhile_loses_no_save(db):
    """JupyterHub rolls back its session when a request finishes with changes left
    uncommitted: a save waiting for its commit must leave no change there to lose."""
    engine, session, rows = db
    writes = StateWrites(delay=0.05)
    writes.save(rows[0], lambda: {"job": "submitted"})
    assert not session.dirty  # what JupyterHub's BaseHandler.finish looks at
    session.rollback()
    for _ in range(100):  # up to 5 s: an upper bound, not a timing
        if not writes.waiting:
            break
        await asyncio.sleep(0.05)
    assert saved(engine)[0] == {"job": "submitted"}


async def test_the_state_written_is_the_newest_not_the_one_at_the_save(db):
    engine, session, rows = db
    writes = StateWrites(delay=60)
    state = {"job": "queued"}
    writes.save(rows[0], lambda: dict(state))
    state["job"] = "running"  # e.g. JupyterHub saved the running server meanwhile
    writes.commit()
    assert saved(engine)[0] == {"job": "running"}


async def test_a_server_removed_meanwhile_or_failing_to_give_its_state_leaves_the_rest(db, caplog):
    engine, session, rows = db
    writes = StateWrites(delay=60)
    writes.save(rows[0], lambda: {"job": "gone"})
    session.delete(rows[0])
    session.commit()

    def broken() -> dict:
        raise RuntimeError("no state")

    writes.save(rows[1], broken)
    writes.save(rows[2], lambda: {"job": 2})
    writes.commit()
    assert saved(engine) == {1: {}, 2: {"job": 2}}
    assert "Could not take a server's state" in caplog.text
