"""The forward keeper (hubdash/keeper): notebook forwards that outlive the hub process. A real
keeper — in this process, or as the process the hub starts — with forwards of the 'local'
transport to an echo server here, so that what a restart keeps can be seen byte for byte."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hubdash.keeper.client import KeeperClient, KeeperError, KeeperForwards
from hubdash.keeper.daemon import ForwardKeeper
from hubdash.keeper.wire import MAX_LINE, check_socket_path, private_folder
from hubdash.spawner.restartsettings import default_keeper_socket
from hubdash.spawner.tunnel import Tunnel
from hubdash.transport.factory import LoginSettings, UserKeys

from .test_transport_local import echo_through, start_echo_server

LOCAL = LoginSettings(transport="local")


@pytest.fixture
async def echo_port():
    server, port = await start_echo_server()
    yield port
    server.close()


@pytest.fixture
def socket_path(tmp_path):
    # Short: a Unix socket's path has at most 107 bytes, pytest's tmp_path can be long.
    folder = Path(f"/tmp/hk-{os.getpid()}-{id(tmp_path) % 10**6}")
    private_folder(folder)
    yield str(folder / "k.sock")
    for path in folder.iterdir():
        path.unlink()
    folder.rmdir()


@pytest.fixture
async def keeper(socket_path):
    keeper = ForwardKeeper(socket_path, idle_exit=3600)
    assert keeper.take_lock()
    serving = asyncio.ensure_future(keeper.serve())
    for _ in range(100):
        if exists(socket_path):
            break
        await asyncio.sleep(0.01)
    yield keeper
    keeper._stopping.set()
    await serving
    keeper._lock_file.close()


def opener(client: KeeperClient, name: str = "alice/one") -> KeeperForwards:
    return KeeperForwards(client, name, LOCAL, "alice", UserKeys(), lease=600)


async def connected(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    return await asyncio.open_connection("127.0.0.1", port)


async def echo_on(reader, writer, payload: bytes) -> bytes:
    writer.write(payload)
    await writer.drain()
    return await asyncio.wait_for(reader.readexactly(len(payload)), 5)


def exists(path: str) -> bool:
    return os.path.exists(path)


def keeper_pid(socket_path: str) -> int:
    return int(Path(socket_path + ".lock").read_text())


def read_log(socket_path: str) -> str:
    return (Path(socket_path).parent / "keeper.log").read_text()


def process_gone(pid: int) -> bool:
    """Reaped if it was this process's child (the keeper the hub started is)."""
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)
    return not os.path.exists(f"/proc/{pid}")


async def answered(reader: asyncio.StreamReader) -> bytes:
    """What came back before the keeper closed the connection (a reset counts as nothing)."""
    try:
        return await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:
        return b""


async def test_a_connection_through_a_kept_forward_survives_its_hub_going_away(keeper, echo_port):
    hub = KeeperClient(keeper.socket_path, start=False)
    forward = await opener(hub).open_local_forward("127.0.0.1", echo_port)
    assert not forward.adopted
    reader, writer = await connected(forward.listen_port)
    assert await echo_on(reader, writer, b"before") == b"before"

    await hub.close()  # the hub process ends: its connection to the keeper with it
    restarted = KeeperClient(keeper.socket_path, start=False)
    again = await opener(restarted).open_local_forward("127.0.0.1", echo_port, listen_port=0)
    # The same forward, on the same port (the proxy's route stays right) ...
    assert again.adopted and again.listen_port == forward.listen_port
    # ... and the browser's connection through it never noticed.
    assert await echo_on(reader, writer, b"after") == b"after"
    writer.close()
    await restarted.close()


async def test_a_forward_to_another_place_replaces_the_kept_one(keeper, echo_port):
    other_server, other_port = await start_echo_server()
    hub = KeeperClient(keeper.socket_path, start=False)
    first = await opener(hub).open_local_forward("127.0.0.1", echo_port)
    reader, writer = await connected(first.listen_port)
    assert await echo_on(reader, writer, b"x") == b"x"
    moved = await opener(hub).open_local_forward("127.0.0.1", other_port)
    assert not moved.adopted
    assert await echo_through(moved.listen_port) == b"hellobye"
    # The old forward is closed, with its connections.
    assert await asyncio.wait_for(reader.read(), 5) == b""
    listing = await hub.request("list")
    assert [f["dest"] for f in listing["forwards"]] == [["127.0.0.1", other_port]]
    other_server.close()
    await hub.close()


