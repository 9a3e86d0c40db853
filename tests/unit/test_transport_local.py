"""Transports without the test cluster: LocalTransport, and SSHTransport against an SSH server
running inside the test process."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import stat
import time

import asyncssh
import pytest

from hubdash.transport import sshconnect
from hubdash.transport.base import HostKeyError, TransportError
from hubdash.transport.local import LocalTransport
from hubdash.transport.ssh import SSHTransport

from .inprocess_sshd import InProcessSSHD

HOSTILE = "two words $(touch PWNED) `touch PWNED` 'single' \"double\" ; rm -rf * \n-n --x=y \\"


# -- helpers ----------------------------------------------------------------------------------


async def start_echo_server() -> tuple[asyncio.Server, int]:
    """Echoes each chunk at once; after the client's EOF, says "bye" and closes."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.write(b"bye")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def echo_through(port: int, payload: bytes = b"hello") -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        await writer.drain()
        echoed = await asyncio.wait_for(reader.readexactly(len(payload)), 5)
        writer.write_eof()  # half-close: the answer must still come back
        rest = await asyncio.wait_for(reader.read(), 5)
        return echoed + rest
    finally:
        writer.close()


def nodelay_of_accepted_sockets(forward) -> list[int]:
    return [
        c._near.get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        for c in forward.listener._connections
    ]


@pytest.fixture
async def echo_port():
    server, port = await start_echo_server()
    yield port
    server.close()


def ssh_transport(sshd: InProcessSSHD, **kwargs) -> SSHTransport:
    options = dict(
        username="alice",
        client_keys=[str(sshd.key_path)],
        known_hosts=str(sshd.known_hosts),
        connect_timeout=5,
    )
    options.update(kwargs)
    return SSHTransport("127.0.0.1", sshd.port, **options)


@pytest.fixture
async def ssh(sshd):
    transport = ssh_transport(sshd)
    yield transport
    await transport.close()


# Reconnects in tenths of a second (tests/unit/conftest.py).
pytestmark = pytest.mark.usefixtures("fast_backoff")


# -- LocalTransport: commands -----------------------------------------------------------------


