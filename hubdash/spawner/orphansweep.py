"""The hub's start-up sweep of its orphaned jobs: live jobs named as this hub names them
('<prefix>-<hub id>-<cluster user>-...') that no server's saved state claims.

They come from a hub that died between the scheduler's answer and saving the job id, a
server renamed or deleted while its job lived, a cancel that never went through. Each is
cancelled as its owner and logged with owner and name (JobSpawner.orphan_sweep = 'list'
only logs them). The sweep asks once per cluster and cluster user who had a server of this
hub in the last SWEEP_DAYS days; another hub's jobs never match (hub_id).
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from typing import Any

# Through the hub's own logger: its format, its level, its file.
log = logging.getLogger("JupyterHub.hubdash")

SWEEP_DAYS = 30


@dataclass(frozen=True)
class Orphan:
    cluster: str
    owner: str  # the cluster user
    job_id: str
    job_name: str


def is_orphan(
    job_id: str, name: str, prefix: str, claimed: set[str], starting: set[str], same_job: Any
) -> bool:
    """Whether a listed job is this hub's and nobody's: named with `prefix`, its id claimed
    by no saved state, and its name not that of a server being started right now (whose id
    may not be saved yet).

    >>> same = str.__eq__
    >>> is_orphan("7", "hub-h1-alice-x", "hub-h1-alice-", set(), set(), same)
    True
    >>> is_orphan("7", "hub-h2-alice-x", "hub-h1-alice-", set(), set(), same)
    False
    >>> is_orphan("7", "hub-h1-alice-x", "hub-h1-alice-", {"7"}, set(), same)
    False
    >>> is_orphan("7", "hub-h1-alice-x", "hub-h1-alice-", set(), {"hub-h1-alice-x"}, same)
    False
    """
    if not name.startswith(prefix) or name in starting:
        return False
    return not any(same_job(job_id, known) for known in claimed)


async def sweep_orphans(app: Any) -> list[Orphan]:
    """Find (and, unless the setting says 'list', cancel) this hub's orphaned jobs."""
    # JobSpawners only (by what they have: importing the class here would make a circle).
    spawners = [s for s in _recent_spawners(app) if hasattr(s, "claimed_job_ids")]
    if not spawners or spawners[0].orphan_sweep == "off":
        return []
    mode = spawners[0].orphan_sweep
    groups: dict[tuple[Any, str], list[Any]] = {}
    for spawner in spawners:
        try:
            key = (spawner.cluster_config, spawner.cluster_username)
        except Exception as exc:  # noqa: BLE001 - one bad record must not stop the sweep
            log.warning("Orphan sweep skips %s: %s", spawner._log_name, exc)
            continue
        groups.setdefault(key, []).append(spawner)
    found: list[Orphan] = []
    for (config, owner), members in groups.items():
        found += await _sweep_user(app, config.name, owner, members, mode)
    log.info("Orphan sweep: %d orphaned job(s) %s", len(found), _done(mode))
    return found


def _done(mode: str) -> str:
    return "listed (orphan_sweep = 'list')" if mode == "list" else "cancelled"


async def _sweep_user(
    app: Any, cluster_name: str, owner: str, members: list[Any], mode: str
) -> list[Orphan]:
    first = members[0]
    prefix = f"{first.job_name_stem}-"  # as the spawner names jobs (PBS Pro: '.' as '_')
    cluster = first.cluster
    transport = first.user_transport()
    try:
        jobs = await cluster.client.user_jobs(transport, owner)
    except Exception as exc:  # noqa: BLE001 - logged; the next start sweeps again
        log.warning("Orphan sweep could not list %s's jobs on %s: %s", owner, cluster_name, exc)
        return []
    # Claims read after the listing: a job submitted meanwhile is claimed by now, or its
    # server is still starting.
    users = {spawner.user for spawner in members}
    live = [
        s for user in users for s in list(user.spawners.values()) if hasattr(s, "claimed_job_ids")
    ]
    claimed = set().union(*(s.claimed_job_ids() for s in [*members, *live]))
    starting = {s.job_name for s in live if s.pending}
    orphans = [
        Orphan(cluster_name, owner, job_id, name)
        for job_id, name in sorted(jobs.items())
        if is_orphan(job_id, name, prefix, claimed, starting, cluster.adapter.same_job)
    ]
    for orphan in orphans:
        if mode == "list":
            log.warning(
                "Orphaned job %s (%s) of %s on %s: no server claims it (not cancelled: "
                "orphan_sweep = 'list')",
                orphan.job_id,
                orphan.job_name,
                owner,
                cluster_name,
            )
            continue
        try:
            await cluster.client.cancel(transport, [orphan.job_id])
        except Exception as exc:  # noqa: BLE001 - logged; the next start sweeps again
            log.error("Could not cancel orphaned job %s of %s: %s", orphan.job_id, owner, exc)
            continue
        log.warning(
            "Cancelled orphaned job %s (%s) of %s on %s: no server of this hub claims it",
            orphan.job_id,
            orphan.job_name,
            owner,
            cluster_name,
        )
    return orphans


def _recent_spawners(app: Any) -> list[Any]:
    """The spawner of every server active within SWEEP_DAYS or holding a job record."""
    from jupyterhub import orm

    since = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(
        days=SWEEP_DAYS
    )
    rows = app.db.query(orm.Spawner).filter(orm.Spawner.user_id.isnot(None)).all()
    spawners = []
    for row in rows:
        recent = row.last_activity is not None and row.last_activity > since
        if recent or (row.state or {}).get("job") or (row.state or {}).get("resume"):
            user = app.users[row.user]
            spawners.append(user.spawners[row.name])
    return spawners
