"""What the hub process needs besides the spawner class: the form's queue-information API,
a check of the spawner's settings when the hub starts, servers kept across restarts, and
the work done once the hub serves (hubrestart.py).

Call `setup_hub(c)` at the end of jupyterhub_config.py. Wires things up; runs nothing itself.
"""

from __future__ import annotations

import copy
import sys
from typing import Any

from traitlets.config import Config
from traitlets.config.loader import LazyConfigValue

from hubdash.spawner.hubdatabase import use_write_ahead_log
from hubdash.spawner.hubrestart import schedule_after_start
from hubdash.spawner.jobspawner import JobSpawner
from hubdash.spawner.keptproxy import KeptProxy
from hubdash.spawner.queueapi import queue_info_handlers

CLEANUP_WARNING = (
    "c.JupyterHub.cleanup_servers is True: every time the hub stops (a restart, an upgrade, "
    "systemctl stop) it stops every user's server, which cancels every batch job, running "
    "notebooks and jobs that waited hours in the queue alike. Leave it unset (setup_hub sets "
    "it to False) unless that is what you want (docs/deployment.md, 'Restarts and upgrades')."
)


def setup_hub(c: Any) -> None:
    """Serve /hub/api/hubdash/* to the spawn form, stop the hub at start on a bad setting,
    and keep every job, and every open notebook's connection, across hub restarts.

    JupyterHub's default `cleanup_servers = True` stops every server when the hub stops,
    which for batch jobs means cancelling them all: it is set to False here unless the
    admin set it (a warning at start then says what it does). Unless the admin chose a
    proxy class, the proxy is KeptProxy and outlives the hub (`cleanup_proxy = False`),
    and the next hub keeps it: browser connections to the notebooks never go through the
    hub process, so with the forward keeper they do not notice a restart.

    JupyterHub builds a spawner only when a user first spawns, so a setting that cannot
    work (a queue table with a typo, say) would otherwise surface in front of a user.
    Here one JobSpawner is built from the finished config as soon as the hub has read it;
    its TraitError is then JupyterHub's own "bad config": logged with the setting's name,
    and the hub exits with status 1. Its `hub_database_wal` then puts the hub's SQLite
    database in WAL mode as JupyterHub opens it (hubdatabase.py).
    """
    handlers = c.JupyterHub.extra_handlers if "extra_handlers" in c.JupyterHub else []
    if isinstance(handlers, LazyConfigValue):  # `.append(...)` on the (empty) default
        handlers = handlers.get_value([])
    routes = [route for route in queue_info_handlers() if route not in handlers]
    c.JupyterHub.extra_handlers = [*handlers, *routes]
    if "cleanup_servers" not in c.JupyterHub:
        c.JupyterHub.cleanup_servers = False
    if "proxy_class" not in c.JupyterHub:
        # The proxy outlives the hub and the next hub keeps it (with the forward keeper,
        # JobSpawner.forward_keeper, a restart is unseen by an open notebook).
        c.JupyterHub.proxy_class = KeptProxy
        if "cleanup_proxy" not in c.JupyterHub:
            c.JupyterHub.cleanup_proxy = False
    app_module = sys.modules.get("jupyterhub.app")
    if app_module is not None and app_module.JupyterHub.initialized():
        _check_when_configured(app_module.JupyterHub.instance(), c)


# The config objects setup_hub saw, kept on the hub app itself: a file loaded with
# load_subconfig has its own.
_SEEN_CONFIGS = "_hubdash_configs"


def _check_when_configured(app: Any, c: Any) -> None:
    """Check the spawner once JupyterHub sets `spawner_class` from the config just read.

    At that moment `app.config` does not hold the new file yet (traitlets merges it
    afterwards), so the check reads the file's own config, with the command line on top.
    """
    configs = getattr(app, _SEEN_CONFIGS, None)
    if configs is None:
        configs = []
        setattr(app, _SEEN_CONFIGS, configs)
    configs.append(c)
    if len(configs) > 1:
        return  # observed already

    def check(_change: Any = None) -> None:
        chosen = app.spawner_class
        if isinstance(chosen, type) and issubclass(chosen, JobSpawner):
            merged = Config()
            for config in [app.config, *configs, app.cli_config]:
                merged.merge(copy.deepcopy(config))
            spawner = chosen(config=merged)
            spawner.check_config()
            if spawner.hub_database_wal:  # before JupyterHub opens its database
                use_write_ahead_log()
            internal_ssl = bool(merged.JupyterHub.get("internal_ssl", False))
            for warning in channel_warnings(spawner, internal_ssl):
                app.log.warning(warning)
            if merged.JupyterHub.get("cleanup_servers", False):  # setup_hub set it unless given
                app.log.warning(CLEANUP_WARNING)
            app.log.info(
                "hubdash: hub id %r (job names '%s-%s-<user>-<server>')",
                spawner.hub_identity,
                spawner.job_name_prefix,
                spawner.hub_identity,
            )
            schedule_after_start(app)

    app.observe(check, names="spawner_class")


def channel_warnings(spawner: JobSpawner, internal_ssl: bool) -> list[str]:
    """What in the job's channel to the hub other cluster users could abuse, said once at start."""
    if not spawner.forward_hub_api:
        return []
    warnings = []
    if not internal_ssl:
        warnings.append(
            "JobSpawner.forward_hub_api is on without c.JupyterHub.internal_ssl: jobs reach the "
            "hub API in plain HTTP through a port on the login node, so another user of the "
            "login node who takes that port while the hub is down can read the servers' API "
            "tokens, and anyone there can reach the hub's pages. Set "
            "c.JupyterHub.internal_ssl = True (docs/deployment.md)."
        )
    if spawner.hub_forward_listen_address in ("0.0.0.0", "::", "*"):
        warnings.append(
            f"JobSpawner.hub_forward_listen_address is {spawner.hub_forward_listen_address!r}: "
            "the hub forward listens on every interface of the login node, its public one "
            "too. Give the address compute nodes use instead (or leave it empty)."
        )
    return warnings
