"""What the admin overview shows: every user's servers with their clusters (all, or one cluster's
only), the hub's scheduler query rate (of that cluster) and the clusters' health. Pure data
handling: the page's handler asks the hub, this turns the answers into the page's fields.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hubdash.dashboard.clusters import ClusterHealth
from hubdash.dashboard.views import server_view


def admin_overview(
    users: list[dict[str, Any]],
    clusters: list[ClusterHealth] | None,
    rate: dict[str, Any] | None,
    chosen: str,
    now: float,
    idle: dict[str, dict[str, float]] | None = None,
) -> dict[str, Any]:
    """The overview page's fields: `users` as the hub lists them (active servers), the hub's
    cluster list (None: it gave none), the scheduler rate so far, and the cluster to show
    (empty: all), and the hub's idle-stop totals by cluster (None: unknown)."""
    rows = []
    for user in sorted(users, key=lambda u: u.get("name", "")):
        for name, model in sorted((user.get("servers") or {}).items()):
            view = server_view(user["name"], dict(model, name=name), now, clusters)
            view["age_seconds"] = now - view["submitted_at"] if view["submitted_at"] else None
            rows.append(view)
    counts: dict[str, int] = {}
    for row in rows:
        if row["cluster"]:
            counts[row["cluster"]["name"]] = counts.get(row["cluster"]["name"], 0) + 1
    choices = cluster_choices(rows, clusters)
    health = None
    if clusters is not None:
        health = [
            health_row(cluster, counts.get(cluster.name, 0), now)
            for cluster in clusters
            if not chosen or cluster.name == chosen
        ]
    if chosen:
        rows = [row for row in rows if row["cluster"] and row["cluster"]["name"] == chosen]
        rate = rate_of_cluster(rate, chosen)
    labels = {choice["name"]: choice["label"] for choice in choices}
    return {
        "idle": idle_summary(idle, chosen),
        "rows": rows,
        "rate": rate,
        "health": health,
        "cluster_choices": choices,
        "chosen": chosen,
        "chosen_label": labels.get(chosen, chosen),
        # A name from a stale link or a typo: the page says so rather than show an empty table.
        "unknown_cluster": bool(chosen) and chosen not in labels,
    }


def idle_summary(idle: dict[str, dict[str, float]] | None, chosen: str) -> dict[str, Any] | None:
    """Idle servers stopped and node-hours given back since the hub started (of one cluster,
    or all); None when the hub's counters could not be read.

    >>> idle = {"a": {"stops": 2.0, "node_hours": 1.5}, "b": {"stops": 1.0, "node_hours": 2}}
    >>> idle_summary(idle, "")
    {'stops': 3, 'node_hours': 3.5}
    >>> idle_summary({"a": {"stops": 2.0, "node_hours": 1.5}}, "b")
    {'stops': 0, 'node_hours': 0.0}
    """
    if idle is None:
        return None
    rows = [row for name, row in idle.items() if not chosen or name == chosen]
    return {
        "stops": int(sum(row["stops"] for row in rows)),
        "node_hours": round(float(sum(row["node_hours"] for row in rows)), 2),
    }


def cluster_choices(
    rows: list[dict[str, Any]], clusters: list[ClusterHealth] | None
) -> list[dict[str, str]]:
    """The clusters to filter by: those the servers run on and those the hub lists (its
    title wins: it is the current config), by name.

    >>> rows = [{"cluster": {"name": "old", "title": "Old"}}, {"cluster": None}]
    >>> cluster_choices(rows, [ClusterHealth("pbs", title="PBS")])
    [{'name': 'old', 'label': 'Old (old)'}, {'name': 'pbs', 'label': 'PBS (pbs)'}]
    """
    titles = {row["cluster"]["name"]: row["cluster"]["title"] for row in rows if row["cluster"]}
    titles.update({cluster.name: cluster.label for cluster in clusters or []})
    return [
        {"name": name, "label": name if title == name else f"{title} ({name})"}
        for name, title in sorted(titles.items())
    ]


def rate_of_cluster(rate: dict[str, Any] | None, cluster: str) -> dict[str, Any] | None:
    """The scheduler rate of one cluster only (the metric's `cluster` label is its name).

    >>> a = {"cluster": "a", "count": 60, "per_second": 1.0, "per_minute": 60.0}
    >>> rate = {"per_second": 2.0, "per_minute": 120.0, "window_seconds": 60.0, "by_cluster": [a],
    ...         "by_command": [{"cluster": "a", "command": "qstat"}, {"cluster": "b"}]}
    >>> mine = rate_of_cluster(rate, "a")
    >>> mine["per_minute"], mine["by_command"]
    (60.0, [{'cluster': 'a', 'command': 'qstat'}])
    >>> rate_of_cluster(rate, "c")["per_minute"]
    0.0
    """
    if rate is None:
        return None
    mine = [row for row in rate["by_cluster"] if row["cluster"] == cluster]
    return dict(
        rate,
        per_second=mine[0]["per_second"] if mine else 0.0,
        per_minute=mine[0]["per_minute"] if mine else 0.0,
        by_cluster=mine,
        by_command=[row for row in rate["by_command"] if row["cluster"] == cluster],
    )


def health_row(cluster: ClusterHealth, servers: int, now: float) -> dict[str, Any]:
    """One line of the cluster health table."""
    reachable = cluster.last_reachable
    return {
        "name": cluster.name,
        "title": cluster.label,
        "scheduler": cluster.scheduler,
        "available": cluster.available,
        "message": cluster.message,
        "servers": servers,
        "last_reachable_ago": max(0.0, now - reachable) if reachable else None,
        "last_reachable_at": utc_text(reachable),
        "checked_ago": max(0.0, now - cluster.checked_at) if cluster.checked_at else None,
    }


def utc_text(when: float | None) -> str:
    """An epoch time as an admin reads it, in UTC (the dashboard does not know their zone).

    >>> utc_text(0.5), utc_text(None)
    ('1970-01-01 00:00:00 UTC', '')
    """
    if when is None:
        return ""
    return datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
