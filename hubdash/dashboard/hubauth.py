"""The dashboard's HubOAuth: requests that arrive together with one token ask the hub who it
is once, not once each."""

from __future__ import annotations

import asyncio
from typing import Any

from jupyterhub.services.auth import HubOAuth


class SharedLookupHubOAuth(HubOAuth):
    """HubOAuth whose identity lookups of one token, made at the same time, share one request.

    HubAuth caches the hub's answer about a token, but only once it has come: a burst of
    requests with a token new to the dashboard (a script opening 300 event streams at once)
    would each ask the hub's /hub/api/user before the first answer arrives. The stream caps
    can only be checked once the user is known, so this is what keeps such a burst from
    reaching the hub: one request, then the cache.
    """

    def user_for_token(
        self, token: str, use_cache: bool = True, session_id: str = "", *, sync: bool = True
    ) -> Any:
        if sync or not use_cache:
            return super().user_for_token(token, use_cache, session_id, sync=sync)
        lookups: dict[tuple[str, str], asyncio.Future] = self.__dict__.setdefault(
            "_shared_lookups", {}
        )
        key = (session_id, token)
        shared = lookups.get(key)
        if shared is None:
            shared = asyncio.ensure_future(
                super().user_for_token(token, use_cache, session_id, sync=False)
            )
            lookups[key] = shared
            shared.add_done_callback(lambda done: _forget(lookups, key, done))
        # Shielded: a request that goes away does not cancel the others' answer.
        return asyncio.shield(shared)


def _forget(
    lookups: dict[tuple[str, str], asyncio.Future], key: tuple[str, str], done: asyncio.Future
) -> None:
    lookups.pop(key, None)
    if not done.cancelled():
        done.exception()  # retrieved here too: every waiter may have gone
