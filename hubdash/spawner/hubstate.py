"""HubState: what the spawners of one hub share, held by the hub itself.

One object per hub process, kept in the hub's tornado settings (which every User carries
as `user.settings`): the live clusters, refused forms waiting to be shown again, and the
connection to the forward keeper, and the writes of servers' state to the hub's database.
Outside a hub (the admin's job-script preview, unit tests) a stand-alone one is used.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import Any

from hubdash.cluster.registry import ClusterRegistry
from hubdash.keeper.client import KeeperClient
from hubdash.spawner.statewrites import StateWrites

SETTINGS_KEY = "hubdash_state"
FORM_KEEP_SECONDS = 600


class FailedForms:
    """Refused forms, kept until the page is shown again.

    JupyterHub re-renders the form from scratch after options_from_form raises, so the
    entries must wait somewhere. By (user, server name): a refused form fills only the
    form of the server it was for.
    """

    def __init__(self, keep_seconds: float = FORM_KEEP_SECONDS) -> None:
        self.keep_seconds = keep_seconds
        self._forms: dict[tuple[str, str], tuple[float, dict[str, Any], dict[str, str]]] = {}

    def remember(
        self, username: str, server_name: str, data: dict[str, Any], errors: dict[str, str]
    ) -> None:
        """Keep a refused form's entries and per-field errors for its server's next page."""
        now = time.monotonic()
        for key, (stamp, _, _) in list(self._forms.items()):
            if now - stamp > self.keep_seconds:
                del self._forms[key]
        self._forms[(username, server_name)] = (now, data, errors)

    def take(
        self, username: str, server_name: str, fields: Iterable[str]
    ) -> tuple[dict[str, Any] | None, dict[str, str]]:
        """The refused entries (only `fields`) and errors of this server's form, once."""
        stamp, data, errors = self._forms.pop((username, server_name), (0.0, None, {}))
        if data is None or time.monotonic() - stamp > self.keep_seconds:
            return None, {}
        wanted = set(fields)
        return {k: v for k, v in data.items() if k in wanted}, errors


class HubState:
    """The clusters, the refused forms, the forward keeper's client and the state writes of
    one hub."""

    standalone: HubState | None = None  # outside a hub: one for the process

    def __init__(self) -> None:
        self.clusters = ClusterRegistry()
        self.failed_forms = FailedForms()
        # (user, server) whose job a start is to adopt once the hub serves (jobadoption.py).
        self.resumes: set[tuple[str, str]] = set()
        self._keepers: dict[str, KeeperClient] = {}
        self.state_writes = StateWrites()

    def keeper(self, socket_path: str, *, start: bool) -> KeeperClient:
        """The hub's one client of the forward keeper at `socket_path`."""
        client = self._keepers.get(socket_path)
        if client is None:
            client = self._keepers[socket_path] = KeeperClient(socket_path, start=start)
        client.start = start
        return client


def hub_state(user: Any) -> HubState:
    """The HubState of the hub this user (a JupyterHub User) belongs to."""
    return hub_state_in(getattr(user, "settings", None))


def hub_state_in(settings: Any) -> HubState:
    """The HubState kept in a hub's tornado settings (a dict); outside a hub, the process's."""
    if isinstance(settings, dict):
        state = settings.get(SETTINGS_KEY)
        if state is None:
            state = settings[SETTINGS_KEY] = HubState()
        return state
    if HubState.standalone is None:
        HubState.standalone = HubState()
    return HubState.standalone