async def test_each_server_has_its_own_forward_and_closing_one_leaves_the_other(keeper, echo_port):
    hub = KeeperClient(keeper.socket_path, start=False)
    one = await opener(hub, "alice/one").open_local_forward("127.0.0.1", echo_port)
    two = await opener(hub, "bob/").open_local_forward("127.0.0.1", echo_port)
    assert one.listen_port != two.listen_port
    await one.close()
    with pytest.raises(OSError):
        await connected(one.listen_port)
    assert await echo_through(two.listen_port) == b"hellobye"
    listing = await hub.request("list")
    assert [f["forward"] for f in listing["forwards"]] == ["bob/"]
    assert listing["forwards"][0]["open"] is True
    await hub.close()


async def test_a_forward_whose_lease_ran_out_is_closed_and_reported_lost(keeper, echo_port):
    hub = KeeperClient(keeper.socket_path, start=False)
    forward = await opener(hub).open_local_forward("127.0.0.1", echo_port)
    tunnel = Tunnel(transport=None, notebook_opener=opener(hub))  # type: ignore[arg-type]
    tunnel.notebook_forward = forward
    assert await tunnel.renew() is True
    loop = asyncio.get_running_loop()
    await keeper.reap(now=loop.time() + 599)  # renewed just now for 600 s: still held
    assert await echo_through(forward.listen_port) == b"hellobye"
    await keeper.reap(now=loop.time() + 601)
    with pytest.raises(OSError):
        await connected(forward.listen_port)
    assert keeper._links == {}  # the user's transport went with its last forward
    assert await tunnel.renew() is False  # the spawner then opens it again
    assert not forward.is_open
    await hub.close()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        ({"dest": ["127.0.0.1"]}, "'dest' must be [host, port]"),
        ({"dest": ["127.0.0.1", 70000]}, "'dest' must be a TCP port"),
        ({"listen_port": -1}, "'listen_port' must be a TCP port"),
        ({"lease": 0}, "'lease' must be seconds"),
        ({"spares": 99}, "'spares' must be 0 to 16"),
        ({"user": ""}, "'user' must be a non-empty string"),
        ({"login": {"transport": "telnet"}}, "bad login settings"),
        ({"keys": "secret"}, "'keys' must be an object"),
        ({"op": "explode"}, "unknown request 'explode'"),
    ],
)
async def test_a_bad_request_is_refused_naming_what_is_wrong(keeper, change, named):
    hub = KeeperClient(keeper.socket_path, start=False)
    request = {
        "op": "open",
        "forward": "alice/one",
        "login": {"transport": "local"},
        "user": "alice",
        "keys": {},
        "dest": ["127.0.0.1", 9],
        "lease": 60,
        **change,
    }
    op = request.pop("op")
    with pytest.raises(KeeperError, match=f"refused {op}: .*{named}".replace("[", r"\[")):
        await hub.request(op, **request)
    assert (await hub.request("list"))["forwards"] == []
    await hub.close()


async def test_a_line_over_the_limit_ends_that_connection_only(keeper):
    reader, writer = await asyncio.open_unix_connection(keeper.socket_path)
    writer.write(b"x" * (MAX_LINE + 10) + b"\n")
    await writer.drain()
    assert await answered(reader) == b""  # dropped, nothing answered
    writer.close()
    hub = KeeperClient(keeper.socket_path, start=False)
    assert (await hub.request("list"))["forwards"] == []  # the keeper serves on
    await hub.close()


async def test_a_connection_from_another_user_is_refused(keeper, monkeypatch):
    monkeypatch.setattr("hubdash.keeper.wire.os.geteuid", lambda: 4242)
    reader, writer = await asyncio.open_unix_connection(keeper.socket_path)
    writer.write(b'{"id": 1, "op": "list"}\n')
    await writer.drain()
    assert await answered(reader) == b""
    writer.close()


