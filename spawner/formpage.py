"""The spawn form as HTML for JupyterHub's /hub/spawn page, with the user's entries kept.

Renders only; the rules live in options.py.
"""

from __future__ import annotations

import time
from typing import Any

import jinja2

from .options import FIELDS, allowed_queues, build_form
from .walltime import format_walltime

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("spawner", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)

# A refused form, kept until the page is shown again (JupyterHub re-renders the form
# from scratch after options_from_form raises, so the entries must wait somewhere).
_FAILED_FORMS: dict[str, tuple[float, dict[str, Any], dict[str, str]]] = {}
_KEEP_SECONDS = 600


def remember_failed_form(username: str, data: dict[str, Any], errors: dict[str, str]) -> None:
    """Keep a refused form's entries and per-field errors for the next rendering."""
    now = time.monotonic()
    for name, (stamp, _, _) in list(_FAILED_FORMS.items()):
        if now - stamp > _KEEP_SECONDS:
            del _FAILED_FORMS[name]
    _FAILED_FORMS[username] = (now, data, errors)


def _take_failed_form(username: str) -> tuple[dict[str, Any] | None, dict[str, str]]:
    stamp, data, errors = _FAILED_FORMS.pop(username, (0.0, None, {}))
    if data is None or time.monotonic() - stamp > _KEEP_SECONDS:
        return None, {}
    return {k: v for k, v in data.items() if k in FIELDS}, errors


def render_options_form(spawner: Any) -> str:
    """JupyterHub calls this (options_form) with the spawner to show the form."""
    groups = [group.name for group in getattr(spawner.user, "groups", [])]
    queues = allowed_queues(spawner.queue_table, spawner.user.name, groups)
    data, errors = _take_failed_form(spawner.user.name)
    last = dict(spawner.user_options or {})
    first = next(iter(queues.values()), None)
    defaults = {
        "queue": last.get("queue", first.name if first else ""),
        "walltime": last.get("walltime", format_walltime(first.default_walltime) if first else ""),
        "nodes": last.get("nodes", first.default_nodes if first else 1),
        "engines": last.get("engines", first.default_engines if first else 0),
    }
    if defaults["queue"] not in queues and first is not None:
        defaults["queue"] = first.name
    form = build_form(queues, data, defaults=None if data is not None else defaults)
    return _ENV.get_template("options_form.html.j2").render(
        form=form,
        errors=errors,
        queues=list(queues.values()),
        format_walltime=format_walltime,
        queue_timeout_minutes=spawner.queue_timeout // 60,
    )
