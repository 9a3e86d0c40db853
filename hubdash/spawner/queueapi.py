"""The hub's API behind the spawn form's live queue information, for the logged-in user.

`GET /hub/api/hubdash/queues` (figures of the queues offered to the user) and
`GET /hub/api/hubdash/estimate?queue=…&walltime=…` (start estimate for one choice), both
answered from queueinfo's cache; the scheduler is asked over the user's own transport.
`GET /hub/api/hubdash/check?queue=…` says which of a set of choices (a preset, a launch
link) the rules no longer allow, without asking the scheduler. All three take
`cluster=<name>` (default: the user's first cluster). `GET /hub/api/hubdash/clusters`
lists the clusters with whether each answers, for the form and the dashboard.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from typing import Any

from jupyterhub import orm
from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import needs_scope
from jupyterhub.user import User
from tornado import web

from hubdash.cluster.queueinfo import (
    API_PREFIX,
    QueueFigures,
    QueueInformation,
    StartEstimate,
)
from hubdash.spawner.clusterchoice import ClusterRefused
from hubdash.spawner.clusterform import cluster_list
from hubdash.spawner.jobspawner import JobSpawner
from hubdash.spawner.options import OptionsError, allowed_queues


class _FormInfoHandler(APIHandler):
    """Common ground: the asking user's JobSpawner, its cluster and the user's transport."""

    def _job_spawner(self) -> Any:
        user = self.current_user
        if user is None:
            raise web.HTTPError(403, "Missing or invalid credentials.")
        if not isinstance(user, User):
            raise web.HTTPError(400, "Queue information is for users: ask with a user's token.")
        spawner = user.spawner
        if not isinstance(spawner, JobSpawner):
            raise web.HTTPError(404, "This hub's spawner is not hubdash's JobSpawner.")
        return spawner

    def _asked_spawner(self, spawner: Any) -> Any | None:
        """The spawner that sees the cluster of `?cluster=` (the user's first one without it),
        or None once a refusal is sent: 400 for a cluster the hub does not have, 403 for one
        the user may not use.

        The user's default server's spawner may be running on another cluster: another
        cluster's settings are only ever put in place on a sibling of it (for_cluster), which
        is the spawner itself when its own cluster is asked about.
        """
        try:
            name = spawner.pick_cluster(self.get_query_argument("cluster", None))
        except OptionsError as exc:
            status = 403 if isinstance(exc, ClusterRefused) else 400
            self._send({"available": False, "errors": exc.errors, "message": str(exc)}, status)
            return None
        return spawner.for_cluster(name)

    async def _unavailable(self, spawner: Any) -> str:
        """On a hub of several clusters, why the cluster cannot be asked now ('' if it can):
        its login node does not answer, which the scheduler's own query would find out only
        after SSH's timeouts."""
        return await spawner.unavailable_reason() if spawner.clusters else ""

    def _cluster_parts(self, spawner: Any) -> tuple[Any, QueueInformation, Any]:
        """The user's cluster, its cache, and the transport the user's own spawns use."""
        cluster = spawner.cluster
        return cluster, cluster.queue_info, spawner.user_transport()

    def _choices(self, spawner: Any) -> dict[str, Any]:
        """The choices in the query (one value each), for the cluster `spawner` sees."""
        data = {
            key: values[-1].decode("utf-8", "replace")
            for key, values in self.request.query_arguments.items()
            if key not in ("_xsrf", "cluster")
        }
        data["cluster"] = spawner.chosen_cluster  # its own: nothing else is put in place
        return data

    def _send(self, data: dict[str, Any], status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(data))


class QueuesHandler(_FormInfoHandler):
    """Free/total nodes and pending jobs of every queue the user may choose on a cluster."""

    async def get(self) -> None:
        await self._get(user_name=self.current_user.name if self.current_user else "")

    @needs_scope("servers")
    async def _get(self, user_name: str) -> None:
        spawner = self._asked_spawner(self._job_spawner())
        if spawner is None:
            return
        offered = list(
            allowed_queues(spawner.queue_table, spawner.user.name, spawner.user_groups())
        )
        cluster, cache, transport = self._cluster_parts(spawner)
        down = await self._unavailable(spawner)
        if down:
            figures = QueueFigures(False, message=down, fetched_at=time.time())
        else:
            figures = await cache.figures(lambda: cluster.client.queue_summaries(transport))
        answer = figures_json(figures, offered, cache.ttl)
        if spawner.clusters:
            answer["cluster"] = spawner.chosen_cluster
            answer["cluster_down"] = bool(down)  # a start there fails at once: say so
        self._send(answer)


class EstimateHandler(_FormInfoHandler):
    """When a job of the chosen size would start; the choice passes the form's own rules."""

    async def get(self) -> None:
        await self._get(user_name=self.current_user.name if self.current_user else "")

    @needs_scope("servers")
    async def _get(self, user_name: str) -> None:
        spawner = self._asked_spawner(self._job_spawner())
        if spawner is None:
            return
        try:
            options = spawner.job_options(self._choices(spawner))
        except OptionsError as exc:
            self._send({"errors": exc.errors, "message": str(exc)}, status=400)
            return
        request = spawner.job_request(options)
        cluster, cache, transport = self._cluster_parts(spawner)
        down = await self._unavailable(spawner)
        if down:
            unavailable = StartEstimate(False, message=down, fetched_at=time.time())
            self._send(estimate_json(unavailable, cache.ttl))
            return
        key = spawner.estimate_key(request)
        client = cluster.client

        async def nodes_free() -> int | None:
            # The form's own figures (cached): a guess without a what-if query needs them.
            figures = await cache.figures(lambda: client.queue_summaries(transport))
            summary = figures.queues.get(request.queue)
            return summary.nodes_free if summary is not None else None

        estimate = await cache.estimate(
            key, lambda: client.estimate_start(transport, request, nodes_free)
        )
        self._send(estimate_json(estimate, cache.ttl))


class CheckHandler(_FormInfoHandler):
    """Each choice of a set that today's rules refuse, named as the form would name it: a
    preset or a launch link fills the form, and what no longer fits is said, not changed."""

    async def get(self) -> None:
        await self._get(user_name=self.current_user.name if self.current_user else "")

    @needs_scope("servers")
    async def _get(self, user_name: str) -> None:
        spawner = self._asked_spawner(self._job_spawner())
        if spawner is None:
            return
        try:
            spawner.job_options(self._choices(spawner))
        except OptionsError as exc:
            self._send({"errors": exc.errors})
            return
        self._send({"errors": {}})


class ClustersHandler(APIHandler):
    """The hub's clusters with whether each answers, each checked before the answer: a
    user's own (those they may use), or every one for a hub admin and for a service holding
    `read:servers` (the dashboard, with its own token)."""

    async def get(self) -> None:
        caller = self.current_user
        if caller is None:
            raise web.HTTPError(403, "Missing or invalid credentials.")
        if isinstance(caller, User):
            spawner = caller.spawner
            if not isinstance(spawner, JobSpawner):
                raise web.HTTPError(404, "This hub's spawner is not hubdash's JobSpawner.")
            every = bool(caller.admin) and self.has_scope("read:servers")
            if not every and not self.has_scope(f"read:servers!user={caller.name}"):
                raise web.HTTPError(403, "Listing clusters requires read:servers.")
            choices = list(spawner.cluster_choices.values()) if every else None
        elif isinstance(caller, orm.Service):
            if not self.has_scope("read:servers"):
                raise web.HTTPError(403, "Listing clusters requires read:servers.")
            spawner = self._hub_spawner()
            choices = list(spawner.cluster_choices.values())
        else:
            raise web.HTTPError(403, "Missing or invalid credentials.")
        if choices is None:
            choices = spawner.allowed_clusters()
        clusters = await cluster_list(spawner, choices)
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps({"clusters": clusters}))

    def _hub_spawner(self) -> Any:
        """A spawner of nobody's, to read the hub's clusters from (one per hub, kept)."""
        spawner = self.settings.get(_HUB_SPAWNER)
        if spawner is None:
            spawner_class = self.settings.get("spawner_class")
            if not (isinstance(spawner_class, type) and issubclass(spawner_class, JobSpawner)):
                raise web.HTTPError(404, "This hub's spawner is not hubdash's JobSpawner.")
            spawner = spawner_class(
                config=self.config, hub=self.settings.get("hub"), user=_Nobody(self.settings)
            )
            self.settings[_HUB_SPAWNER] = spawner
        return spawner


