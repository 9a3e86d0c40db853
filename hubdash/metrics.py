"""Prometheus metrics of the cluster layer, exported on the hub's own /hub/metrics.

Names are a contract with the dashboard's admin page: change them together.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

SCHEDULER_COMMANDS = Counter(
    "hubdash_scheduler_commands",
    "Scheduler commands the hub ran (sbatch, squeue, qstat, scancel ...), by outcome",
    ["cluster", "command", "outcome"],
)
SCHEDULER_COMMAND_SECONDS = Histogram(
    "hubdash_scheduler_command_seconds",
    "Wall time of one scheduler command, including the SSH round trip",
    ["cluster", "command"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
SSH_CONNECTIONS = Counter(
    "hubdash_ssh_connections",
    "SSH connections the hub opened to login nodes, by outcome",
    ["host", "outcome"],
)
TRACKED_JOBS = Gauge(
    "hubdash_tracked_jobs",
    "Jobs the hub follows, by state",
    ["cluster", "state"],
)
QUEUE_INFO_ANSWERS = Counter(
    "hubdash_queue_info_answers",
    "Answers the spawn form got about queues and start estimates: from the cache, freshly "
    "fetched, or unavailable (the scheduler or the connection failed)",
    ["cluster", "kind", "source"],
)

CLUSTER_AVAILABLE = Gauge(
    "hubdash_cluster_available",
    "1 while the cluster's login node answers (its SSH greeting), 0 while it does not",
    ["cluster"],
)


def commands_run(cluster: str) -> dict[str, int]:
    """Scheduler commands run so far for one cluster, by command (all outcomes): what the
    hub's /metrics shows, read in-process (benchmarks and tests count queries with it)."""
    counts: dict[str, int] = {}
    for metric in SCHEDULER_COMMANDS.collect():
        for sample in metric.samples:
            if sample.name.endswith("_total") and sample.labels.get("cluster") == cluster:
                command = sample.labels["command"]
                counts[command] = counts.get(command, 0) + int(sample.value)
    return counts


IDLE_STOPS = Counter(
    "hubdash_idle_stops",
    "Servers stopped after idling at least JobSpawner.idle_culler_timeout",
    ["cluster"],
)
IDLE_NODE_HOURS = Counter(
    "hubdash_idle_node_hours_returned",
    "Node-hours of walltime given back by stopping idle servers (nodes x walltime left)",
    ["cluster"],
)
