"""Settings that cannot work fail with a message naming the setting, the file or the host."""

from __future__ import annotations

import asyncio

import asyncssh
import pytest
from traitlets import TraitError
from traitlets.config import Config

from hubdash.spawner.jobspawner import JobSpawner
from hubdash.transport import sshconnect
from hubdash.transport.base import TransportError
from hubdash.transport.ssh import SSHTransport

from ..hostile import REFUSED, TALLY


@pytest.mark.parametrize(
    "value", ["../elsewhere", "/etc", "a b", "x;id", ".hubdash/../../etc", "$HOME/x", ""]
)
def test_state_root_outside_home_or_with_shell_characters_is_refused_by_name(value):
    config = Config()
    config.JobSpawner.state_root = value
    with TALLY.trying(value, REFUSED), pytest.raises(TraitError, match="JobSpawner.state_root"):
        JobSpawner(config=config).state_root  # noqa: B018 - reading it validates it


def test_the_default_state_root_and_nested_ones_are_fine():
    spawner = JobSpawner(config=Config())
    spawner.state_root = "scratch/.hubdash/servers/"
    assert spawner.state_dir == "scratch/.hubdash/servers/hub/default"


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "alice"
    asyncssh.generate_private_key("ssh-ed25519").write_private_key(str(path))
    (tmp_path / "known_hosts").write_text("")
    return str(path)


@pytest.fixture
def silent_host():
    """A TCP port that accepts connections and never says a word (a hung login node)."""

    async def start():
        async def silent(reader, writer):
            await asyncio.sleep(30)
            writer.close()

        return await asyncio.start_server(silent, "127.0.0.1", 0)

    return start


async def test_login_host_that_does_not_answer_is_named_with_the_wait(
    silent_host, key_file, tmp_path, monkeypatch
):
    monkeypatch.setattr(sshconnect, "BACKOFF_START", 0.05)
    server = await silent_host()
    port = server.sockets[0].getsockname()[1]
    transport = SSHTransport(
        "127.0.0.1",
        port,
        username="alice",
        client_keys=[key_file],
        known_hosts=str(tmp_path / "known_hosts"),
        connect_timeout=0.5,
        connect_attempts=2,
    )
    try:
        with pytest.raises(TransportError) as caught:
            await transport.run(["true"])
    finally:
        await transport.close()
        server.close()
    message = str(caught.value)
    assert f"127.0.0.1 port {port}" in message
    assert "no SSH answer within 0.5 s" in message


async def test_known_hosts_that_is_a_folder_is_named(key_file, tmp_path):
    transport = SSHTransport(
        "127.0.0.1",
        22,
        username="alice",
        client_keys=[key_file],
        known_hosts=str(tmp_path),
    )
    with pytest.raises(TransportError, match=f"known_hosts file {tmp_path} for 127.0.0.1"):
        await transport.run(["true"])
    await transport.close()