async def test_local_run_passes_a_hostile_argument_as_one_literal_item(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = await LocalTransport().run(["printf", "%s\n", HOSTILE])
    assert result.exit_status == 0
    assert result.stdout == HOSTILE + "\n"
    assert not (tmp_path / "PWNED").exists()


async def test_local_run_reports_exit_status_and_stderr_without_raising():
    result = await LocalTransport().run(["sh", "-c", "echo out; echo err >&2; exit 3"])
    assert (result.exit_status, result.stdout, result.stderr) == (3, "out\n", "err\n")


async def test_local_run_feeds_input_to_stdin():
    result = await LocalTransport().run(["cat"], input="line 1\nline 2\n")
    assert result.stdout == "line 1\nline 2\n"


async def test_local_run_puts_the_prefix_first():
    transport = LocalTransport(prefix=["env", "HUBDASH_AS=alice"])
    result = await transport.run(["sh", "-c", 'echo "$HUBDASH_AS"'])
    assert result.stdout == "alice\n"


async def test_local_missing_program_is_exit_127_like_a_shell():
    result = await LocalTransport().run(["no-such-program-hubdash"])
    assert result.exit_status == 127


async def test_local_missing_prefix_program_is_a_transport_error():
    with pytest.raises(TransportError, match="no-such-sudo"):
        await LocalTransport(prefix=["no-such-sudo", "-n"]).run(["true"])


async def test_local_timeout_raises_and_stops_the_command():
    started = time.monotonic()
    with pytest.raises(TransportError, match=r"timed out after 0\.3 s: sleep 30"):
        await LocalTransport().run(["sleep", "30"], timeout=0.3)
    assert time.monotonic() - started < 3


async def test_argv_must_be_a_list_not_a_shell_string():
    with pytest.raises(TypeError):
        await LocalTransport().run("echo hi")  # type: ignore[arg-type]


# -- LocalTransport: files --------------------------------------------------------------------


@pytest.fixture(params=["direct", "prefix"])
def local(request) -> LocalTransport:
    """Both file paths: direct I/O, and shell scripts under a (harmless) command prefix."""
    return LocalTransport() if request.param == "direct" else LocalTransport(prefix=["env"])


async def test_local_write_file_has_its_mode_and_private_parents(local, tmp_path):
    path = tmp_path / "a" / "b" / "conn.json"
    await local.write_file(str(path), b"secret", mode=0o600)
    assert path.read_bytes() == b"secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "a").stat().st_mode) == 0o700
    assert stat.S_IMODE((tmp_path / "a" / "b").stat().st_mode) == 0o700


async def test_local_write_file_replaces_atomically_and_leaves_no_temporary(local, tmp_path):
    path = tmp_path / "job.sh"
    path.write_text("old")
    await local.write_file(str(path), b"#!/bin/sh\n", mode=0o700)
    assert path.read_bytes() == b"#!/bin/sh\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert os.listdir(tmp_path) == ["job.sh"]


async def test_local_file_names_with_spaces_and_dashes_are_taken_literally(local, tmp_path):
    path = tmp_path / "-n $(x) 'q'.txt"
    await local.write_file(str(path), b"x")
    assert await local.read_file(str(path), max_bytes=100) == b"x"
    await local.remove(str(path))
    assert not path.exists()


async def test_local_read_missing_file_is_file_not_found(local, tmp_path):
    with pytest.raises(FileNotFoundError):
        await local.read_file(str(tmp_path / "missing"), max_bytes=100)


async def test_local_remove_missing_file_is_fine(local, tmp_path):
    await local.remove(str(tmp_path / "missing"))


async def test_local_relative_paths_start_at_home(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    transport = LocalTransport()
    await transport.write_file(".hubdash/x/state", b"1")
    assert (tmp_path / ".hubdash" / "x" / "state").read_bytes() == b"1"
    assert await transport.read_file(".hubdash/x/state", max_bytes=100) == b"1"


# -- LocalTransport: forwards -----------------------------------------------------------------


async def test_local_forward_relays_both_ways_with_half_close(echo_port):
    transport = LocalTransport()
    forward = await transport.open_local_forward("127.0.0.1", echo_port)
    try:
        assert forward.is_open and forward.listen_host == "127.0.0.1"
        assert await echo_through(forward.listen_port, b"x" * 300_000) == b"x" * 300_000 + b"bye"
    finally:
        await transport.close()
    assert not forward.is_open


async def test_local_forward_sets_tcp_nodelay_on_accepted_sockets(echo_port):
    transport = LocalTransport()
    forward = await transport.open_local_forward("127.0.0.1", echo_port)
    reader, writer = await asyncio.open_connection("127.0.0.1", forward.listen_port)
    try:
        writer.write(b"ping")
        assert await reader.readexactly(4) == b"ping"
        assert nodelay_of_accepted_sockets(forward) == [1]
    finally:
        writer.close()
        await transport.close()


async def test_closing_a_forward_ends_its_connections_and_leaks_no_task(echo_port):
    before = len(asyncio.all_tasks())
    transport = LocalTransport()
    forward = await transport.open_local_forward("127.0.0.1", echo_port)
    reader, writer = await asyncio.open_connection("127.0.0.1", forward.listen_port)
    writer.write(b"ping")
    assert await reader.readexactly(4) == b"ping"
    await forward.close()
    assert await asyncio.wait_for(reader.read(), 5) == b""  # closed under the client
    writer.close()
    await asyncio.sleep(0.05)
    assert len(asyncio.all_tasks()) == before
    with pytest.raises(OSError):
        await asyncio.open_connection("127.0.0.1", forward.listen_port)


async def test_forward_to_a_closed_port_drops_the_client_and_keeps_listening():
    transport = LocalTransport()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    forward = await transport.open_local_forward("127.0.0.1", dead_port)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", forward.listen_port)
        assert await asyncio.wait_for(reader.read(), 5) == b""
        writer.close()
        assert forward.is_open
    finally:
        await transport.close()


async def test_forward_listens_on_the_port_asked_for(echo_port):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        wanted = s.getsockname()[1]
    transport = LocalTransport()
    forward = await transport.open_local_forward("127.0.0.1", echo_port, listen_port=wanted)
    try:
        assert forward.listen_port == wanted
        assert await echo_through(wanted) == b"hellobye"
    finally:
        await transport.close()


async def test_local_remote_forward_points_at_the_destination_itself():
    forward = await LocalTransport().open_remote_forward("0.0.0.0", 0, "127.0.0.1", 8081)
    assert (forward.listen_host, forward.listen_port, forward.is_open) == ("127.0.0.1", 8081, True)


# -- SSHTransport against an in-process server ------------------------------------------------


async def test_ssh_run_passes_a_hostile_argument_as_one_literal_item(ssh, sshd):
    result = await ssh.run(["printf", "%s\n", HOSTILE])
    assert result.exit_status == 0
    assert result.stdout == HOSTILE + "\n"
    assert not (sshd.home / "PWNED").exists()


async def test_ssh_run_returns_status_output_and_takes_input(ssh):
    result = await ssh.run(["sh", "-c", "cat; echo err >&2; exit 4"], input="in put\n")
    assert (result.exit_status, result.stdout, result.stderr) == (4, "in put\n", "err\n")


async def test_ssh_commands_share_one_connection(ssh, sshd):
    for _ in range(3):
        await ssh.run(["true"])
    await ssh.write_file("f", b"1")
    assert len(sshd.connections) == 1


async def test_first_session_of_each_connection_has_a_pty(ssh, sshd):
    # So that OpenSSH's sshd turns Nagle off for the whole connection (see SSHTransport).
    await ssh.run(["echo", "1"])
    sshd.drop_connections()
    await ssh.run(["echo", "2"])
    assert sshd.commands == [("true", "dumb"), ("echo 1", None), ("true", "dumb"), ("echo 2", None)]


async def test_pty_first_can_be_turned_off(sshd):
    transport = ssh_transport(sshd, pty_first=False)
    await transport.run(["echo", "1"])
    assert sshd.commands == [("echo 1", None)]
    await transport.close()


async def test_ssh_timeout_raises_and_ends_the_remote_command(ssh, sshd):
    with pytest.raises(TransportError, match=r"timed out after 0\.3 s: sleep 30"):
        await ssh.run(["sleep", "30"], timeout=0.3)
    for _ in range(50):
        if sshd.killed:
            break
        await asyncio.sleep(0.05)
    assert sshd.killed == 1
    assert (await ssh.run(["echo", "still usable"])).stdout == "still usable\n"


async def test_changed_host_key_names_host_port_fingerprint_and_file(sshd):
    impostor = asyncssh.generate_private_key("ssh-ed25519")
    sshd.trust(impostor)  # known_hosts now records another key for this host
    transport = ssh_transport(sshd)
    with pytest.raises(HostKeyError) as caught:
        await transport.run(["true"])
    offered = sshd.host_key.get_fingerprint("sha256")
    message = str(caught.value)
    assert offered.startswith("SHA256:") and offered in message
    assert f"127.0.0.1 port {sshd.port}" in message
    assert "has changed" in message and str(sshd.known_hosts) in message
    assert caught.value.fingerprint == offered
    assert len(sshd.connections) == 1  # refused at once, not retried
    await transport.close()


async def test_unknown_host_key_is_refused_with_its_fingerprint(sshd):
    sshd.known_hosts.write_text("")
    transport = ssh_transport(sshd)
    with pytest.raises(HostKeyError, match="is not in") as caught:
        await transport.run(["true"])
    assert sshd.host_key.get_fingerprint("sha256") in str(caught.value)
    await transport.close()


async def test_missing_key_file_is_named_before_connecting(sshd, tmp_path):
    missing = tmp_path / "no-such-key"
    transport = ssh_transport(sshd, client_keys=[str(missing)])
    with pytest.raises(TransportError, match=str(missing)):
        await transport.run(["true"])
    assert sshd.connections == []


async def test_missing_known_hosts_file_is_named(sshd, tmp_path):
    missing = tmp_path / "no-known-hosts"
    transport = ssh_transport(sshd, known_hosts=str(missing))
    with pytest.raises(TransportError, match=f"known_hosts file {missing}"):
        await transport.run(["true"])


async def test_known_hosts_is_required():
    with pytest.raises(ValueError, match="known_hosts"):
        SSHTransport("h", username="u", client_keys=["k"], known_hosts="")


async def test_refused_key_is_a_clear_error_and_not_retried(sshd, tmp_path):
    stranger = tmp_path / "stranger"
    stranger.write_bytes(asyncssh.generate_private_key("ssh-ed25519").export_private_key())
    transport = ssh_transport(sshd, client_keys=[str(stranger)])
    with pytest.raises(TransportError, match="refused the SSH key") as caught:
        await transport.run(["true"])
    assert str(stranger) in str(caught.value)
    assert len(sshd.connections) == 1


async def test_unreachable_server_fails_after_the_configured_attempts(sshd):
    await sshd.stop()
    transport = ssh_transport(sshd, connect_attempts=3)
    with pytest.raises(TransportError, match=r"after 3 attempts"):
        await transport.run(["true"])


async def test_max_sessions_is_never_exceeded(sshd):
    transport = ssh_transport(sshd, max_sessions=2)
    try:
        await transport.write_file("data", b"x" * 1000)
        started = time.monotonic()
        await asyncio.gather(
            *(transport.run(["sleep", "0.2"]) for _ in range(5)),
            *(transport.read_file("data", max_bytes=4096) for _ in range(5)),
        )
        assert sshd.max_sessions_seen == 2
        assert time.monotonic() - started >= 0.5  # 5 sleeps, two at a time
    finally:
        await transport.close()


def refuse_sessions(monkeypatch, count: int) -> None:
    """The next `count` sessions are refused, as sshd does beyond MaxSessions."""
    real = asyncssh.SSHClientConnection.create_process

    async def create_process(self, *args, **kwargs):
        nonlocal count
        if count:
            count -= 1
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, "open failed")
        return await real(self, *args, **kwargs)

    monkeypatch.setattr(asyncssh.SSHClientConnection, "create_process", create_process)


async def test_refused_session_is_asked_for_again(ssh, sshd, monkeypatch):
    await ssh.run(["true"])
    refuse_sessions(monkeypatch, 3)
    assert (await ssh.run(["echo", "once"])).stdout == "once\n"
    assert [c for c, _ in sshd.commands].count("echo once") == 1


async def test_session_refused_every_time_names_max_sessions(ssh, monkeypatch):
    await ssh.run(["true"])
    refuse_sessions(monkeypatch, 100)
    with pytest.raises(TransportError, match=r"refused a session .* MaxSessions"):
        await ssh.run(["true"])


async def test_ssh_write_file_mode_parents_and_atomic_replace(ssh, sshd):
    await ssh.write_file(".hubdash/srv/env.json", b"{}")  # relative: from the home directory
    path = sshd.home / ".hubdash" / "srv" / "env.json"
    assert path.read_bytes() == b"{}"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.parent.parent.stat().st_mode) == 0o700
    await ssh.write_file(str(path), b"#!/bin/sh\n", mode=0o700)
    assert path.read_bytes() == b"#!/bin/sh\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert os.listdir(path.parent) == ["env.json"]


