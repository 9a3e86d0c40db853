"""The hub's SQLite database in WAL mode (hubdatabase.py), as the hub reading its config sets it."""

import sqlite3

import pytest
from jupyterhub import orm
from sqlalchemy import event, text
from sqlalchemy.engine import Engine
from traitlets.config import Config

from hubdash.spawner.hubdatabase import use_write_ahead_log, write_ahead_log
from hubdash.spawner.jobspawner import JobSpawner
from tests.unit.test_hubsetup import hub_reading


@pytest.fixture
def no_listener():
    """The listener is process-wide: each test starts without it and leaves none."""
    if event.contains(Engine, "connect", write_ahead_log):
        event.remove(Engine, "connect", write_ahead_log)
    yield
    if event.contains(Engine, "connect", write_ahead_log):
        event.remove(Engine, "connect", write_ahead_log)


def journal_of_hub_database(tmp_path) -> tuple[str, int]:
    """(journal_mode, synchronous) of a database JupyterHub opens the way it opens its own."""
    session = orm.new_session_factory(f"sqlite:///{tmp_path}/jupyterhub.sqlite")()
    try:
        mode = session.execute(text("PRAGMA journal_mode")).scalar()
        sync = session.execute(text("PRAGMA synchronous")).scalar()
    finally:
        session.close()
    return mode, sync


def test_the_hub_opens_its_sqlite_database_in_wal_mode(tmp_path, no_listener):
    c = Config()
    c.JupyterHub.spawner_class = JobSpawner
    hub_reading(c)
    assert journal_of_hub_database(tmp_path) == ("wal", 1)  # 1: NORMAL
    # The mode is the file's: a plain sqlite3 connection sees it too.
    with sqlite3.connect(tmp_path / "jupyterhub.sqlite") as plain:
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_an_admin_can_keep_the_rollback_journal(tmp_path, no_listener):
    c = Config()
    c.JupyterHub.spawner_class = JobSpawner
    c.JobSpawner.hub_database_wal = False
    hub_reading(c)
    assert journal_of_hub_database(tmp_path) == ("delete", 2)  # SQLite's defaults: FULL


def test_the_listener_is_added_once_and_leaves_other_databases_alone(no_listener):
    use_write_ahead_log()
    use_write_ahead_log()
    assert event.contains(Engine, "connect", write_ahead_log)

    class NotSQLite:
        def cursor(self):
            raise AssertionError("only SQLite connections are touched")

    write_ahead_log(NotSQLite())


def test_an_in_memory_database_keeps_working(no_listener):
    use_write_ahead_log()
    session = orm.new_session_factory("sqlite:///:memory:")()
    try:
        assert session.execute(text("PRAGMA journal_mode")).scalar() == "memory"
        assert session.query(orm.User).count() == 0
    finally:
        session.close()
