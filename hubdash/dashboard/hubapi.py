"""The hub's REST API as the dashboard uses it: users, servers, progress streams, metrics.

Every call names the token it acts with: the logged-in user's OAuth token for that user's
own servers, or the service's token (`service_token`) for spawner state and the admin view.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import ssl
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPRequest, HTTPResponse

from hubdash.dashboard.sse import EventStreamParser

# An open status page holds one progress stream: many may be open at once, so the client's
# own limit (10 by default) would queue every other call behind them.
MAX_CLIENTS = 1000
# How long one progress stream may stay open; a page still waiting then opens a new one.
STREAM_SECONDS = 6 * 3600


class HubAPIError(Exception):
    """The hub answered with an error (or not at all: status 599)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"hub API answered {status}: {message}")
        self.status = status
        self.message = message


class _StreamClosed(Exception):
    """Raised from the streaming callback to drop a progress stream nobody reads any more."""


def server_path(user: str, server: str) -> str:
    """The API path of one server: the default server ('') has its own spelling.

    >>> server_path("alice", "")
    '/users/alice/server'
    >>> server_path("alice", "gpu run")
    '/users/alice/servers/gpu%20run'
    """
    if server:
        return f"/users/{quote(user, safe='')}/servers/{quote(server, safe='')}"
    return f"/users/{quote(user, safe='')}/server"


class HubAPI:
    """Calls to one hub's REST API (`api_url` as in $JUPYTERHUB_API_URL)."""

    def __init__(
        self,
        api_url: str,
        service_token: str,
        *,
        client: AsyncHTTPClient | None = None,
        request_timeout: float = 30.0,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        # With the hub's internal TLS: our certificate, and the hub's verified.
        self.ssl_context = ssl_context
        self.service_token = service_token
        self.request_timeout = request_timeout
        self._client = client or AsyncHTTPClient(force_instance=True, max_clients=MAX_CLIENTS)

    def _request(
        self,
        method: str,
        path: str,
        token: str | None,
        headers: dict[str, str] | None = None,
        **kwargs: Any,
    ) -> HTTPRequest:
        return HTTPRequest(
            self.api_url + path,
            method=method,
            headers={"Authorization": f"token {token or self.service_token}", **(headers or {})},
            ssl_options=self.ssl_context,
            **kwargs,
        )

    async def call(
        self,
        method: str,
        path: str,
        token: str | None = None,
        body: Any = None,
        timeout: float | None = None,
    ) -> Any:
        """One API call; the JSON answer (None when empty). Raises HubAPIError. `timeout`:
        seconds for this call, when not the client's own `request_timeout`."""
        kwargs: dict[str, Any] = {"request_timeout": timeout or self.request_timeout}
        if body is not None:
            kwargs["body"] = json.dumps(body)
        elif method in ("POST", "PUT", "PATCH"):
            kwargs["body"] = ""
        elif method == "DELETE":
            kwargs["allow_nonstandard_methods"] = True
        response = await self._client.fetch(
            self._request(method, path, token, **kwargs), raise_error=False
        )
        if response.code >= 400 or response.code == 599:
            raise HubAPIError(response.code, _error_message(response))
        if not response.body:
            return None
        if response.headers.get("Content-Type", "").startswith("application/json"):
            return json.loads(response.body)
        return response.body.decode("utf-8", errors="replace")

    # --- what the dashboard asks ---------------------------------------------------------

    async def user(self, name: str, token: str | None = None) -> dict[str, Any]:
        """A user's model with every server, stopped ones included (for their cards)."""
        return await self.call(
            "GET", f"/users/{quote(name, safe='')}?include_stopped_servers=1", token
        )

    async def users(self) -> list[dict[str, Any]]:
        """Every user with their active servers (service token: needs list:users)."""
        return await self.call("GET", "/users?state=active", None) or []

    async def stop_server(self, user: str, server: str, token: str) -> None:
        """Stop (or cancel the pending start of) a server, acting as `token`'s owner."""
        await self.call("DELETE", server_path(user, server), token)

    async def metrics(self) -> str:
        """The hub's Prometheus metrics text (service token: needs read:metrics)."""
        response = await self._client.fetch(
            HTTPRequest(
                self.api_url.rsplit("/api", 1)[0] + "/metrics",
                headers={"Authorization": f"token {self.service_token}"},
                request_timeout=self.request_timeout,
                ssl_options=self.ssl_context,
            ),
            raise_error=False,
        )
        if response.code != 200:
            raise HubAPIError(response.code, _error_message(response))
        return response.body.decode("utf-8", errors="replace")

    async def progress(self, user: str, server: str, token: str) -> AsyncIterator[dict[str, Any]]:
        """The hub's progress events of a server's start, from the first (the hub replays
        them), until its final `ready` or `failed` event. Raises HubAPIError when the server
        is not starting (400) or not the token owner's to read (403/404)."""
        path = server_path(user, server) + "/progress"
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        parser = EventStreamParser()
        head = bytearray()
        closed = False

        def on_chunk(chunk: bytes) -> None:
            if closed:
                raise _StreamClosed()
            if len(head) < 4096:
                head.extend(chunk[: 4096 - len(head)])
            for event in parser.feed(chunk):
                queue.put_nowait(event)

        request = self._request(
            "GET",
            path,
            token,
            headers={"Accept": "text/event-stream"},
            streaming_callback=on_chunk,
            connect_timeout=self.request_timeout,
            request_timeout=STREAM_SECONDS,
        )
        fetch = asyncio.ensure_future(self._client.fetch(request, raise_error=False))
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait({getter, fetch}, return_when=asyncio.FIRST_COMPLETED)
                if getter in done:
                    yield getter.result()
                    continue
                getter.cancel()
                while not queue.empty():
                    yield queue.get_nowait()
                response: HTTPResponse = fetch.result()
                if response.code >= 400:
                    raise HubAPIError(response.code, _message_from(bytes(head), response))
                return
        finally:
            closed = True
            if not fetch.done():
                # The next chunk (the hub sends a keepalive every few seconds) drops it.
                fetch.add_done_callback(_ignore_result)


def _ignore_result(future: asyncio.Future) -> None:
    with contextlib.suppress(BaseException):
        future.result()


def _error_message(response: HTTPResponse) -> str:
    return _message_from(response.body or b"", response)


def _message_from(body: bytes, response: HTTPResponse) -> str:
    try:
        message = json.loads(body).get("message")
    except (ValueError, AttributeError):
        message = None
    if message:
        return str(message)
    if response.error is not None and response.code == 599:
        return str(response.error)
    return response.reason or "no message"