async def test_an_idle_keeper_stops_and_only_one_keeper_serves_a_socket(socket_path):
    keeper = ForwardKeeper(socket_path, idle_exit=5)
    assert keeper.take_lock()
    assert not ForwardKeeper(socket_path).take_lock()  # a second one leaves at once
    serving = asyncio.ensure_future(keeper.serve())
    await asyncio.sleep(0.05)
    loop = asyncio.get_running_loop()
    await keeper.reap(now=loop.time() + 1)
    assert not serving.done()
    await keeper.reap(now=loop.time() + 10)
    await asyncio.wait_for(serving, 5)
    assert not exists(socket_path)
    keeper._lock_file.close()


async def test_the_hub_starts_a_keeper_that_outlives_it(socket_path, echo_port):
    """As the hub does: the first request starts `python -m hubdash.keeper` in a session of
    its own; the forward stays when the hub's client is gone; `stop` ends the process."""
    hub = KeeperClient(socket_path, start=True, python=sys.executable, idle_exit=60)
    forward = await opener(hub).open_local_forward("127.0.0.1", echo_port)
    pid = keeper_pid(socket_path)
    assert os.getsid(pid) == pid  # its own session: a signal to the hub's group misses it
    await hub.close()
    assert await echo_through(forward.listen_port) == b"hellobye"
    restarted = KeeperClient(socket_path, start=True)
    again = await opener(restarted).open_local_forward("127.0.0.1", echo_port)
    assert again.adopted and again.listen_port == forward.listen_port
    assert keeper_pid(socket_path) == pid  # no second keeper
    await restarted.request("stop")
    await restarted.close()
    for _ in range(100):
        if process_gone(pid):
            break
        await asyncio.sleep(0.05)
    assert process_gone(pid)
    log = read_log(socket_path)
    assert "Forward alice/one: 127.0.0.1:" in log and "stopped" in log


async def test_without_a_keeper_and_without_starting_one_the_error_says_what_to_do(socket_path):
    hub = KeeperClient(socket_path, start=False)
    with pytest.raises(KeeperError, match="No forward keeper answers .*python -m hubdash.keeper"):
        await hub.request("list")


def test_the_keepers_folder_must_be_the_hub_users_alone(tmp_path):
    open_folder = tmp_path / "open"
    open_folder.mkdir(mode=0o755)
    open_folder.chmod(0o755)
    with pytest.raises(ValueError, match="may be entered by others .*0700"):
        private_folder(open_folder)
    theirs = tmp_path / "theirs"
    theirs.mkdir(mode=0o700)
    os.chown(theirs, 65534, 65534)
    with pytest.raises(ValueError, match="belongs to uid 65534"):
        private_folder(theirs)
    made = private_folder(tmp_path / "new" / "keeper")
    assert made.stat().st_mode & 0o777 == 0o700


def test_a_socket_path_too_long_or_relative_is_refused_naming_the_setting():
    with pytest.raises(ValueError, match="forward_keeper_socket .*107 bytes"):
        check_socket_path("/srv/" + "x" * 110 + ".sock")
    with pytest.raises(ValueError, match="forward_keeper_socket must be an absolute path"):
        check_socket_path("keeper.sock")


