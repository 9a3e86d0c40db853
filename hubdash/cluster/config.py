"""ClusterConfig: everything the admin configured for one cluster, frozen and checked once.

Made from the spawner's settings when the hub starts (`JobSpawner.cluster_config`); the
registry keeps one live Cluster per distinct configuration.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from hubdash.cluster.monitor import MonitorSettings
from hubdash.schedulers import SCHEDULERS, adapter_for
from hubdash.schedulers.base import SchedulerAdapter
from hubdash.transport.factory import LoginSettings


@dataclass(frozen=True)
class ClusterConfig:
    """One cluster as configured: login node, scheduler, and how hard the hub may ask it."""

    name: str = "default"
    login: LoginSettings = field(default_factory=LoginSettings)
    scheduler: str = "slurm"
    scheduler_options: tuple[tuple[str, str], ...] = ()  # e.g. (("flavor", "torque"),)
    bin_dir: str = ""  # where the scheduler's commands live; '' for the login PATH
    command_timeout: float = 30.0
    monitor: MonitorSettings = field(default_factory=MonitorSettings)
    queue_info_ttl: float = 30.0
    check_interval: float = 30.0  # seconds between checks that the login node answers
    title: str = ""  # what users read; the name when empty

    def check(self, where: str = "JobSpawner") -> None:
        """ValueError naming the setting when this configuration cannot work."""
        if self.scheduler not in SCHEDULERS:
            raise ValueError(
                f"{where}.scheduler must be one of {', '.join(SCHEDULERS)}, not {self.scheduler!r}"
            )
        self.login.check(where)
        if self.command_timeout <= 0:
            raise ValueError(f"{where}.command_timeout must be above 0")
        if self.queue_info_ttl < 0:
            raise ValueError(f"{where}.queue_info_ttl must be 0 or more")
        self.adapter()  # an option the adapter refuses (an unknown PBS flavour, say)

    def adapter(self) -> SchedulerAdapter:
        """A new adapter for this cluster's scheduler (pure: it runs nothing)."""
        return adapter_for(self.scheduler, **dict(self.scheduler_options))
