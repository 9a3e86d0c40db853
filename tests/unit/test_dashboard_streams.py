"""The dashboard's caps on live event streams: per user and in total, 429 before the hub is
asked anything, every way a stream ends gives its place back, and the polling fallback's
JSON endpoint."""

from __future__ import annotations

import asyncio
import doctest
import json
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port
from traitlets import TraitError

import hubdash.dashboard.streamlimits
from hubdash.dashboard import live
from hubdash.dashboard.app import HubDash
from hubdash.dashboard.handlers import POLL_SECONDS
from hubdash.dashboard.hubapi import HubAPI
from hubdash.dashboard.hubauth import SharedLookupHubOAuth
from hubdash.dashboard.streamlimits import StreamLimits

from . import fakehub
from .fakehub import SERVICE_TOKEN, FakeHubState, serve_fake_hub, server_model, service_auth
from .test_dashboard_service import PREFIX, Dashboard, queued_alice

CARDS = f"{PREFIX}api/users/alice/events"


@dataclass
class RawStream:
    """One event-stream request on its own socket: hung up on purpose by close()."""

    status: int
    head: str
    body: bytes
    writer: asyncio.StreamWriter

    async def close(self) -> None:
        self.writer.close()
        await self.writer.wait_closed()


class Streams(Dashboard):
    limits: StreamLimits

    async def open(self, path: str, token: str) -> RawStream:
        """Open a stream; returns once the dashboard answered (status line and first bytes)."""
        reader, writer = await asyncio.open_connection("127.0.0.1", urlsplit(self.url).port)
        writer.write(
            f"GET {path} HTTP/1.1\r\nHost: dash\r\nAuthorization: token {token}\r\n"
            "Accept: text/event-stream\r\n\r\n".encode()
        )
        head = (await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 10)).decode()
        ended = "\r\ncontent-length: 0\r\n" in head.lower()  # nothing sent (a feed that failed)
        body = b"" if ended else await asyncio.wait_for(reader.read(65536), 10)
        return RawStream(int(head.split()[1]), head, body, writer)

    async def wait_open(self, count: int, user: str | None = None) -> None:
        """Until the dashboard counts `count` open streams (an upper bound, not a timing)."""
        for _ in range(200):
            if self.limits.open_streams(user) == count:
                return
            await asyncio.sleep(0.05)
        assert self.limits.open_streams(user) == count


@pytest.fixture
async def streams():
    hub = FakeHubState()
    hub_server, api_url = serve_fake_hub(hub)
    config = HubDash(
        # Open streams read the hub once, then not again within a test.
        service_prefix=PREFIX,
        state_interval=60,
        max_streams_per_user=2,
        max_streams_total=3,
    )
    auth = service_auth(SharedLookupHubOAuth, api_url, PREFIX)
    app = config.make_app(hub_auth=auth, hub_api=HubAPI(api_url, SERVICE_TOKEN))
    sock, port = bind_unused_port()
    server = HTTPServer(app)
    server.add_sockets([sock])
    client = AsyncHTTPClient(force_instance=True)
    dash = Streams(f"http://127.0.0.1:{port}", hub, app.settings["cookie_secret"], client)
    dash.limits = app.settings["stream_limits"]
    queued_alice(hub)
    hub.servers["bob"] = {"": server_model("", user="bob")}
    yield dash
    client.close()
    server.stop()
    hub_server.stop()
    await asyncio.sleep(0)


async def test_past_the_per_user_cap_a_stream_gets_429_and_the_hub_is_not_asked(streams):
    first = await streams.open(CARDS, "alice-token")
    second = await streams.open(f"{PREFIX}api/users/alice/server/events", "alice-token")
    assert (first.status, second.status) == (200, 200)
    await asyncio.sleep(0.2)  # the status stream asks for progress (none: not starting)
    asked = streams.hub.requests
    refused = await streams.open(CARDS, "alice-token")
    assert refused.status == 429
    assert f"Retry-After: {POLL_SECONDS}" in refused.head
    assert "most live pages open that one user may have (2)" in json.loads(refused.body)["message"]
    assert streams.hub.requests == asked  # whoami was cached; nothing else was asked
    # Another user still gets one.
    bob = await streams.open(f"{PREFIX}api/users/bob/events", "bob-token")
    assert bob.status == 200
    for stream in (first, second, refused, bob):
        await stream.close()
    await streams.wait_open(0)


async def test_past_the_total_cap_even_who_asks_is_not_asked_of_the_hub(streams):
    held = [await streams.open(CARDS, "alice-token") for _ in range(2)]
    held.append(await streams.open(f"{PREFIX}api/users/bob/events", "bob-token"))
    assert [s.status for s in held] == [200, 200, 200]
    await asyncio.sleep(0.2)
    asked = streams.hub.requests
    # root's token was never seen: the dashboard would have to ask the hub who it is.
    refused = await streams.open(f"{PREFIX}api/users/root/events", "root-token")
    assert refused.status == 429
    assert "as many live pages open as it serves" in json.loads(refused.body)["message"]
    assert streams.hub.requests == asked
    await held[0].close()
    await streams.wait_open(2)
    again = await streams.open(f"{PREFIX}api/users/bob/events", "bob-token")
    assert again.status == 200
    for stream in [*held[1:], again]:
        await stream.close()
    await streams.wait_open(0)


