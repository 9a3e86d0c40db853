"""The clusters of a hub of several, as the spawn form and the hub's API show them: which
one the form opens on, what each user last chose on each, and whether each answers.

Reads only what ClusterChoices (clusterchoice.py) and each cluster's LoginHealth
(cluster/health.py) hold; the form renders from the last check, the API checks first.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

log = logging.getLogger("hubdash.clusterform")

# A cluster without a login node to check (the local transport) is always available.
ALWAYS_AVAILABLE: dict[str, Any] = {
    "available": True,
    "checked_at": None,
    "last_reachable": None,
    "message": "",
}


def one_value(value: Any) -> Any:
    """A form's value (a list of them from a POST) as one value: the last."""
    if isinstance(value, list | tuple):
        return value[-1] if value else None
    return value


def cluster_health(spawner: Any) -> dict[str, Any]:
    """The last word on the login node of `spawner`'s cluster, without asking it again."""
    health, fixed = _login_health(spawner)
    return fixed if health is None else dict(health.describe())


async def checked_health(spawner: Any) -> dict[str, Any]:
    """As cluster_health, after a check if the last one is older than the check interval."""
    health, fixed = _login_health(spawner)
    if health is None:
        return fixed
    await health.check()
    return dict(health.describe())


def _login_health(spawner: Any) -> tuple[Any, dict[str, Any]]:
    """The cluster's LoginHealth, or None and the answer that stands for it: always
    available (no login node to check), or broken (a cluster the registry refuses)."""
    try:
        health = spawner.cluster.health
    except Exception:  # a cluster the registry refuses (the hub's start check says why)
        return None, _broken(spawner)
    return health, dict(ALWAYS_AVAILABLE)


def _broken(spawner: Any) -> dict[str, Any]:
    log.exception("Cluster %r could not be looked up", spawner.chosen_cluster)
    return {
        **ALWAYS_AVAILABLE,
        "available": False,
        "message": "the hub could not set this cluster up (see the hub's log)",
    }


async def cluster_list(spawner: Any, choices: Iterable[Any]) -> list[dict[str, Any]]:
    """The API's entries for `choices` (ClusterChoice), each checked, all at once.

    `spawner` is any spawner of the hub: each cluster is seen through its sibling for it.
    """
    choices = list(choices)
    siblings = [spawner.for_cluster(choice.name) for choice in choices]
    healths = await asyncio.gather(*(checked_health(sibling) for sibling in siblings))
    return [
        {"name": choice.name, "title": choice.label, "scheduler": sibling.scheduler, **health}
        for choice, sibling, health in zip(choices, siblings, healths, strict=True)
    ]


def clock_time(epoch: float) -> str:
    """HH:MM of an epoch time, in the hub's local time (the page's script uses the browser's)."""
    return time.strftime("%H:%M", time.localtime(epoch))


def unavailable_mark(health: dict[str, Any]) -> str:
    """What follows a cluster's name in the form's choice when its login node does not answer.

    >>> unavailable_mark({"available": True})
    ''
    >>> unavailable_mark({"available": False, "last_reachable": None})
    ' — unavailable (never reached)'
    """
    if health.get("available", True):
        return ""
    reached = health.get("last_reachable")
    if not reached:
        return " — unavailable (never reached)"
    return f" — unavailable (last reachable {clock_time(reached)})"


def unavailable_text(label: str, health: dict[str, Any]) -> str:
    """The form's warning under the choice for a cluster that does not answer ('' if it does)."""
    if health.get("available", True):
        return ""
    why = f": {health['message']}" if health.get("message") else ""
    return (
        f"{label} is unavailable{why}. A server started there fails at once until it "
        "answers again; this page checks again by itself."
    )


def options_newest_first(spawner: Any) -> list[dict[str, Any]]:
    """This user's saved spawn options: this server's own first, then the user's other
    servers', the latest started first (JupyterHub keeps each server's last user_options)."""
    found = [dict(spawner.user_options)] if spawner.user_options else []
    others = [
        orm_spawner
        for orm_spawner in (getattr(spawner.user, "orm_spawners", None) or {}).values()
        if orm_spawner.user_options
    ]
    others.sort(key=lambda s: s.started or s.last_activity or datetime.min, reverse=True)
    return found + [dict(orm_spawner.user_options) for orm_spawner in others]


def latest_choices_by_cluster(spawner: Any, first: str) -> dict[str, dict[str, Any]]:
    """Each cluster's latest options of this user: this server's own for its cluster, then the
    latest of the user's other servers per cluster. Options that name no cluster (saved
    before the hub had several) count for `first`, where a start without one goes.
    """
    found: dict[str, dict[str, Any]] = {}
    for options in options_newest_first(spawner):
        name = options.get("cluster")
        found.setdefault(name if isinstance(name, str) and name else first, options)
    return found


def opening_cluster(last: dict[str, Any], allowed: list[str]) -> str:
    """The cluster the form opens on: the one of the user's last choices if still allowed,
    else the first allowed ('' if none is).

    >>> opening_cluster({"cluster": "gpu"}, ["cpu", "gpu"]), opening_cluster({}, ["cpu"])
    ('gpu', 'cpu')
    """
    name = last.get("cluster")
    if isinstance(name, str) and name in allowed:
        return name
    return allowed[0] if allowed else ""
