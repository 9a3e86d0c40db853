"""Idle reclaim: jupyterhub-idle-culler run as a managed service of the hub (add_idle_culler),
and what a server stopped after idling says of it: how long it sat idle and the node-hours of
walltime its stop gave back, on its card and status page, and added up on the admin overview
(hubdash.metrics' idle counters)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import Any

from traitlets import Integer
from traitlets.config import LoggingConfigurable

from hubdash.metrics import IDLE_NODE_HOURS, IDLE_STOPS
from hubdash.serverstate import JobOutcome, JobRecord

CULLER_SERVICE = "idle-culler"
# What jupyterhub-idle-culler needs to find idle servers and stop them (its README).
CULLER_SCOPES = ["list:users", "read:users:activity", "read:servers", "delete:servers"]


class IdleSettings(LoggingConfigurable):
    """A mixin of JobSpawnerSettings: how a stop after idling is told apart."""

    idle_culler_timeout = Integer(
        0,
        min=0,
        help="""Seconds without activity after which the idle culler stops a server: its
        `--timeout`, which add_idle_culler() sets here. A server stopped after idling at least
        this long is reported as such ("stopped after N minutes idle", with the node-hours of
        walltime given back) on its card and status page and in the admin overview's idle
        totals. 0: no culler runs, and no stop is reported as idle.""",
    ).tag(config=True)


def add_idle_culler(
    c: Any, timeout: int = 3600, every: int | None = None, *, python: str = sys.executable
) -> None:
    """Run jupyterhub-idle-culler as a managed service that stops servers idle for `timeout`
    seconds (looking every `every` seconds, default a tenth of it, at most 5 minutes), with
    only the scopes it needs; JobSpawner.idle_culler_timeout follows. A culled server's stop
    cancels its job like any stop. Call it after setting JupyterHub.internal_ssl: with it,
    the culler talks to the hub's API with the hub's internal certificates."""
    if timeout < 1:
        raise ValueError(f"add_idle_culler: timeout must be seconds above 0, not {timeout!r}")
    every = every or max(1, min(300, timeout // 10))
    command = [python, "-m", "jupyterhub_idle_culler", f"--timeout={timeout}"]
    command.append(f"--cull-every={every}")
    if c.JupyterHub.get("internal_ssl", False):
        # The hub's API then speaks TLS only to holders of the hub's own certificates.
        certs = c.JupyterHub.get("internal_certs_location", "internal-ssl")
        command += ["--ssl-enabled=true", f"--internal-certs-location={certs}"]
    services = [s for s in _listed(c, "services") if s.get("name") != CULLER_SERVICE]
    services.append({"name": CULLER_SERVICE, "command": command})
    c.JupyterHub.services = services
    roles = [r for r in _listed(c, "load_roles") if r.get("name") != CULLER_SERVICE]
    roles.append({"name": CULLER_SERVICE, "scopes": CULLER_SCOPES, "services": [CULLER_SERVICE]})
    c.JupyterHub.load_roles = roles
    c.JobSpawner.idle_culler_timeout = timeout


def _listed(c: Any, name: str) -> list[dict]:
    return list(c.JupyterHub[name]) if name in c.JupyterHub else []


def epoch_of(when: datetime | None) -> float | None:
    """JupyterHub's activity times are naive UTC datetimes."""
    if when is None:
        return None
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()


def node_hours_left(job: JobRecord, now: float) -> float:
    """Nodes × walltime not used yet: what stopping the job now gives back to the cluster.

    >>> node_hours_left(JobRecord("1", node_count=2, walltime_seconds=7200, started_at=0.0), 3600)
    2.0
    >>> node_hours_left(JobRecord("1", node_count=2, walltime_seconds=7200), 3600)
    0.0
    """
    if job.started_at is None or not job.walltime_seconds:
        return 0.0
    left = max(0.0, job.started_at + job.walltime_seconds - now)
    return max(1, job.node_count) * left / 3600


def stopped_outcome(
    job: JobRecord, last_activity: float | None, idle_timeout: int, now: float
) -> JobOutcome:
    """How a server's job ended when the hub stopped it: after idling (at least
    `idle_timeout` seconds since `last_activity`), or at someone's request."""
    idle = now - last_activity if last_activity is not None else None
    if not idle_timeout or idle is None or idle < idle_timeout:
        return JobOutcome(
            job_id=job.job_id,
            state="cancelled",
            message=f"Job {job.job_id} was stopped from the hub.",
            ended_at=now,
        )
    returned = round(node_hours_left(job, now), 2)
    minutes = int(idle // 60)
    return JobOutcome(
        job_id=job.job_id,
        state="cancelled",
        message=(
            f"Job {job.job_id} was stopped after {minutes} minute{'s' * (minutes != 1)} idle; "
            f"{returned:g} node-hours of walltime given back."
        ),
        ended_at=now,
        idle_seconds=round(idle, 1),
        node_hours_returned=returned,
    )


def count_idle_stop(outcome: JobOutcome, cluster: str) -> None:
    """Add an idle stop to the hub's counters (the admin overview's totals)."""
    if outcome.idle_seconds is not None:
        IDLE_STOPS.labels(cluster=cluster).inc()
        IDLE_NODE_HOURS.labels(cluster=cluster).inc(outcome.node_hours_returned or 0.0)