async def test_a_burst_with_a_new_token_asks_the_hub_who_it_is_once(streams, monkeypatch):
    held = [await streams.open(CARDS, "alice-token") for _ in range(2)]
    await asyncio.sleep(0.2)
    monkeypatch.setitem(fakehub.TOKENS, "alice-new-token", "alice")
    asked = streams.hub.requests
    burst = await asyncio.gather(*(streams.open(CARDS, "alice-new-token") for _ in range(20)))
    assert [answer.status for answer in burst] == [429] * 20
    assert streams.hub.requests == asked + 1  # one GET /hub/api/user, shared by all 20
    for stream in [*held, *burst]:
        await stream.close()
    await streams.wait_open(0)


async def test_a_refused_ownership_check_gives_the_place_back(streams):
    # 404 (no such server) and 403 (another user's) both end the request before a stream.
    for path, token, status in (
        (f"{PREFIX}api/users/alice/servers/nope/events", "alice-token", 404),
        (f"{PREFIX}api/users/bob/events", "alice-token", 403),
    ):
        for _ in range(3):  # more than the cap: each one gave its place back
            answer = await streams.open(path, token)
            assert answer.status == status
            await answer.close()
    assert streams.limits.open_streams() == 0


async def test_a_hub_that_does_not_answer_gives_the_place_back(streams, monkeypatch):
    async def hub_down(*args, **kwargs):
        from hubdash.dashboard.hubapi import HubAPIError

        raise HubAPIError(599, "connection refused")

    monkeypatch.setattr(HubAPI, "user", hub_down)
    for _ in range(3):
        answer = await streams.open(CARDS, "alice-token")
        assert answer.status == 502
        await answer.close()
    assert streams.limits.open_streams() == 0


async def test_a_page_that_leaves_while_the_hub_is_asked_gives_the_place_back(streams, monkeypatch):
    asking = asyncio.Event()
    answer = asyncio.Event()
    read_user = HubAPI.user

    async def slow_user(self, name, token=None):
        asking.set()
        await answer.wait()
        return await read_user(self, name, token)

    monkeypatch.setattr(HubAPI, "user", slow_user)
    reader, writer = await asyncio.open_connection("127.0.0.1", urlsplit(streams.url).port)
    writer.write(
        f"GET {CARDS} HTTP/1.1\r\nHost: dash\r\nAuthorization: token alice-token\r\n\r\n".encode()
    )
    await asyncio.wait_for(asking.wait(), 10)
    assert streams.limits.open_streams("alice") == 1
    writer.close()
    await asyncio.sleep(0.2)  # the dashboard notices the hang-up
    asked = streams.hub.requests
    answer.set()
    await streams.wait_open(0)
    await asyncio.sleep(0.3)
    # Only the ownership check's own request finished; no feed started reading.
    assert streams.hub.requests <= asked + 1


async def test_a_feed_that_fails_gives_the_place_back(streams, monkeypatch):
    async def broken(self):
        raise RuntimeError("feed broke")

    monkeypatch.setattr(live.ServerListFeed, "run", broken)
    for _ in range(3):
        answer = await streams.open(CARDS, "alice-token")
        await answer.close()
        await streams.wait_open(0)


async def test_the_cards_endpoint_answers_what_the_stream_would_send(streams):
    answer = await streams.fetch(f"{PREFIX}api/users/alice/cards", token="alice-token")
    assert answer.code == 200
    data = json.loads(answer.body)
    assert data["count"] == 1 and "4242" in data["html"]
    other = await streams.fetch(f"{PREFIX}api/users/bob/cards", token="alice-token")
    assert other.code == 403


async def test_pages_name_their_polling_urls(streams):
    servers = (await streams.fetch(PREFIX, token="alice-token")).body.decode()
    assert f'data-poll-url="{PREFIX}api/users/alice/cards?_xsrf=' in servers
    status = (await streams.fetch(f"{PREFIX}status/alice", token="alice-token")).body.decode()
    assert f'data-poll-url="{PREFIX}api/users/alice/server?_xsrf=' in status
    assert 'id="live-note"' in servers and 'id="live-note"' in status


def test_stream_caps_must_be_at_least_one():
    for name in ("max_streams_per_user", "max_streams_total"):
        with pytest.raises(TraitError, match=name):
            HubDash(**{name: 0})


def test_stream_limits_examples():
    failures, _ = doctest.testmod(hubdash.dashboard.streamlimits, optionflags=doctest.ELLIPSIS)
    assert failures == 0
