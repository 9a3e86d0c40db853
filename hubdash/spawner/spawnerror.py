"""SpawnError: a start that failed for a reason the user should read."""

from __future__ import annotations

import asyncio
import html

from tornado import web


class SpawnError(web.HTTPError):
    """A start that failed for a reason the user should read, with the job's last output.

    JupyterHub shows `jupyterhub_message` / `jupyterhub_html_message` on the spawn page and
    in the progress stream; the REST API answers with the message.
    """

    def __init__(self, message: str, log_tail: str = ""):
        text = message + (f" Last lines of its output:\n{log_tail}" if log_tail else "")
        super().__init__(500, "%s", text)  # as it is, whatever '%' it holds
        self.jupyterhub_message = text
        html_tail = f"<pre>{html.escape(log_tail)}</pre>" if log_tail else ""
        self.jupyterhub_html_message = f"<p>{html.escape(message)}</p>" + (
            f"<p>Last lines of its output:</p>{html_tail}" if log_tail else ""
        )


def failure_text(exc: BaseException) -> str:
    """Why a start failed, for the hub's log and the last outcome the dashboard shows: the
    text the spawn page showed, not an HTTPError's str() ("HTTP 500: Internal Server Error
    (...)")."""
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    return getattr(exc, "jupyterhub_message", None) or str(exc)
