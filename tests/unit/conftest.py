"""Fixtures shared by the unit tests that talk to an in-process SSH server."""

from __future__ import annotations

import pytest

from hubdash.spawner import jobscript
from hubdash.transport import sshconnect

from .inprocess_sshd import InProcessSSHD


@pytest.fixture
async def sshd(tmp_path, monkeypatch):
    """An SSH server in this process, with alice's key and its host key in known_hosts."""
    server = await InProcessSSHD(tmp_path).start()
    monkeypatch.chdir(server.home)  # the in-process SFTP server starts in the cwd, like a home
    yield server
    await server.stop()


@pytest.fixture
def fast_backoff(monkeypatch):
    """Reconnects in tenths of a second, not seconds (use with pytest.mark.usefixtures)."""
    monkeypatch.setattr(sshconnect, "BACKOFF_START", 0.05)
    monkeypatch.setattr(sshconnect, "BACKOFF_MAX", 0.2)


@pytest.fixture(autouse=True)
def _fresh_job_template():
    """Each test compiles the job template anew: the hub keeps it once compiled, which would
    leave a mutated template environment (scripts/mutation) out of every test's reach."""
    jobscript._job_template.cache_clear()
