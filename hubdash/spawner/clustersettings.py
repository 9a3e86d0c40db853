"""JobSpawner's settings for several clusters: the `clusters` table and the login-node check."""

from __future__ import annotations

from typing import Any

from traitlets import Dict, Float, TraitError, validate
from traitlets.config import LoggingConfigurable


class ClusterSettings(LoggingConfigurable):
    """A mixin of JobSpawnerSettings: several clusters from one hub."""

    clusters = Dict(
        help="""Several clusters from one hub, by name: each entry holds a 'title' (what
        users read), 'groups' (hub groups that may use it; empty or missing: everyone) and
        any JobSpawner setting for that cluster alone, e.g.

            c.JobSpawner.clusters = {
                "cpu": {"title": "CPU cluster", "login_host": "login.cpu.example.org",
                        "scheduler": "slurm", "queues": {...}},
                "gpu": {"title": "GPU cluster", "login_host": "gpu-login.example.org",
                        "scheduler": "pbs", "pbs_flavor": "pbspro", "groups": ["gpu-users"],
                        "known_hosts": "/etc/jupyterhub/gpu_known_hosts"},
            }

        Every setting a cluster does not give is the spawner-wide one (`c.JobSpawner.<name>`).
        The user picks the cluster first in the form (a user with one cluster does not see the
        choice); the REST API and opt- URLs take it as the option 'cluster'. A server keeps its
        cluster in its saved state. Empty (the default): one cluster, from the spawner-wide
        settings, named after login_host. Names: letters, digits, '.', '_' and '-'.""",
    ).tag(config=True)

    cluster_check_interval = Float(
        30.0,
        help="""Seconds between checks that each cluster's login node answers (a TCP
        connection and the SSH server's greeting, no login). A cluster whose login node does
        not answer is shown as unavailable in the form and the admin overview, spawns on it
        fail at once saying so, and it comes back by itself once it answers again.""",
    ).tag(config=True)

    @validate("cluster_check_interval")
    def _validate_cluster_check_interval(self, proposal: dict) -> float:
        value = proposal["value"]
        if value < 1:
            raise TraitError(f"JobSpawner.cluster_check_interval must be 1 or more, not {value}")
        return value

    @validate("clusters")
    def _validate_clusters(self, proposal: dict) -> dict[str, Any]:
        # Only the shape here; each entry's settings are checked when the hub starts
        # (JobSpawner.check_config), where every other setting is known.
        value = proposal["value"]
        for name, entry in value.items():
            if not isinstance(entry, dict):
                raise TraitError(
                    f"JobSpawner.clusters[{name!r}] must be a dict of settings, "
                    f"not {type(entry).__name__}"
                )
        return value
