"""JobSpawner's settings for hub restarts: the hub's identity in job names and folders, the
sweep of this hub's orphaned jobs at start-up, and the forward keeper that holds the notebook
forwards while the hub restarts."""

from __future__ import annotations

import hashlib
import os
import re
from urllib.parse import urlsplit, urlunsplit

from traitlets import Bool, Enum, Float, Unicode, default, validate
from traitlets.config import LoggingConfigurable
from traitlets.traitlets import TraitError

from hubdash.keeper.wire import MAX_SOCKET_PATH, check_socket_path

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


def default_keeper_socket(db_url: str, hub_id: str) -> str:
    """Beside an SQLite database (the hub's own folder); else, or when that path is too long
    for a Unix socket, in the user's runtime folder or a folder of the user's own in /tmp
    (wire.private_folder refuses one that is not)."""
    name = f"{hub_id}.sock"
    if db_url.startswith("sqlite:///"):
        folder = os.path.dirname(os.path.abspath(db_url[len("sqlite:///") :]))
        path = os.path.join(folder, "hubdash-keeper", name)
        if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
            return path
    runtime = os.environ.get("XDG_RUNTIME_DIR", "")
    path = os.path.join(runtime, "hubdash-keeper", name) if runtime else ""
    if not path or len(os.fsencode(path)) > MAX_SOCKET_PATH:
        path = os.path.join(f"/tmp/hubdash-keeper-{os.geteuid()}", name)
    return path


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

    forward_keeper = Enum(
        ["process", "hub"],
        "process",
        help="""Where the notebook forwards (127.0.0.1:<port> here → the job's node, through
        the login node) live. 'process': in the forward keeper, a small process of the hub's
        user (`python -m hubdash.keeper`) that outlives hub restarts, so open notebooks keep
        their connections while the hub restarts (with a proxy that outlives it too, as
        hubdash.spawner.keptproxy.KeptProxy does). 'hub': in the hub process itself; a
        restart then breaks every browser connection until the hub re-opens the forwards.
        Only the notebook forwards move; the hub-API forward for jobs needs the hub anyway.""",
    ).tag(config=True)

    forward_keeper_socket = Unicode(
        "",
        help="""The forward keeper's Unix socket; its folder must be the hub user's own, mode
        0700 (made so when missing). Empty: 'hubdash-keeper/<hub_id>.sock' beside an SQLite
        database, else (or when that is longer than a socket's path may be) under
        $XDG_RUNTIME_DIR, else in /tmp/hubdash-keeper-<uid>. The keeper's log is keeper.log
        in the same folder. At most 107 bytes.""",
    ).tag(config=True)

    forward_keeper_start = Bool(
        True,
        help="""Start a forward keeper when none answers on forward_keeper_socket (as a
        process of its own session, so that it outlives the hub). False: the site runs
        `python -m hubdash.keeper --socket <path>` itself, e.g. as a systemd unit of the
        hub's user, and a spawn fails with a message when it is not running.""",
    ).tag(config=True)

    forward_keeper_lease = Float(
        3600.0,
        min=60.0,
        max=7 * 24 * 3600.0,
        help="""Seconds the keeper holds a notebook forward after the hub last renewed it (it
        renews at each poll of the server). A hub down for longer than this finds the
        forwards closed and opens them again; a forward whose server is gone is closed at
        the latest then.""",
    ).tag(config=True)

    @validate("forward_keeper_socket")
    def _validate_keeper_socket(self, proposal: dict) -> str:
        value = proposal["value"]
        try:
            return check_socket_path(value) if value else value
        except ValueError as exc:
            raise TraitError(str(exc)) from None

    @property
    def keeper_socket_path(self) -> str:
        """forward_keeper_socket as set, or its default for this hub."""
        return self.forward_keeper_socket or default_keeper_socket(
            _hub_database_url(), self.hub_identity
        )