async def test_ssh_read_and_remove(ssh, sshd):
    (sshd.home / "conn.json").write_bytes(b'{"port": 1}')
    assert await ssh.read_file("conn.json", max_bytes=100) == b'{"port": 1}'
    await ssh.remove("conn.json")
    await ssh.remove("conn.json")  # missing is fine
    with pytest.raises(FileNotFoundError):
        await ssh.read_file("conn.json", max_bytes=100)


async def test_ssh_local_forward_relays_both_ways_with_nodelay(ssh, echo_port):
    forward = await ssh.open_local_forward("127.0.0.1", echo_port)
    assert await echo_through(forward.listen_port, b"y" * 500_000) == b"y" * 500_000 + b"bye"
    reader, writer = await asyncio.open_connection("127.0.0.1", forward.listen_port)
    writer.write(b"ping")
    assert await reader.readexactly(4) == b"ping"
    assert nodelay_of_accepted_sockets(forward) == [1]
    writer.close()


async def test_ssh_sends_no_empty_ignore_packet_before_each_packet(ssh, echo_port):
    forward = await ssh.open_local_forward("127.0.0.1", echo_port)
    conn = await ssh._link.connection()
    assert conn.get_extra_info("send_cipher") == "aes128-gcm@openssh.com"
    sent = []
    send = conn._send
    conn._send = lambda data: (sent.append(len(data)), send(data))
    reader, writer = await asyncio.open_connection("127.0.0.1", forward.listen_port)
    try:
        for _ in range(20):
            writer.write(b"x")
            assert await reader.readexactly(1) == b"x"
    finally:
        writer.close()
    # 20 data packets and a channel open; asyncssh on its own sends an empty
    # SSH_MSG_IGNORE before each of them as well (42 or more).
    assert 21 <= len(sent) < 30


