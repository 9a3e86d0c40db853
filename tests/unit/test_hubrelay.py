"""The job's relay to the hub: it follows the route file, bounds what it reads, and the
launcher points the server's hub URLs at it."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from hubdash.job import hubrelay
from hubdash.job.contract import ROUTE_FILE, ROUTE_FILE_LIMIT, hub_urls_at
from hubdash.job.hubrelay import RouteError, read_route
from hubdash.job.launcher import server_environment

ROOT = Path(__file__).resolve().parents[2]


def write_route(state_dir: Path, host: str, port: int) -> None:
    (state_dir / ROUTE_FILE).write_text(json.dumps({"host": host, "port": port}))


async def start_named_echo(name: bytes) -> tuple[asyncio.Server, int]:
    """A server that answers every connection with its name, then echoes."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(name + b":")
        while data := await reader.read(1024):
            writer.write(data)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def ask(port: int, text: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(text)
    writer.write_eof()
    try:
        answer = await asyncio.wait_for(reader.read(), 5)
    except ConnectionResetError:  # closed with our bytes unread: nothing came back
        answer = b""
    writer.close()
    return answer


def test_route_is_read_with_a_bound_and_checked(tmp_path):
    with pytest.raises(RouteError, match="cannot read"):
        read_route(tmp_path)
    (tmp_path / ROUTE_FILE).write_bytes(b" " * (ROUTE_FILE_LIMIT + 1))
    with pytest.raises(RouteError, match="over 4096 bytes"):
        read_route(tmp_path)
    (tmp_path / ROUTE_FILE).write_text('{"host": "login", "port": "x"}')
    with pytest.raises(RouteError, match="no host and port"):
        read_route(tmp_path)
    write_route(tmp_path, "login", 0)
    with pytest.raises(RouteError, match="no usable address"):
        read_route(tmp_path)
    write_route(tmp_path, "10.0.0.1", 4242)
    assert read_route(tmp_path) == ("10.0.0.1", 4242)


async def test_each_connection_follows_the_route_the_hub_last_wrote(tmp_path):
    old, old_port = await start_named_echo(b"old")
    new, new_port = await start_named_echo(b"new")
    listener = hubrelay.listen_on_loopback()
    relay_port = listener.getsockname()[1]
    relaying = asyncio.ensure_future(hubrelay.serve(listener, tmp_path, os.getppid()))
    try:
        write_route(tmp_path, "127.0.0.1", old_port)
        assert await ask(relay_port, b"ping") == b"old:ping"
        write_route(tmp_path, "127.0.0.1", new_port)  # the hub forward moved
        assert await ask(relay_port, b"ping") == b"new:ping"
        (tmp_path / ROUTE_FILE).unlink()  # no route: the connection is closed, nothing else
        assert await ask(relay_port, b"ping") == b""
    finally:
        relaying.cancel()
        old.close()
        new.close()


def test_the_server_is_pointed_at_the_relay_with_its_certificates_from_home(monkeypatch):
    monkeypatch.setenv("HOME", "/home/alice")
    hub_env = {
        "JUPYTERHUB_API_URL": "https://10.213.0.2:4567/hub/api",
        "JUPYTERHUB_ACTIVITY_URL": "https://10.213.0.2:4567/hub/api/users/alice/activity",
        "JUPYTERHUB_SERVICE_URL": "https://127.0.0.1:0/user/alice/",
        "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/",
        "JUPYTERHUB_SSL_KEYFILE": ".hubdash/servers/default/certs/server.key",
        "HUBDASH_HUB_RELAY": "1",
    }
    env = server_environment(hub_env, 5555)
    env.update(hub_urls_at(env, "127.0.0.1:7777"))
    assert env["JUPYTERHUB_SERVICE_URL"] == "https://0.0.0.0:5555/user/alice/"
    assert env["JUPYTERHUB_API_URL"] == "https://127.0.0.1:7777/hub/api"
    assert env["JUPYTERHUB_ACTIVITY_URL"].startswith("https://127.0.0.1:7777/hub/api/users/")
    assert env["JUPYTERHUB_SSL_KEYFILE"] == "/home/alice/.hubdash/servers/default/certs/server.key"
    assert "HUBDASH_HUB_RELAY" not in env


def test_the_launcher_starts_the_relay_and_it_ends_with_the_server(tmp_path):
    state = tmp_path / "servers" / "default"
    state.mkdir(parents=True)
    (state / "env.json").write_text(
        json.dumps(
            {
                "JUPYTERHUB_API_URL": "http://10.213.0.2:4567/hub/api",
                "JUPYTERHUB_SERVICE_PREFIX": "/user/alice/",
                "HUBDASH_HUB_RELAY": "1",
            }
        )
    )
    script = 'echo "$JUPYTERHUB_API_URL"; sleep 1'
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hubdash.job.launcher",
            "--state-dir",
            str(state),
            "--job-id",
            "7",
            "--",
            "sh",
            "-c",
            script,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr
    url = result.stdout.strip().splitlines()[-1]
    assert url.startswith("http://127.0.0.1:") and url.endswith("/hub/api")
    port = url.split(":")[2].split("/")[0]
    # The relay listened there while the server ran, and left with it.
    deadline = time.monotonic() + 10
    while any(f"--state-dir {state}" in _cmdline(p) for p in Path("/proc").glob("[0-9]*")):
        assert time.monotonic() < deadline, "the relay outlived its server"
        time.sleep(0.2)
    assert port.isdigit()


def _cmdline(proc: Path) -> str:
    try:
        return (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