def test_the_keeper_command_refuses_a_folder_others_may_enter(tmp_path):
    folder = tmp_path / "k"
    folder.mkdir(mode=0o777)
    folder.chmod(0o777)
    done = subprocess.run(
        [sys.executable, "-m", "hubdash.keeper", "--socket", str(folder / "k.sock")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2
    assert "may be entered by others" in done.stderr


def test_the_default_socket_is_beside_the_database_unless_that_path_is_too_long(monkeypatch):
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    short = default_keeper_socket("sqlite:////srv/jupyterhub/jupyterhub.sqlite", "prod")
    assert short == "/srv/jupyterhub/hubdash-keeper/prod.sock"
    deep = "/srv/" + "d" * 100
    fallback = default_keeper_socket(f"sqlite:///{deep}/jupyterhub.sqlite", "prod")
    assert fallback == f"/tmp/hubdash-keeper-{os.geteuid()}/prod.sock"
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert (
        default_keeper_socket("postgresql://db/hub", "h1")
        == "/run/user/1000/hubdash-keeper/h1.sock"
    )
    check_socket_path(fallback)


async def test_a_users_connection_is_not_closed_while_a_forward_on_it_is_being_opened(
    keeper, echo_port, monkeypatch
):
    """The reaper closes a user's SSH connection once no forward uses it; one whose first
    forward is still opening (an SSH login takes a while) is in use."""
    from hubdash.keeper import daemon
    from hubdash.transport.local import LocalTransport

    opening, go_on = asyncio.Event(), asyncio.Event()

    class SlowLogin(LocalTransport):
        async def open_local_forward(self, *args, **kwargs):
            opening.set()
            await go_on.wait()
            if self.closed:
                raise daemon.TransportError("The transport has been closed.")
            return await super().open_local_forward(*args, **kwargs)

        async def close(self) -> None:
            self.closed = True
            await super().close()

    def slow_transport(*_args, **_kwargs):
        transport = SlowLogin()
        transport.closed = False
        return transport

    monkeypatch.setattr(daemon, "make_transport", slow_transport)
    hub = KeeperClient(keeper.socket_path, start=False)
    opened = asyncio.ensure_future(opener(hub).open_local_forward("127.0.0.1", echo_port))
    await asyncio.wait_for(opening.wait(), 5)
    await keeper.reap()
    go_on.set()
    forward = await opened
    assert await echo_through(forward.listen_port) == b"hellobye"
    await hub.close()


async def test_closing_a_forward_starts_no_keeper_to_be_told(socket_path):
    """After a restart, a job that ended while the hub was down has its forward closed in
    the keeper; with no keeper running there is nothing to close, and none is started."""
    hub = KeeperClient(socket_path, start=True, python=sys.executable)
    await opener(hub).close()
    assert not exists(socket_path) and not exists(socket_path + ".lock")


async def test_many_servers_stopped_at_once_each_get_their_forward_closed_at_once(
    keeper, echo_port, monkeypatch
):
    """A class's servers stopped together: each close is answered at once, though each
    user's SSH connection, unused then, takes a moment to close (two closes at once once
    both closed the same idle connection; the second died unanswered and its hub waited 10 s)."""
    from hubdash.keeper import daemon
    from hubdash.transport.local import LocalTransport

    class SlowClose(LocalTransport):
        async def open_local_forward(self, *args, **kwargs):
            forward = await super().open_local_forward(*args, **kwargs)
            close = forward.close

            async def slow_close() -> None:
                await asyncio.sleep(0.01)
                await close()

            forward.close = slow_close
            return forward

        async def close(self) -> None:
            await asyncio.sleep(0.05)
            await super().close()

    monkeypatch.setattr(daemon, "make_transport", lambda *_a, **_k: SlowClose())
    hub = KeeperClient(keeper.socket_path, start=False)
    users = [f"student{n:03d}" for n in range(8)]
    forwards = [KeeperForwards(hub, f"{u}/", LOCAL, u, UserKeys(), lease=600) for u in users]
    for forward in forwards:
        await forward.open_local_forward("127.0.0.1", echo_port)
    assert len(keeper._links) == len(users)
    await asyncio.wait_for(asyncio.gather(*(f.close() for f in forwards)), 5)
    assert keeper._links == {} and keeper._kept == {}
    await hub.close()


async def test_a_request_the_keeper_fails_on_is_answered_with_the_failure(keeper, monkeypatch):
    async def broken(request):
        raise RuntimeError("a bug")

    monkeypatch.setattr(keeper, "handle", broken)
    hub = KeeperClient(keeper.socket_path, start=False)
    with pytest.raises(KeeperError, match="the keeper failed: RuntimeError: a bug"):
        await asyncio.wait_for(hub.request("list"), 5)
    await hub.close()
