"""RelayListener's spare far sides: opened ahead of clients once the far side answers, handed
to the next client, dropped when the server gives up on them, never opened while it refuses."""

from __future__ import annotations

import asyncio
import logging
import socket

import pytest

from hubdash.transport.relay import RelayedConnection, RelayListener, open_socket_far_side


class CountingServer:
    """Greets each connection (when asked to), echoes, and says "bye" after the client's EOF;
    keeps every accepted connection so a test can close the idle ones."""

    def __init__(self, greeting: bytes = b"") -> None:
        self.greeting = greeting
        self.accepted = 0
        self.writers: list[asyncio.StreamWriter] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> CountingServer:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        self.writers.append(writer)
        if self.greeting:
            writer.write(self.greeting)
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.write(b"bye")
        writer.close()

    def close_idle(self) -> None:
        for writer in self.writers:
            writer.close()

    async def stop(self) -> None:
        assert self.server is not None
        self.server.close()
        self.close_idle()


@pytest.fixture
async def server():
    counting = await CountingServer().start()
    yield counting
    await counting.stop()


async def start_listener(port: int, spares: int = 1) -> RelayListener:
    async def open_far(near):
        return await open_socket_far_side(near, "127.0.0.1", port)

    return await RelayListener.start("127.0.0.1", 0, open_far, spares=spares)


async def exchange(port: int, payload: bytes = b"ping") -> bytes:
    """What comes back; b"" when the relay drops the client (an end or a reset: a client
    dropped while its request is still unread gets a reset from the kernel)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(payload)
        writer.write_eof()
        return await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:
        return b""
    finally:
        writer.close()


async def settle() -> None:
    for _ in range(20):
        await asyncio.sleep(0.01)


async def test_a_spare_opens_only_after_a_first_answer_and_serves_the_next_client(server):
    listener = await start_listener(server.port)
    try:
        await settle()
        assert server.accepted == 0 and listener.spares_open == 0  # nothing before a client
        assert await exchange(listener.port) == b"pingbye"
        await settle()
        assert server.accepted == 2 and listener.spares_open == 1
        assert await exchange(listener.port, b"second") == b"secondbye"
        await settle()
        # The second client took the spare; one new spare replaced it.
        assert server.accepted == 3 and listener.spares_open == 1
    finally:
        await listener.close()


async def test_a_spare_the_server_closes_is_dropped_and_the_next_client_still_gets_through(
    server,
):
    listener = await start_listener(server.port)
    try:
        assert await exchange(listener.port) == b"pingbye"
        await settle()
        assert listener.spares_open == 1
        server.close_idle()  # as an idle timeout on the server would
        await settle()
        assert listener.spares_open == 0
        assert await exchange(listener.port, b"again") == b"againbye"
    finally:
        await listener.close()


async def test_a_refusing_far_side_gets_one_attempt_per_client_no_spares_and_one_warning(
    caplog,
):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    attempts = 0

    async def open_far(near):
        nonlocal attempts
        attempts += 1
        return await open_socket_far_side(near, "127.0.0.1", dead_port)

    listener = await RelayListener.start("127.0.0.1", 0, open_far, spares=2)
    try:
        with caplog.at_level(logging.WARNING):
            for _ in range(3):
                assert await exchange(listener.port) == b""
        await settle()
        assert attempts == 3 and listener.spares_open == 0
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1  # once per outage, not per connection
        assert "could not open its far side" in warnings[0].getMessage()
    finally:
        await listener.close()


async def test_what_a_server_says_first_reaches_the_client_of_a_spare():
    greeter = await CountingServer(greeting=b"220 hello\r\n").start()
    listener = await start_listener(greeter.port)
    try:
        assert await exchange(listener.port, b"x") == b"220 hello\r\nxbye"
        await settle()
        assert listener.spares_open == 1
        assert (
            await exchange(listener.port, b"y" * 300_000)
            == b"220 hello\r\n" + b"y" * 300_000 + b"bye"
        )
    finally:
        await listener.close()
        await greeter.stop()


async def test_closing_the_listener_closes_its_spares(server):
    listener = await start_listener(server.port, spares=2)
    assert await exchange(listener.port) == b"pingbye"
    await settle()
    assert listener.spares_open == 2
    spare_writers = server.writers[1:]
    await listener.close()
    await settle()
    assert all(writer.is_closing() for writer in spare_writers)
    assert listener.spares_open == 0 and listener.active == 0


class _RecordingTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple] = []

    def get_extra_info(self, name, default=None):
        return default

    def write(self, data) -> None:
        self.calls.append(("write", bytes(data)))

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.calls.append(("write_eof",))

    def close(self) -> None:
        self.calls.append(("close",))


async def test_an_answer_that_comes_before_the_clients_transport_is_delivered_in_order():
    # The request went to an open far side straight from accept(); the far side answered
    # and closed before asyncio had set up the client's transport.
    listener = RelayListener(open_far=None, log=logging.getLogger("test"))  # type: ignore[arg-type]
    connection = RelayedConnection(listener)
    connection._opening = asyncio.get_running_loop().create_future()  # opened already
    connection.far_data(b"HTTP/1.0 200 OK\r\n\r\n")
    connection.far_data(b"body")
    connection.far_eof()
    connection.far_closed(None)
    near = _RecordingTransport()
    connection.connection_made(near)
    assert near.calls == [
        ("write", b"HTTP/1.0 200 OK\r\n\r\nbody"),
        ("write_eof",),
        ("close",),
    ]


async def test_running_out_of_file_descriptors_pauses_accepting_then_it_resumes(
    server, monkeypatch, caplog
):
    import errno

    from hubdash.transport import relay

    monkeypatch.setattr(relay, "ACCEPT_RETRY_DELAY", 0.05)
    listener = await start_listener(server.port)
    real = listener._sock

    class OutOfDescriptors:
        def fileno(self) -> int:
            return real.fileno()

        def accept(self):
            raise OSError(errno.EMFILE, "Too many open files")

    try:
        listener._sock = OutOfDescriptors()
        with caplog.at_level(logging.WARNING):
            listener._accept()
        assert "cannot accept connections: [Errno 24]" in caplog.text
        listener._sock = real  # descriptors free again
        assert await exchange(listener.port) == b"pingbye"  # accepted once the pause is over
    finally:
        await listener.close()
