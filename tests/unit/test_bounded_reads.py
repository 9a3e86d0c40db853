"""Every read of a file or of output the user controls is bounded: the transports' file reads
and tails, command output, the relay's early buffer, and the hub's readers of job files."""

from __future__ import annotations

import asyncio
import logging
import os
import time

import pytest

from hubdash.job.contract import ENGINES_FILE_LIMIT
from hubdash.schedulers.base import SchedulerAdapter
from hubdash.spawner.enginestatus import read_engine_status
from hubdash.spawner.logtail import LINE_CHARS, TAIL_LINES, read_log_tail, tail_text
from hubdash.transport import local as local_module
from hubdash.transport.base import FileTooLarge, TransportError
from hubdash.transport.local import LocalTransport
from hubdash.transport.relay import EARLY_DATA_LIMIT, RelayedConnection, RelayListener
from hubdash.transport.ssh import SSHTransport
from hubdash.transport.sshfiles import SSHFiles

from .inprocess_sshd import InProcessSSHD

BIG = 20 * 1024**3  # sparse: costs no disk


@pytest.fixture(params=["direct", "prefix"])
def local(request) -> LocalTransport:
    return LocalTransport() if request.param == "direct" else LocalTransport(prefix=["env"])


def ssh_for(sshd: InProcessSSHD, **kwargs) -> SSHTransport:
    return SSHTransport(
        "127.0.0.1",
        sshd.port,
        username="alice",
        client_keys=[str(sshd.key_path)],
        known_hosts=str(sshd.known_hosts),
        connect_timeout=5,
        **kwargs,
    )


@pytest.fixture
async def ssh(sshd):
    transport = ssh_for(sshd)
    yield transport
    await transport.close()


def sparse(path, size: int = BIG, tail: bytes = b"") -> str:
    with open(path, "wb") as f:
        f.truncate(size - len(tail))
        f.seek(size - len(tail))
        f.write(tail)
    return str(path)


# -- files, LocalTransport and SSHTransport ---------------------------------------------------


async def test_local_file_over_its_limit_is_refused_by_size_naming_it(local, tmp_path):
    path = sparse(tmp_path / "connection.json")
    started = time.monotonic()
    with pytest.raises(FileTooLarge) as caught:
        await local.read_file(path, max_bytes=16384, what="a connection file")
    assert time.monotonic() - started < 5
    assert str(caught.value) == (
        f"{path} on this machine is {BIG} bytes, over the 16384-byte limit for a connection file."
    )
    assert caught.value.size == BIG and isinstance(caught.value, TransportError)


async def test_local_file_at_its_limit_is_read_whole(local, tmp_path):
    path = tmp_path / "engines.json"
    path.write_bytes(b"x" * 100)
    assert await local.read_file(str(path), max_bytes=100) == b"x" * 100


async def test_local_read_stops_one_byte_past_the_limit_when_the_file_grew(tmp_path, monkeypatch):
    path = tmp_path / "connection.json"
    path.write_bytes(b"x" * 1_000_000)
    real = local_module._open_regular

    def stale_size(p):  # the size as it was a moment before the file grew
        fd, _ = real(p)
        return fd, 10

    monkeypatch.setattr(local_module, "_open_regular", stale_size)
    with pytest.raises(FileTooLarge, match="is at least 101 bytes, over the 100-byte limit"):
        await LocalTransport().read_file(str(path), max_bytes=100)


async def test_local_tail_reads_only_the_end(local, tmp_path):
    path = sparse(tmp_path / "job.log", tail=b"last words\n")
    assert await local.read_tail(path, max_bytes=11) == b"last words\n"
    small = tmp_path / "small.log"
    small.write_bytes(b"short\n")
    assert await local.read_tail(str(small), max_bytes=1000) == b"short\n"


async def test_local_fifo_or_device_is_refused_not_waited_on(local, tmp_path):
    fifo = tmp_path / "connection.json"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer
    device = tmp_path / "engines.json"
    device.symlink_to("/dev/zero")  # no size, no end
    for path in (fifo, device):
        with pytest.raises(TransportError, match="not a regular file"):
            await asyncio.wait_for(local.read_file(str(path), max_bytes=100), 5)
        with pytest.raises(TransportError, match="not a regular file"):
            await asyncio.wait_for(local.read_tail(str(path), max_bytes=100), 5)


