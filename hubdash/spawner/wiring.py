"""The one place that turns the spawner's settings into a ClusterConfig and a user's keys.

The spawner, the form's queue API and the admin's job-script preview all get their
cluster through here (JobSpawner.cluster_config / .cluster), never by building parts.
"""

from __future__ import annotations

from typing import Any

from hubdash.cluster.config import ClusterConfig
from hubdash.cluster.monitor import MonitorSettings
from hubdash.transport.credentials import auth_state_key_source
from hubdash.transport.factory import LoginSettings, UserKeys

# The adapter options each scheduler takes, by the setting that gives each one. Read both
# ways: settings -> ClusterConfig here, a saved ClusterConfig -> settings in
# settings_of_options (a server whose cluster was since removed from the config).
SCHEDULER_OPTIONS: dict[str, dict[str, str]] = {
    "pbs": {"flavor": "pbs_flavor", "resource_spelling": "pbs_resource_spelling"},
    "sge": {
        "parallel_environment": "sge_parallel_environment",
        "slots_per_node": "sge_slots_per_node",
    },
}
# Options left out when their setting is empty: the adapter then picks its own.
_OPTIONAL = frozenset({"resource_spelling"})


def scheduler_options_of(settings: Any) -> dict[str, str]:
    """The adapter options of the settings' scheduler, as text."""
    options = {}
    for option, setting in SCHEDULER_OPTIONS.get(settings.scheduler, {}).items():
        value = getattr(settings, setting)
        if value or option not in _OPTIONAL:
            options[option] = str(value)
    return options


def settings_of_options(scheduler: str, options: dict[str, str]) -> dict[str, Any]:
    """The settings that give these saved adapter options (unknown options left out).

    >>> settings_of_options("sge", {"slots_per_node": "4", "nodes": "2"})
    {'sge_slots_per_node': 4}
    """
    settings: dict[str, Any] = {}
    for option, setting in SCHEDULER_OPTIONS.get(scheduler, {}).items():
        if option in options:
            value = options[option]
            settings[setting] = int(value) if setting == "sge_slots_per_node" else value
    return settings


def cluster_config_of(settings: Any) -> ClusterConfig:
    """The cluster the settings in place on a spawner (JobSpawnerSettings) describe."""
    options = scheduler_options_of(settings)
    return ClusterConfig(
        name=getattr(settings, "chosen_cluster", "") or settings.login_host or "local",
        title=getattr(settings, "cluster_title", ""),
        login=LoginSettings(
            transport=settings.transport,
            host=settings.login_host,
            port=settings.login_port,
            known_hosts=settings.known_hosts,
            max_sessions=settings.max_sessions,
            idle_timeout=settings.ssh_idle_timeout,
            max_concurrent_connects=settings.ssh_max_concurrent_connects,
            connects_per_second=settings.ssh_connects_per_second,
            local_command_prefix=tuple(settings.local_command_prefix),
        ),
        scheduler=settings.scheduler,
        scheduler_options=tuple(sorted(options.items())),
        bin_dir=settings.scheduler_bin_dir,
        command_timeout=settings.command_timeout,
        monitor=MonitorSettings(
            interval=settings.monitor_interval,
            starting_interval=settings.monitor_starting_interval,
            detail_interval=settings.monitor_detail_interval,
            unknown_grace=settings.monitor_unknown_grace,
            max_lookups_per_minute=settings.monitor_max_lookups_per_minute,
        ),
        queue_info_ttl=settings.queue_info_ttl,
        check_interval=settings.cluster_check_interval,
    )


def user_keys_of(settings: Any, user: Any) -> UserKeys:
    """The keys the hub logs in with as this hub user: from auth_state, or key files."""
    if settings.ssh_key_from_auth_state:
        return UserKeys(
            key_source=auth_state_key_source(
                user, settings.ssh_key_from_auth_state, settings.ssh_cert_from_auth_state
            )
        )
    certs = (settings.ssh_cert_path.format(username=user.name),) if settings.ssh_cert_path else ()
    return UserKeys(key_files=(settings.ssh_key_path.format(username=user.name),), cert_files=certs)
