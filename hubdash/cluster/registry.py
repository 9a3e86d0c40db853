"""ClusterRegistry: the hub's live clusters, one per configuration.

Every spawner of one hub asks the same registry, so all users' servers on a cluster share
its monitor, transports and throttle; a hub may configure several clusters.
"""

from __future__ import annotations

import asyncio
import logging

from hubdash.cluster.cluster import Cluster
from hubdash.cluster.config import ClusterConfig


class ClusterRegistry:
    """Config -> its one live Cluster, created on first use."""

    def __init__(self) -> None:
        self._clusters: dict[ClusterConfig, Cluster] = {}

    def cluster(self, config: ClusterConfig, log: logging.Logger | None = None) -> Cluster:
        """The live Cluster for `config` (checked when first made)."""
        cluster = self._clusters.get(config)
        if cluster is None:
            config.check()
            cluster = self._clusters[config] = Cluster(config, log=log)
        return cluster

    def __iter__(self):
        return iter(list(self._clusters.values()))

    async def close(self) -> None:
        clusters, self._clusters = list(self._clusters.values()), {}
        await asyncio.gather(*(c.close() for c in clusters), return_exceptions=True)