async def test_ssh_file_over_its_limit_is_refused_by_size(ssh, sshd):
    sparse(sshd.home / "connection.json")
    with pytest.raises(FileTooLarge) as caught:
        await ssh.read_file("connection.json", max_bytes=16384, what="a connection file")
    assert str(caught.value) == (
        f"connection.json on 127.0.0.1 is {BIG} bytes, over the 16384-byte limit for a "
        "connection file."
    )
    (sshd.home / "small.json").write_bytes(b"{}")
    assert await ssh.read_file("small.json", max_bytes=2) == b"{}"


async def test_ssh_read_stops_one_byte_past_the_limit_when_the_file_grew(ssh, sshd, monkeypatch):
    (sshd.home / "connection.json").write_bytes(b"x" * 1_000_000)

    async def stale_size(self, f, path):
        return 10

    monkeypatch.setattr(SSHFiles, "_regular_size", stale_size)
    with pytest.raises(FileTooLarge, match="is at least 101 bytes, over the 100-byte limit"):
        await ssh.read_file("connection.json", max_bytes=100)


async def test_ssh_tail_reads_only_the_end(ssh, sshd):
    sparse(sshd.home / "job.log", tail=b"the end\n")
    assert await ssh.read_tail("job.log", max_bytes=8) == b"the end\n"
    with pytest.raises(FileNotFoundError):
        await ssh.read_tail("missing.log", max_bytes=8)


async def test_ssh_fifo_or_device_is_refused_not_waited_on(ssh, sshd):
    os.mkfifo(sshd.home / "connection.json")
    (sshd.home / "engines.json").symlink_to("/dev/zero")
    for name in ("connection.json", "engines.json"):
        with pytest.raises(TransportError, match="not a regular file"):
            await asyncio.wait_for(ssh.read_file(name, max_bytes=100), 5)
        with pytest.raises(TransportError, match="not a regular file"):
            await asyncio.wait_for(ssh.read_tail(name, max_bytes=100), 5)


# -- command output -----------------------------------------------------------------------------


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
async def test_local_command_printing_past_the_limit_is_stopped(stream):
    transport = LocalTransport(max_output=100_000)
    redirect = "" if stream == "stdout" else " >&2"
    started = time.monotonic()
    with pytest.raises(TransportError) as caught:
        await transport.run(["sh", "-c", f"yes{redirect}"], timeout=30)  # never ends by itself
    assert time.monotonic() - started < 10
    assert str(caught.value).startswith(
        f"A command here printed more than 100000 bytes on {stream} and was stopped: sh -c"
    )


async def test_local_command_within_the_limit_keeps_all_its_output_and_input():
    transport = LocalTransport(max_output=100_000)
    result = await transport.run(["sh", "-c", "head -c 100000 /dev/zero; cat >&2"], input="in")
    assert (len(result.stdout), result.stderr, result.exit_status) == (100_000, "in", 0)


async def test_local_prefixed_read_is_bounded_by_the_files_limit_not_the_commands(tmp_path):
    path = tmp_path / "engines.json"
    path.write_bytes(b"x" * 5000)
    transport = LocalTransport(prefix=["env"], max_output=100)  # smaller than the file
    assert await transport.read_file(str(path), max_bytes=5000) == b"x" * 5000


@pytest.mark.parametrize("stream", ["stdout", "stderr"])
async def test_ssh_command_printing_past_the_limit_is_stopped(sshd, stream):
    transport = ssh_for(sshd, max_output=100_000)
    redirect = "" if stream == "stdout" else " >&2"
    try:
        with pytest.raises(TransportError) as caught:
            await transport.run(["sh", "-c", f"head -c 3000000 /dev/zero{redirect}"])
        assert str(caught.value).startswith(
            f"A command on 127.0.0.1 printed more than 100000 bytes on {stream} and was stopped"
        )
        # Its session was given back: the transport goes on.
        assert (await transport.run(["echo", "next"])).stdout == "next\n"
    finally:
        await transport.close()


async def test_ssh_command_within_the_limit_keeps_all_its_output(sshd):
    transport = ssh_for(sshd, max_output=300_000)
    try:
        result = await transport.run(["sh", "-c", "head -c 300000 /dev/zero; echo e >&2; exit 4"])
        assert (len(result.stdout), result.stderr, result.exit_status) == (300_000, "e\n", 4)
    finally:
        await transport.close()


