"""Where a user's SSH key comes from: files named by a path template, or the authenticator's
auth_state (held in memory only). Loads nothing itself: SSHTransport asks on each connect.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from hubdash.transport.base import TransportError


class CredentialsError(TransportError):
    """The user's SSH credentials are missing or unusable; the message says where to look."""


@dataclass(frozen=True)
class KeyMaterial:
    """A private key (OpenSSH or PEM text) and an optional certificate, never written to disk.

    `source` names where they came from, for error messages; the key never appears in one.
    """

    private_key: str | bytes = field(repr=False)
    certificate: str | bytes | None = field(default=None, repr=False)
    source: str = "auth_state"


# Called on every (re)connect, so a certificate renewed at the user's next login is used.
KeySource = Callable[[], Awaitable[KeyMaterial]]


class _HasAuthState(Protocol):
    name: str

    async def get_auth_state(self) -> Mapping[str, Any] | None: ...


def auth_state_key_source(user: _HasAuthState, key_entry: str, cert_entry: str = "") -> KeySource:
    """A KeySource reading `auth_state[key_entry]` (and `[cert_entry]`) of a JupyterHub user.

    The hub decrypts auth_state from its database on each call: after a hub restart the
    key is there again without the user logging in.
    """
    if not key_entry:
        raise ValueError("key_entry must name the auth_state entry that holds the private key")

    async def key_from_auth_state() -> KeyMaterial:
        auth_state = await user.get_auth_state() or {}
        key = auth_state.get(key_entry)
        where = f"auth_state of {user.name}"
        if not key:
            raise CredentialsError(
                f"The {where} holds no SSH private key under {key_entry!r} "
                "(JobSpawner.ssh_key_from_auth_state). The authenticator must put it there "
                "and Authenticator.enable_auth_state must be True; logging in again may help."
            )
        certificate = auth_state.get(cert_entry) if cert_entry else None
        if cert_entry and not certificate:
            raise CredentialsError(
                f"The {where} holds no SSH certificate under {cert_entry!r} "
                "(JobSpawner.ssh_cert_from_auth_state); logging in again may help."
            )
        if not isinstance(key, str | bytes) or not isinstance(certificate, str | bytes | None):
            raise CredentialsError(
                f"The SSH key or certificate in the {where} is not text; "
                "it must be the OpenSSH or PEM text of the key."
            )
        return KeyMaterial(key, certificate, source=f"{where}[{key_entry!r}]")

    return key_from_auth_state
