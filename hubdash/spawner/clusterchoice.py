"""Which cluster a server runs on: the admin's `clusters` table read once, the user's choice
checked, and the chosen cluster's settings put in place on the spawner. Part of JobSpawner.

A cluster entry is the spawner's own settings for that cluster over the spawner-wide ones, so
everything downstream (the queue table, the job script, the transport, the monitor) reads
`self.<setting>` as it always did: `use_cluster(name)` sets those values on this spawner
instance (one server's), never on the class. The form and the queue API, which need every
cluster's view at once, get it from a sibling spawner per cluster (`for_cluster`).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from typing import Any

from tornado import web
from traitlets import TraitError
from traitlets.config import LoggingConfigurable

from hubdash.serverstate import ClusterRef
from hubdash.spawner.options import ConfigError, OptionsError
from hubdash.spawner.settings import JobSpawnerSettings
from hubdash.spawner.spawnerror import SpawnError
from hubdash.spawner.wiring import settings_of_options

CLUSTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Settings that belong to the hub, not to one cluster.
HUB_WIDE = frozenset(
    {
        "clusters",
        "cluster_check_interval",
        "job_name_prefix",
        "status_interval",
        "hub_id",
        "orphan_sweep",
    }
)
ENTRY_KEYS = ("title", "groups")


class ClusterRefused(OptionsError):
    """A cluster this user may not use: 403 on the REST API, a field error in the form."""


@dataclass(frozen=True)
class ClusterChoice:
    """One cluster as the admin offers it."""

    name: str
    title: str = ""
    groups: tuple[str, ...] = ()
    overrides: tuple[tuple[str, Any], ...] = ()

    @property
    def label(self) -> str:
        return self.title or self.name

    def allows(self, groups: list[str]) -> bool:
        return not self.groups or bool(set(groups) & set(self.groups))


def parse_clusters(
    table: dict[str, Any], settings: frozenset[str], default_name: str
) -> dict[str, ClusterChoice]:
    """The clusters of `JobSpawner.clusters` in the admin's order; ConfigError naming the
    cluster and key for an entry that cannot be read. An empty table is one cluster.

    >>> parse_clusters({}, frozenset(), "login1")["login1"].overrides
    ()
    >>> parse_clusters({"a": {"nodes": 2}}, frozenset({"queues"}), "x")
    Traceback (most recent call last):
    ...
    hubdash.spawner.options.ConfigError: JobSpawner.clusters['a']: unknown key 'nodes'; ...
    """
    if not table:
        return {default_name: ClusterChoice(default_name)}
    choices = {}
    for name, entry in table.items():
        where = f"JobSpawner.clusters[{name!r}]"
        if not isinstance(name, str) or not CLUSTER_NAME.match(name):
            raise ConfigError(
                f"{where}: a cluster name is letters, digits, '.', '_' and '-' (64 at most)"
            )
        if not isinstance(entry, dict):
            raise ConfigError(f"{where} must be a dict of settings")
        title = entry.get("title", "")
        if not isinstance(title, str):
            raise ConfigError(f"{where}['title'] must be text")
        groups = entry.get("groups", [])
        if not isinstance(groups, list | tuple) or not all(isinstance(g, str) for g in groups):
            raise ConfigError(f"{where}['groups'] must be a list of hub group names")
        for key in entry:
            if key not in ENTRY_KEYS and key not in settings:
                raise ConfigError(
                    f"{where}: unknown key {key!r}; a cluster takes 'title', 'groups' and "
                    "JobSpawner settings (see jupyterhub --help-all), not the hub-wide "
                    f"{', '.join(sorted(HUB_WIDE))}"
                )
        overrides = tuple((k, v) for k, v in entry.items() if k not in ENTRY_KEYS)
        choices[name] = ClusterChoice(name, title, tuple(groups), overrides)
    return choices


class ClusterChoices:
    """JobSpawner's clusters (a mixin: it uses the spawner's settings, user and config)."""

    chosen_cluster: str = ""  # the cluster whose settings are in place on this instance
    removed_cluster: ClusterRef | None = None  # a saved cluster no longer configured

    @classmethod
    def per_cluster_settings(cls) -> frozenset[str]:
        """The settings a cluster entry may give: the spawner's own, bar the hub-wide ones."""
        own = set(JobSpawnerSettings.class_trait_names(config=True))
        return frozenset(own - set(LoggingConfigurable.class_trait_names()) - HUB_WIDE)

    @property
    def cluster_choices(self) -> dict[str, ClusterChoice]:
        """Every configured cluster, in the admin's order."""
        cached = self.__dict__.get("_cluster_choices")
        if cached is None:
            cached = parse_clusters(
                self.clusters,
                self.per_cluster_settings(),
                self._base_settings()["login_host"] or "local",
            )
            self.__dict__["_cluster_choices"] = cached
        return cached

    def user_groups(self) -> list[str]:
        return [group.name for group in getattr(self.user, "groups", None) or []]

    def allowed_clusters(self) -> list[ClusterChoice]:
        """The clusters this spawner's user may use, in the admin's order."""
        groups = self.user_groups()
        return [choice for choice in self.cluster_choices.values() if choice.allows(groups)]

    def pick_cluster(self, asked: Any) -> str:
        """The cluster a spawn's options name (the first allowed one when they name none).

        OptionsError for a cluster that is not configured; ClusterRefused for one the user
        may not use.
        """
        if isinstance(asked, list | tuple):
            asked = asked[-1] if asked else None
        allowed = [choice.name for choice in self.allowed_clusters()]
        if asked in (None, ""):
            if not allowed:
                raise ClusterRefused({"cluster": "no cluster of this hub is open to you"})
            return allowed[0]
        if not isinstance(asked, str) or asked not in self.cluster_choices:
            shown = repr(asked)[:70]
            raise OptionsError(
                {"cluster": f"there is no cluster {shown}; choose one of: {', '.join(allowed)}"}
            )
        if asked not in allowed:
            raise ClusterRefused(
                {
                    "cluster": f"you may not use cluster {asked!r}; choose one of: "
                    + (", ".join(allowed) or "(none open to you)")
                }
            )
        return asked

    def use_cluster(self, name: str) -> None:
        """Put cluster `name`'s settings in place on this spawner (KeyError if unknown)."""
        choice = self.cluster_choices[name]
        self._apply_settings(dict(choice.overrides))
        self.chosen_cluster, self.removed_cluster = name, None

    def use_removed_cluster(self, ref: ClusterRef) -> None:
        """A saved cluster no longer configured: reach it as saved, to show and stop the server."""
        overrides: dict[str, Any] = {"scheduler_bin_dir": ref.bin_dir}
        if ref.login_host:
            overrides.update(login_host=ref.login_host, login_port=ref.login_port)
        if ref.scheduler:
            overrides["scheduler"] = ref.scheduler
        try:
            overrides.update(settings_of_options(ref.scheduler, ref.scheduler_options))
            self._apply_settings(overrides)
        except TraitError:
            self._apply_settings({})  # unreadable: the spawner-wide settings, at least
        self.chosen_cluster, self.removed_cluster = ref.name, ref

    @property
    def cluster_title(self) -> str:
        """What users read for the chosen cluster."""
        choice = self.cluster_choices.get(self.chosen_cluster)
        if choice is not None and not self.removed_cluster:
            return choice.label
        return self.removed_cluster.title if self.removed_cluster else ""

    def ensure_cluster(self) -> None:
        """A cluster in place: the user's first allowed one until a spawn or state names one."""
        if not self.chosen_cluster:
            allowed = self.allowed_clusters() if getattr(self, "user", None) else []
            self.use_cluster((allowed or list(self.cluster_choices.values()))[0].name)

    async def unavailable_reason(self, max_age: float | None = None) -> str:
        """Why the cluster cannot be reached now ('' if it can): its login node does not
        answer (checked within `max_age` seconds; default: the check interval)."""
        cluster = self.cluster
        if cluster.health is None or await cluster.health.check(max_age):
            return ""
        # A hub of one cluster has no cluster names to speak of.
        which = f"cluster {self.cluster_title or cluster.name}" if self.clusters else "the cluster"
        return f"{which} is unavailable: {cluster.health.message}"

    async def require_available(self) -> None:
        """SpawnError at once when the cluster's login node does not answer (checked within
        the last 5 s): down for everyone, said now rather than after SSH's own timeouts."""
        reason = await self.unavailable_reason(max_age=5.0)
        if reason:
            raise SpawnError(f"{reason[:1].upper()}{reason[1:]}.")

    def cluster_ref(self) -> ClusterRef:
        """The chosen cluster as saved with the server."""
        config = self.cluster_config
        return ClusterRef(
            name=self.chosen_cluster,
            title=self.cluster_title,
            login_host=config.login.host,
            login_port=config.login.port,
            scheduler=config.scheduler,
            scheduler_options=dict(config.scheduler_options),
            bin_dir=config.bin_dir,
        )

    def for_cluster(self, name: str) -> Any:
        """A spawner of the same user and server with cluster `name`'s settings in place, for
        the form and the queue API (this one may be running on another cluster)."""
        siblings = self.__dict__.setdefault("_cluster_siblings", {})
        if name == self.chosen_cluster and not self.removed_cluster:
            return self
        sibling = siblings.get(name)
        if sibling is None:
            # The same server row (its name), read only: a sibling never starts or saves.
            sibling = type(self)(
                user=self.user, hub=self.hub, config=self.config, orm_spawner=self.orm_spawner
            )
            sibling.use_cluster(name)
            siblings[name] = sibling
        return sibling

    def check_clusters(self) -> None:
        """Every cluster's settings in place once (hub start); ConfigError naming the cluster."""
        first = None
        for name, choice in self.cluster_choices.items():
            where = f"JobSpawner.clusters[{name!r}]" if self.clusters else "JobSpawner"
            try:
                self.use_cluster(name)
                _ = self.queue_table, self.extra_fields
                self.cluster_config.check(where)
            except (TraitError, ConfigError, ValueError) as exc:
                text = str(exc)
                if self.clusters and not text.startswith(where):
                    text = f"{where}: {text}"
                raise ConfigError(text) from None
            first = first or choice.name
        if first:
            self.use_cluster(first)

    # --- the settings themselves ---------------------------------------------------------

    def _base_settings(self) -> dict[str, Any]:
        """The spawner-wide values, taken before any cluster's were put in place."""
        base = self.__dict__.get("_cluster_base")
        if base is None:
            base = {key: copy.deepcopy(getattr(self, key)) for key in self.per_cluster_settings()}
            self.__dict__["_cluster_base"] = base
        return base

    def _apply_settings(self, overrides: dict[str, Any]) -> None:
        base = self._base_settings()
        # Held: cross-checks between settings (extras, accounts) run once all are set.
        with self.hold_trait_notifications():
            for key, value in base.items():
                wanted = overrides.get(key, value)
                if getattr(self, key) != wanted:
                    try:
                        setattr(self, key, copy.deepcopy(wanted))
                    except TraitError as exc:
                        raise TraitError(f"{key!r}: {exc}") from None
        self._queue_table, self._extra_fields, self._cluster_config = None, None, None
        if not self._start_timeout_configured():
            # Its default follows queue_timeout and startup_timeout, which a cluster may set.
            self.start_timeout = self._default_start_timeout()

    def _start_timeout_configured(self) -> bool:
        return any(
            "start_timeout" in self.config.get(section, {}) for section in ("Spawner", "JobSpawner")
        )


def refused_as_http(exc: ClusterRefused) -> web.HTTPError:
    """A cluster refused on the REST API or an opt- URL: 403, naming the cluster."""
    error = web.HTTPError(403, "%s", f"Invalid options: {exc}")
    error.jupyterhub_message = f"Invalid options: {exc}"
    return error
