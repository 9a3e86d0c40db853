"""JupyterHub's internal TLS as the spawner uses it: the context the hub side probes a server
with. The files a job gets are named in hubdash.job.contract (CERTS_DIR, CERT_FILES).

With `c.JupyterHub.internal_ssl` the hub makes a key and certificate per server; the server
then answers only clients holding a certificate of the hub's internal authorities, and
verifies the hub's own certificate when it calls the hub API (through the job's relay on
127.0.0.1, a name the hub's certificate carries).
"""

from __future__ import annotations

import ssl
from typing import Any

from jupyterhub.utils import make_ssl_context

_contexts: dict[tuple[str, str, str], ssl.SSLContext] = {}


def probe_context(spawner: Any) -> ssl.SSLContext | None:
    """A client context with the hub's own certificate, verifying the server's; None when the
    hub runs without internal TLS. Made once per hub (the files are the hub's)."""
    settings = getattr(spawner.user, "settings", None) or {}
    key, cert = settings.get("internal_ssl_key"), settings.get("internal_ssl_cert")
    ca = settings.get("internal_ssl_ca")
    if not (key and cert and ca):
        return None
    paths = (key, cert, ca)
    if paths not in _contexts:
        _contexts[paths] = make_ssl_context(key, cert, cafile=ca)
    return _contexts[paths]