# Where ClustersHandler keeps its spawner of nobody's: the hub's tornado settings.
_HUB_SPAWNER = "hubdash_cluster_list_spawner"


class _Nobody:
    """The user of a spawner that only reads the hub's clusters: no name, no groups; the
    hub's settings, where the live clusters are (hubstate.hub_state)."""

    name = ""
    groups: tuple[Any, ...] = ()

    def __init__(self, settings: dict[str, Any]) -> None:
        self.settings = settings


def queue_info_handlers() -> list[tuple[str, type[APIHandler]]]:
    """The routes for `c.JupyterHub.extra_handlers` (JupyterHub puts them under /hub)."""
    return [
        (f"{API_PREFIX}/queues", QueuesHandler),
        (f"{API_PREFIX}/estimate", EstimateHandler),
        (f"{API_PREFIX}/check", CheckHandler),
        (f"{API_PREFIX}/clusters", ClustersHandler),
    ]


def figures_json(figures: QueueFigures, offered: list[str], ttl: float) -> dict[str, Any]:
    """The figures of the offered queues, in the admin's order, for the page's script.

    >>> from hubdash.schedulers.base import QueueSummary
    >>> f = QueueFigures(True, {"debug": QueueSummary("debug", 2, 1, 7)}, fetched_at=time.time())
    >>> figures_json(f, ["debug", "gpu"], 30)["queues"]  # doctest: +NORMALIZE_WHITESPACE
    [{'name': 'debug', 'listed': True, 'nodes_free': 1, 'nodes_total': 2, 'jobs_pending': 7,
      'jobs_running': None, 'state': ''},
     {'name': 'gpu', 'listed': False}]
    """
    queues = []
    for name in offered:
        summary = figures.queues.get(name)
        if summary is None:
            queues.append({"name": name, "listed": False})
            continue
        queues.append(
            {
                "name": name,
                "listed": True,
                "nodes_free": summary.nodes_free,
                "nodes_total": summary.nodes_total,
                "jobs_pending": summary.jobs_pending,
                "jobs_running": summary.jobs_running,
                "state": summary.state,
            }
        )
    return {
        "available": figures.available,
        "message": figures.message,
        "queues": queues if figures.available else [],
        "age_seconds": round(max(0.0, time.time() - figures.fetched_at)),
        "ttl_seconds": ttl,
    }


def estimate_json(estimate: StartEstimate, ttl: float) -> dict[str, Any]:
    """The estimate for the page's script; times are the cluster's local time, as it printed them.

    >>> e = StartEstimate(True, start=datetime(2026, 1, 2, 3, 4, 5), fetched_at=time.time())
    >>> estimate_json(e, 30)["start"]
    '2026-01-02T03:04:05'
    """
    seconds = None
    if estimate.start is not None:
        # The hub and the cluster keep the same local time (Slurm prints no zone).
        seconds = max(0, round((estimate.start - datetime.now()).total_seconds()))
    return {
        "available": estimate.available,
        "start": estimate.start.isoformat() if estimate.start else None,
        "basis": estimate.basis,
        "seconds_from_now": seconds,
        "refused": estimate.refused,
        "message": estimate.message,
        "age_seconds": round(max(0.0, time.time() - estimate.fetched_at)),
        "ttl_seconds": ttl,
    }