class _PacketRecorder:
    def __init__(self, cipher: str) -> None:
        self.cipher, self.sent = cipher, []

    def get_extra_info(self, name: str) -> str:
        return self.cipher if name == "send_cipher" else ""

    def send_packet(self, pkttype, *args, handler=None) -> None:
        self.sent.append((pkttype, args))


@pytest.mark.parametrize(
    ("cipher", "ignores_sent"),
    [("aes128-gcm@openssh.com", 0), ("chacha20-poly1305@openssh.com", 0), ("aes128-cbc", 1)],
)
def test_only_empty_ignore_packets_are_dropped_and_only_for_ciphers_safe_without(
    cipher, ignores_sent
):
    conn = _PacketRecorder(cipher)
    sshconnect._send_no_empty_ignores(conn)
    conn.send_packet(2, b"\x00\x00\x00\x00")  # empty SSH_MSG_IGNORE
    conn.send_packet(2, b"\x00\x00\x00\x01x")  # an ignore packet with content goes out
    conn.send_packet(94, b"data")
    assert conn.sent.count((2, (b"\x00\x00\x00\x00",))) == ignores_sent
    assert (2, (b"\x00\x00\x00\x01x",)) in conn.sent and (94, (b"data",)) in conn.sent


async def test_ssh_remote_forward_reaches_the_destination(ssh, echo_port):
    forward = await ssh.open_remote_forward("127.0.0.1", 0, "127.0.0.1", echo_port)
    assert forward.listen_port and forward.is_open
    assert await echo_through(forward.listen_port) == b"hellobye"


