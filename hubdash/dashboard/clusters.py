"""The hub's clusters as the dashboard knows them: the hub's list (`GET /hub/api/hubdash/clusters`,
read with the service's token and kept a short while), and what a page shows of the cluster a
server was started on.

The list is optional: an older hub has no such route (404), and a hub that fails to answer
leaves the pages without cluster information, never without pages.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from hubdash.dashboard.hubapi import HubAPI, HubAPIError
from hubdash.serverstate import ClusterRef

log = logging.getLogger("hubdash.dashboard.clusters")

CLUSTERS_PATH = "/hubdash/clusters"
# Every open page reads its servers every few seconds; the cluster list changes only when
# the hub's health checks do, so one read serves all pages for this long.
MAX_AGE_SECONDS = 30.0
# Pages wait for the list (coalesced, cached), and it is optional: a hub slow to give it
# must not hold every page for the client's full timeout.
TIMEOUT_SECONDS = 5.0
# What a page says of a server whose cluster the hub no longer lists.
GONE_NOTE = "cluster no longer configured"


@dataclass(frozen=True)
class ClusterHealth:
    """One cluster as the hub lists it, with its last health check."""

    name: str
    title: str = ""
    scheduler: str = ""
    available: bool = True
    last_reachable: float | None = None  # epoch seconds
    checked_at: float | None = None
    message: str = ""

    @property
    def label(self) -> str:
        return self.title or self.name


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _epoch(value: Any) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool) and value > 0:
        return float(value)
    return None


def parse_clusters(data: Any) -> list[ClusterHealth] | None:
    """The hub's answer read into typed entries; None when it is not such an answer. An
    entry without a name is left out; a field of the wrong type reads as empty.

    >>> answer = {"clusters": [{"name": "pbs", "available": "yes", "message": 7}, {}]}
    >>> [(c.name, c.available, c.message) for c in parse_clusters(answer)]
    [('pbs', False, '')]
    >>> parse_clusters("<html>not found</html>") is None
    True
    """
    entries = data.get("clusters") if isinstance(data, dict) else None
    if not isinstance(entries, list):
        return None
    clusters = []
    for entry in entries:
        if not isinstance(entry, dict) or not _text(entry.get("name")):
            log.warning("The hub's cluster list holds an entry without a name: left out")
            continue
        available = entry.get("available")
        clusters.append(
            ClusterHealth(
                name=entry["name"],
                title=_text(entry.get("title")),
                scheduler=_text(entry.get("scheduler")),
                # Only a clear "true" is available: a garbled answer must not look healthy.
                available=available is True,
                last_reachable=_epoch(entry.get("last_reachable")),
                checked_at=_epoch(entry.get("checked_at")),
                message=_text(entry.get("message")),
            )
        )
    return clusters


def cluster_view(
    saved: ClusterRef | None, clusters: list[ClusterHealth] | None
) -> dict[str, Any] | None:
    """What a page shows of a server's cluster (plain JSON values), or None: nothing to show.

    `configured` is False when the hub's list answered without the server's cluster, None
    when there is no list to tell.

    >>> ref = ClusterRef("pbs", title="OpenPBS test cluster")
    >>> cluster_view(ref, [ClusterHealth("slurm")])["note"]
    'cluster no longer configured'
    >>> cluster_view(None, [ClusterHealth("slurm", title="Slurm")])["title"]
    'Slurm'
    >>> cluster_view(None, [ClusterHealth("a"), ClusterHealth("b")]) is None
    True
    """
    if saved is None or not saved.name:
        # Saved before servers named their cluster: the hub's first cluster is theirs, which
        # only a hub of one cluster lets us name for sure.
        if clusters is not None and len(clusters) == 1:
            only = clusters[0]
            return _view(only.name, only.label, only.scheduler, True)
        return None
    configured = None if clusters is None else any(c.name == saved.name for c in clusters)
    return _view(saved.name, saved.title or saved.name, saved.scheduler, configured)


def _view(name: str, title: str, scheduler: str, configured: bool | None) -> dict[str, Any]:
    return {
        "name": name,
        "title": title,
        "scheduler": scheduler,
        "configured": configured,
        "note": GONE_NOTE if configured is False else "",
    }


class ClusterDirectory:
    """The hub's cluster list, read at most once per `max_age` seconds whoever asks, and by
    one request at a time: many pages reading at once share one answer."""

    def __init__(self, api: HubAPI, max_age: float = MAX_AGE_SECONDS) -> None:
        self.api = api
        self.max_age = max_age
        self._clusters: list[ClusterHealth] | None = None
        self._read_at: float | None = None
        self._reading: asyncio.Future[list[ClusterHealth] | None] | None = None
        self._problem: str | None = None  # the last failure logged, so that it is logged once

    async def get(self, max_age: float | None = None) -> list[ClusterHealth] | None:
        """The list (None: the hub gives none), no older than `max_age` (default: the
        directory's own)."""
        max_age = self.max_age if max_age is None else max_age
        if self._read_at is not None and time.monotonic() - self._read_at <= max_age:
            return self._clusters
        if self._reading is None:
            self._reading = asyncio.ensure_future(self._read())
        # Shielded: one page going away must not cancel the read the others wait for.
        return await asyncio.shield(self._reading)

    async def _read(self) -> list[ClusterHealth] | None:
        try:
            return await self._ask()
        finally:
            self._reading = None  # however it ended (cancelled too): the next get() asks anew

    async def _ask(self) -> list[ClusterHealth] | None:
        problem, level = None, logging.WARNING
        try:
            answer = await self.api.call("GET", CLUSTERS_PATH, timeout=TIMEOUT_SECONDS)
            clusters = parse_clusters(answer)
            if clusters is None:
                problem = "its answer is not a list of clusters"
        except HubAPIError as exc:
            clusters, problem = None, str(exc)
            if exc.status == 404:
                level = logging.INFO  # a hub older than its clusters route: nothing wrong
        except Exception as exc:  # any failure leaves the pages without cluster information
            clusters, problem = None, str(exc) or type(exc).__name__
        # Read every half minute: say a problem when it begins, not every time.
        if problem is not None and problem != self._problem:
            log.log(level, "No cluster list from the hub (pages show none): %s", problem)
        self._problem = problem
        self._clusters, self._read_at = clusters, time.monotonic()
        return clusters
