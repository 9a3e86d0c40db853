"""The dashboard service process: its settings (traitlets, also as command-line options) and the
tornado application. The hub starts it as a managed service and hands it JUPYTERHUB_* settings.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import signal
import ssl
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader
from jupyterhub.services.auth import HubOAuth
from jupyterhub.utils import make_ssl_context
from tornado import web
from traitlets import Float, Integer, TraitError, Unicode, default, validate
from traitlets.config import Application

from hubdash.dashboard.clusters import ClusterDirectory
from hubdash.dashboard.handlers import routes, sample_scheduler_rate
from hubdash.dashboard.hubapi import HubAPI
from hubdash.dashboard.hubauth import SharedLookupHubOAuth
from hubdash.dashboard.schedulerrate import SchedulerRate
from hubdash.dashboard.streamlimits import StreamLimits

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


class HubDash(Application):
    """The dashboard, as a JupyterHub service."""

    name = "hubdash"
    description = "Live status of batch-job Jupyter servers, as a JupyterHub service."

    aliases = {
        "walltime-warning-minutes": "HubDash.walltime_warning_minutes",
        "state-interval": "HubDash.state_interval",
        "metrics-interval": "HubDash.metrics_interval",
        "max-streams-per-user": "HubDash.max_streams_per_user",
        "max-streams-total": "HubDash.max_streams_total",
        "url": "HubDash.service_url",
        "cookie-secret-file": "HubDash.cookie_secret_file",
        "log-level": "Application.log_level",
    }

    @default("log_level")
    def _default_log_level(self) -> int:
        return logging.INFO  # one line per request, as the hub logs its own

    walltime_warning_minutes = Integer(
        15,
        help="""Minutes of walltime left at which a running server's status page warns its
        user (and notifies them, when they allowed notifications), e.g. 15. 0: no warning.""",
    ).tag(config=True)

    @validate("walltime_warning_minutes")
    def _validate_warning(self, proposal: dict) -> int:
        if proposal["value"] < 0:
            raise TraitError(
                f"HubDash.walltime_warning_minutes is {proposal['value']}; give 0 (no warning) "
                "or a number of minutes"
            )
        return proposal["value"]

    state_interval = Float(
        5.0,
        help="""Seconds between two reads of a server's state from the hub while a page about
        it is open. Progress events (queued, running, ready ...) reach the page at once
        regardless; this paces the rest (tunnel round trip, walltime).""",
    ).tag(config=True)

    @validate("state_interval", "metrics_interval")
    def _validate_interval(self, proposal: dict) -> float:
        if proposal["value"] < 0.5:
            raise TraitError(
                f"HubDash.{proposal['trait'].name} is {proposal['value']}; give at least 0.5 s"
            )
        return proposal["value"]

    metrics_interval = Float(
        60.0,
        help="""Seconds between two reads of the hub's metrics, for the scheduler query rate
        that the admin overview shows (a rolling window of `rate_window` seconds).""",
    ).tag(config=True)

    rate_window = Float(
        600.0,
        help="Seconds of history behind the admin overview's scheduler query rate.",
    ).tag(config=True)

    max_streams_per_user = Integer(
        10,
        help="""At most this many live event streams (open status or My servers pages) per
        user at once, e.g. 10. Each one reads the hub every `state_interval` seconds; past
        the cap a page gets HTTP 429 and refreshes itself every 20 s instead.""",
    ).tag(config=True)

    max_streams_total = Integer(
        500,
        help="""At most this many live event streams for all users together, e.g. 500: what
        the hub's API can serve every `state_interval` seconds on the dashboard's behalf.
        Past it, new pages get HTTP 429 and refresh themselves every 20 s instead.""",
    ).tag(config=True)

    @validate("max_streams_per_user", "max_streams_total")
    def _validate_stream_cap(self, proposal: dict) -> int:
        if proposal["value"] < 1:
            raise TraitError(
                f"HubDash.{proposal['trait'].name} is {proposal['value']}; give at least 1"
            )
        return proposal["value"]

    service_url = Unicode(
        help="""Where the service listens, e.g. 'http://127.0.0.1:10101'. Default: the
        url the hub gives the service ($JUPYTERHUB_SERVICE_URL).""",
    ).tag(config=True)

    @default("service_url")
    def _default_service_url(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101")

    service_prefix = Unicode(
        help="""URL prefix of the service behind the hub's proxy.
        Default: $JUPYTERHUB_SERVICE_PREFIX.""",
    ).tag(config=True)

    @default("service_prefix")
    def _default_prefix(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/hubdash/")

    cookie_secret_file = Unicode(
        "",
        help="""File with the secret the dashboard's login cookies are signed with; created
        (mode 0600, 32 random bytes) if missing. With it, users stay logged in to the
        dashboard across restarts of the hub and the dashboard, so an open status page
        follows a server through a hub restart by itself. Empty (the default): a new secret
        at every start, and open pages must log in again after one.""",
    ).tag(config=True)

    def cookie_secret(self) -> bytes:
        if not self.cookie_secret_file:
            return secrets.token_bytes(32)
        return read_or_create_secret(Path(self.cookie_secret_file))

    def make_app(
        self, hub_auth: HubOAuth | None = None, hub_api: HubAPI | None = None
    ) -> web.Application:
        """The tornado application; tests hand in their own hub client objects."""
        prefix = "/" + self.service_prefix.strip("/") + "/"
        hub_auth = hub_auth or SharedLookupHubOAuth(cache_max_age=60)
        hub_api = hub_api or HubAPI(
            hub_auth.api_url, hub_auth.api_token, ssl_context=_internal_tls(hub_auth)
        )
        base_url = os.environ.get("JUPYTERHUB_BASE_URL", "/")
        settings = {
            "hub_auth": hub_auth,
            "hub_api": hub_api,
            "service_prefix": prefix,
            "hub_prefix": hub_auth.hub_prefix,
            "base_url": base_url,
            "walltime_warning_minutes": self.walltime_warning_minutes,
            "state_interval": self.state_interval,
            "scheduler_rate": SchedulerRate(self.rate_window),
            "clusters": ClusterDirectory(hub_api),
            "stream_limits": StreamLimits(self.max_streams_per_user, self.max_streams_total),
            "jinja_env": Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True),
            "static_path": str(STATIC),
            "static_url_prefix": prefix + "static/",
            # Without a secret file, a new one per start: users go through the hub's OAuth again.
            "cookie_secret": self.cookie_secret(),
            "xsrf_cookies": True,
            "login_url": hub_auth.login_url,
            "log_function": self._log_request,
        }
        return web.Application(routes(prefix), **settings)

    def _log_request(self, handler: web.RequestHandler) -> None:
        status = handler.get_status()
        level = self.log.info if status < 400 else self.log.warning
        if status < 400 and handler.request.path.startswith(handler.settings["static_url_prefix"]):
            level = self.log.debug
        user = getattr(handler, "_hub_auth_user_cache", None) or {}
        level(
            "%d %s %s (%s) %.1f ms",
            status,
            handler.request.method,
            handler.request.path,
            user.get("name", "-"),
            1000 * handler.request.request_time(),
        )

    async def _sample_metrics(self, app: web.Application) -> None:
        while True:
            await sample_scheduler_rate(app.settings["hub_api"], app.settings["scheduler_rate"])
            await asyncio.sleep(self.metrics_interval)

    async def serve(self) -> None:
        app = self.make_app()
        where = urlsplit(self.service_url)
        app.listen(where.port or 80, address=where.hostname or "127.0.0.1", xheaders=True)
        self.log.info("hubdash dashboard listening on %s%s", self.service_url, self.service_prefix)
        started = time.monotonic()
        sampler = asyncio.ensure_future(self._sample_metrics(app))
        stop = asyncio.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(signum, stop.set)
        orphaned = asyncio.ensure_future(_stop_when_orphaned(stop, self.log))
        try:
            await stop.wait()
        finally:
            sampler.cancel()
            orphaned.cancel()
            self.log.info("hubdash dashboard stops after %.0f s", time.monotonic() - started)

    def start(self) -> None:
        asyncio.run(self.serve())


async def _stop_when_orphaned(stop: asyncio.Event, log: Any, every: float = 2.0) -> None:
    """End with the hub that started us: a hub killed outright sends no SIGTERM, and a
    service left behind would hold the port the restarted hub's service needs."""
    parent = os.getppid()
    while not stop.is_set():
        await asyncio.sleep(every)
        if os.getppid() != parent:
            log.warning("The hub that started this service is gone; stopping")
            stop.set()


def main() -> None:
    HubDash.launch_instance()


def _internal_tls(hub_auth: HubOAuth) -> ssl.SSLContext | None:
    """The hub's internal TLS as handed to this service ($JUPYTERHUB_SSL_*), if it is on."""
    if not (hub_auth.keyfile and hub_auth.certfile):
        return None
    return make_ssl_context(hub_auth.keyfile, hub_auth.certfile, cafile=hub_auth.client_ca)


SECRET_BYTES = 32


def read_or_create_secret(path: Path) -> bytes:
    """The secret in `path` (hex), made there (0600) first if the file does not exist."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        with open(path, "rb") as file:
            text = file.read(4 * SECRET_BYTES).strip()  # bounded: hex of the secret
        try:
            secret = bytes.fromhex(text.decode("ascii"))
        except ValueError:
            secret = b""
        if len(secret) < 16:
            raise TraitError(
                f"HubDash.cookie_secret_file {path} holds no secret of 16 bytes or more in hex"
            ) from None
        return secret
    secret = secrets.token_bytes(SECRET_BYTES)
    with os.fdopen(fd, "w") as file:
        file.write(secret.hex() + "\n")
    return secret