async def test_remote_forward_on_a_taken_port_is_a_clear_error(ssh, echo_port):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(TransportError, match=f"refused to listen on 127.0.0.1 port {port}"):
            await ssh.open_remote_forward("127.0.0.1", port, "127.0.0.1", echo_port)


async def test_remote_forward_waits_for_its_port_to_come_free(sshd, echo_port):
    transport = ssh_transport(sshd)
    try:
        forward = await transport.open_remote_forward("127.0.0.1", 0, "127.0.0.1", echo_port)
        server_port = sshd.port
        await sshd.stop()
        with socket.socket() as squatter:  # someone takes the port while we are away
            for _ in range(50):
                with contextlib.suppress(OSError):
                    squatter.bind(("127.0.0.1", forward.listen_port))
                    break
                await asyncio.sleep(0.02)  # the old listener closes a moment after the drop
            squatter.listen()
            await sshd.start(server_port)
            await asyncio.sleep(0.5)
            assert not forward.is_open and not forward.reopened.is_set()
        await asyncio.wait_for(forward.reopened.wait(), 5)
        assert await echo_through(forward.listen_port) == b"hellobye"
    finally:
        await transport.close()


async def test_a_forward_that_may_move_takes_a_new_port_when_its_old_one_is_taken(sshd, echo_port):
    from hubdash.spawner.tunnel import Tunnel

    transport = ssh_transport(sshd, connect_attempts=2)
    moved: list[int] = []
    tunnel = Tunnel(
        transport, hub_host="127.0.0.1", hub_port=echo_port, on_hub_port_moved=moved.append
    )
    try:
        old = await tunnel.open_hub_forward()
        server_port = sshd.port
        await sshd.stop()
        with socket.socket() as squatter:  # someone keeps the old port
            for _ in range(50):
                with contextlib.suppress(OSError):
                    squatter.bind(("127.0.0.1", old))
                    break
                await asyncio.sleep(0.02)
            squatter.listen()
            await sshd.start(server_port)
            await asyncio.wait_for(tunnel.hub_forward.reopened.wait(), 10)
            assert moved == [tunnel.hub_forward.listen_port] and moved[0] != old
            assert tunnel.state["hub_forward"] == {"port": moved[0], "open": True}
            assert await echo_through(moved[0]) == b"hellobye"
    finally:
        await tunnel.close()
        await transport.close()


