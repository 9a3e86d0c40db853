"""JobSpawner's settings for hub restarts: the hub's identity in job names and folders, and
the sweep of this hub's orphaned jobs at start-up."""

from __future__ import annotations

import hashlib
import os
import re
from urllib.parse import urlsplit, urlunsplit

from traitlets import Enum, Unicode, default, validate
from traitlets.config import LoggingConfigurable
from traitlets.traitlets import TraitError

# No '-': it separates the parts of a job name, so that no hub's id is the start of
# another's id and user ('a' and 'a-b' would share the names 'jh-a-b-...').
_HUB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_]{0,23}")


def hub_id_of_database(db_url: str) -> str:
    """A stable identity for the hub that keeps its records in this database: 'h' and 7 hex
    digits of a hash of where the database is (an SQLite file by its absolute path, any
    other by its URL without the password). Two hubs never share a database.

    >>> hub_id_of_database("sqlite:////srv/jupyterhub/jupyterhub.sqlite")
    'ha8b2cf0'
    >>> a = hub_id_of_database("postgresql://hub:secret@db/jupyterhub")
    >>> a == hub_id_of_database("postgresql://hub:other@db/jupyterhub")
    True
    """
    if db_url.startswith("sqlite:///") and not db_url.startswith("sqlite:////"):
        # A relative file: the same text means another file in another folder.
        db_url = "sqlite:///" + os.path.abspath(db_url[len("sqlite:///") :])
    parts = urlsplit(db_url)
    if parts.password is not None:
        netloc = parts.netloc.replace(f":{parts.password}@", "@", 1)
        db_url = urlunsplit(parts._replace(netloc=netloc))
    return "h" + hashlib.sha256(db_url.encode()).hexdigest()[:7]


def _hub_database_url() -> str:
    """The running hub's database URL; '' outside a hub (unit tests, config generation)."""
    try:
        from jupyterhub.app import JupyterHub
    except ImportError:  # pragma: no cover - jupyterhub is a dependency
        return ""
    return JupyterHub.instance().db_url if JupyterHub.initialized() else ""


class RestartSettings(LoggingConfigurable):
    """A mixin of JobSpawnerSettings: what keeps one hub's jobs apart and found after restarts."""

    hub_id = Unicode(
        None,
        allow_none=True,  # unset: derived (an explicit '' is then a change, and refused)
        help="""This hub's identity on the clusters: part of every job name
        ('<prefix>-<hub_id>-<cluster user>-<server>') and of every server's folder
        ('<state_root>/<hub_id>/<server>'), so that a test or staging hub next to production
        never touches production's jobs, and the start-up sweep of orphaned jobs takes only
        this hub's. Letters, digits and '_', at most 24. Default: 'h' and 7 hex digits
        derived from the hub's database location (JupyterHub.db_url), which is stable across
        restarts but changes if the database moves: set it explicitly on a production hub.
        Changing it on a hub with running servers is safe (each saved job keeps its folder),
        but orphans left under the old identity are no longer swept.""",
    ).tag(config=True)

    @default("hub_id")
    def _default_hub_id(self) -> str:
        url = _hub_database_url()
        return hub_id_of_database(url) if url else "hub"

    @property
    def hub_identity(self) -> str:
        """hub_id as set, or derived (also where a config sets it to None)."""
        return self.hub_id or self._default_hub_id()

    @validate("hub_id")
    def _validate_hub_id(self, proposal: dict) -> str:
        value = proposal["value"]
        if not isinstance(value, str) or not _HUB_ID.fullmatch(value):
            raise TraitError(
                "JobSpawner.hub_id may hold only letters, digits and '_' (no '-': it separates "
                f"the parts of job names), starting with a letter or digit, at most 24: {value!r}"
            )
        return value

    orphan_sweep = Enum(
        ["cancel", "list", "off"],
        "cancel",
        help="""What the hub does at start-up with live jobs of its own (named
        '<prefix>-<hub_id>-...') that no server record claims: left by a hub that died
        between the scheduler's answer and saving the job id, a renamed server, a cancel that
        never went through. 'cancel' cancels each and logs its owner and name; 'list' only
        logs them (a dry run); 'off' skips the sweep. The sweep asks once per cluster user
        who had a server in the last 30 days.""",
    ).tag(config=True)