# -- the hub's readers --------------------------------------------------------------------------


def test_tail_keeps_the_last_lines_each_cut_with_a_marker():
    data = b"".join(b"line %d\n" % i for i in range(100)) + b"y" * 5000 + b"\n"
    lines = tail_text(data).splitlines()
    assert len(lines) == TAIL_LINES
    assert lines[-2] == "line 99"
    assert lines[-1] == "y" * LINE_CHARS + "… [4000 more characters cut]"


async def test_log_tail_of_a_huge_log_reads_its_end_and_drops_the_cut_first_line(tmp_path):
    path = sparse(tmp_path / "job.log", tail=b"partial line\n" + b"error: the end\n")
    text = await read_log_tail(LocalTransport(), path, max_bytes=20)
    assert text == "error: the end"  # "line\n" was the end of a line cut in two
    assert await read_log_tail(LocalTransport(), str(tmp_path / "none.log")) == ""


async def test_engine_status_file_over_its_limit_is_a_failed_status_saying_so(tmp_path):
    sparse(tmp_path / "engines.json")
    status = await read_engine_status(
        LocalTransport(), str(tmp_path), "7", requested=4, same_job=SchedulerAdapter().same_job
    )
    assert status is not None
    assert (status.state, status.up, status.requested, status.settled) == ("failed", 0, 4, True)
    assert f"is {BIG} bytes, over the {ENGINES_FILE_LIMIT}-byte limit" in status.message
    assert "engine status file" in status.text()


# -- the relay's early buffer -------------------------------------------------------------------


class _FakeFar:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def write(self, data: bytes) -> None:
        self.calls.append("write")

    def write_eof(self) -> None:
        self.calls.append("write_eof")

    def close(self) -> None:
        self.calls.append("close")

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")


class _Near(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.written: list[bytes] = []

    def get_extra_info(self, name, default=None):
        return default

    def write(self, data) -> None:
        self.written.append(bytes(data))

    def close(self) -> None:
        pass


async def test_a_spare_that_talks_before_it_is_open_is_paused_then_resumed_for_its_client():
    far = _FakeFar()

    async def open_far(near: RelayedConnection) -> _FakeFar:
        near.far_data(b"z" * (EARLY_DATA_LIMIT + 1))  # before it is ours to pause
        return far

    listener = RelayListener(open_far, logging.getLogger("test"))
    spare = RelayedConnection(listener, spare=True)
    spare.open_far_side()
    await spare._opening
    assert far.calls == ["pause"]
    spare.far_data(b"more")  # already in flight: kept, no second pause
    assert far.calls == ["pause"]
    spare.spare = False
    near = _Near()
    spare.connection_made(near)
    assert far.calls == ["pause", "resume"]
    assert b"".join(near.written) == b"z" * (EARLY_DATA_LIMIT + 1) + b"more"


async def test_a_spare_whose_server_floods_holds_a_bounded_buffer_and_its_client_gets_all():
    flood = 8 * 1024 * 1024
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        if connections == 1:  # the first client: an answer, so that a spare is opened
            await reader.read(100)
            writer.write(b"hello")
        else:  # the spare: talks at once, and a lot
            for _ in range(flood // 65536):
                writer.write(b"f" * 65536)
                await writer.drain()
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]

    async def open_far(near):
        from hubdash.transport.relay import open_socket_far_side

        return await open_socket_far_side(near, "127.0.0.1", port)

    listener = await RelayListener.start("127.0.0.1", 0, open_far, spares=1)
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        writer.write(b"hi")
        assert await asyncio.wait_for(reader.read(), 5) == b"hello"
        writer.close()
        await asyncio.sleep(0.5)  # the spare's server writes all it can meanwhile
        (spare,) = listener._spares
        assert spare._far_paused
        assert spare._far_early_size <= EARLY_DATA_LIMIT + 256 * 1024  # + one read at most
        reader, writer = await asyncio.open_connection("127.0.0.1", listener.port)
        received = 0
        while chunk := await asyncio.wait_for(reader.read(1 << 20), 5):
            received += len(chunk)
        assert received == flood
        writer.close()
    finally:
        await listener.close()
        server.close()