async def test_commands_reconnect_after_the_connection_drops(ssh, sshd):
    await ssh.run(["true"])
    sshd.drop_connections()
    result = await ssh.run(["echo", "again"])
    assert result.stdout == "again\n"


async def test_file_operations_retry_on_a_new_connection_after_a_drop(ssh, sshd):
    await ssh.write_file("state", b"1")
    sshd.drop_connections()
    assert await ssh.read_file("state", max_bytes=100) == b"1"


async def test_reconnect_reopens_the_local_forward_on_the_same_port(ssh, sshd, echo_port):
    forward = await ssh.open_local_forward("127.0.0.1", echo_port)
    port = forward.listen_port
    seen = []
    forward.on_reopen = seen.append
    assert await echo_through(port) == b"hellobye"
    sshd.drop_connections()
    await asyncio.wait_for(forward.reopened.wait(), 5)  # the watchdog, with no call from us
    assert forward.is_open and forward.listen_port == port and seen == [forward]
    assert await echo_through(port) == b"hellobye"


async def test_reconnect_reopens_the_remote_forward_on_the_same_port(ssh, sshd, echo_port):
    forward = await ssh.open_remote_forward("127.0.0.1", 0, "127.0.0.1", echo_port)
    port = forward.listen_port
    sshd.drop_connections()
    await asyncio.wait_for(forward.reopened.wait(), 5)
    assert forward.is_open and forward.listen_port == port
    assert await echo_through(port) == b"hellobye"


async def test_forwards_come_back_when_the_server_returns(sshd, echo_port):
    transport = ssh_transport(sshd, connect_attempts=2)
    try:
        forward = await transport.open_local_forward("127.0.0.1", echo_port)
        port = sshd.port
        await sshd.stop()
        await asyncio.sleep(0.3)
        assert not forward.is_open  # down while the server is away ...
        await sshd.start(port)
        await asyncio.wait_for(forward.reopened.wait(), 5)  # ... and back without a call
        assert forward.is_open
        assert await echo_through(forward.listen_port) == b"hellobye"
    finally:
        await transport.close()


async def test_close_ends_the_connection_and_forwards(sshd, echo_port):
    transport = ssh_transport(sshd)
    forward = await transport.open_local_forward("127.0.0.1", echo_port)
    await transport.close()
    assert not forward.is_open and not transport.connected
    with pytest.raises(TransportError, match="closed"):
        await transport.run(["true"])
