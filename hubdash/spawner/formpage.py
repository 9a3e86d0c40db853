"""The spawn form as HTML for JupyterHub's /hub/spawn page, with the user's entries kept.

Renders only, and never asks the scheduler: the page's script fetches live queue figures
from the hub's queue API (queueapi.py) after the page is shown. The rules live in options.py.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import jinja2

from hubdash.cluster.queueinfo import API_PREFIX
from hubdash.spawner.extras import ExtraFields, format_memory
from hubdash.spawner.hubstate import hub_state
from hubdash.spawner.options import (
    OptionsError,
    QueueSpec,
    allowed_queues,
    build_form,
    known_fields,
    validate_options,
)
from hubdash.walltime import format_walltime

_ENV = jinja2.Environment(
    loader=jinja2.PackageLoader("hubdash.spawner", "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)


def last_choices(spawner: Any) -> dict[str, Any]:
    """The options this server last started with; for a new server, the user's latest ones.

    JupyterHub keeps each server's last user_options in its database and hands them to
    the spawner (also after a stop or a hub restart).
    """
    own = dict(spawner.user_options or {})
    if own:
        return own
    others = [
        orm_spawner
        for orm_spawner in (getattr(spawner.user, "orm_spawners", None) or {}).values()
        if orm_spawner.user_options
    ]
    if not others:
        return {}
    latest = max(others, key=lambda s: s.started or s.last_activity or datetime.min)
    return dict(latest.user_options)


def usable_defaults(
    choices: Mapping[str, Any],
    queues: Mapping[str, QueueSpec],
    username: str,
    groups: list[str],
    extras: ExtraFields | None,
) -> dict[str, Any]:
    """Earlier choices that still pass today's rules; queue defaults for the rest.

    >>> from hubdash.spawner.options import parse_queue_table
    >>> q = parse_queue_table({"debug": {"max_walltime": "1:00:00", "max_nodes": 2}})
    >>> kept = usable_defaults({"queue": "debug", "walltime": "600", "nodes": 2}, q, "a", [], None)
    >>> kept["nodes"], kept["walltime"]  # walltime over the limit: the queue's default
    (2, '1:00:00')
    """
    data = {k: v for k, v in choices.items() if k in known_fields(extras)}
    while True:
        try:
            return validate_options(data, queues, username, groups, extras).to_user_options()
        except OptionsError as exc:
            dropped = set(exc.errors) & set(data)
            if not dropped:
                if not data:
                    return {}
                data = {}  # an error no single field explains: start from the defaults
                continue
            for name in dropped:
                del data[name]


def queue_data(
    queues: Mapping[str, QueueSpec], username: str, groups: list[str], extras: ExtraFields
) -> list[dict[str, Any]]:
    """Each offered queue's limits for the page's script (hints; the hub checks again)."""
    return [
        {
            "name": q.name,
            "limits": q.limits_text(),
            "max_walltime": q.max_walltime,
            "max_walltime_text": format_walltime(q.max_walltime),
            "max_nodes": q.max_nodes,
            "max_engines": q.max_engines,
            "engines_per_node": q.engines_per_node,
            "max_memory_mb": q.max_memory_mb,
            "max_memory_text": format_memory(q.max_memory_mb) if q.max_memory_mb else "",
            "max_gpus": q.max_gpus,
            "accounts": (
                list(allowed)
                if (allowed := extras.allowed_accounts(q.accounts, username, groups)) is not None
                else None
            ),
        }
        for q in queues.values()
    ]


def render_options_form(spawner: Any) -> str:
    """JupyterHub calls this (options_form) with the spawner to show the form."""
    username = spawner.user.name
    groups = [group.name for group in getattr(spawner.user, "groups", [])]
    extras: ExtraFields = spawner.extra_fields
    queues = allowed_queues(spawner.queue_table, username, groups)
    data, errors = hub_state(spawner.user).failed_forms.take(
        username, spawner.name, known_fields(extras)
    )
    defaults = None
    if data is None and queues:
        defaults = usable_defaults(last_choices(spawner), queues, username, groups, extras)
    form = build_form(queues, data, defaults=defaults, extras=extras)
    chosen = form.queue.data if form.queue.data in queues else next(iter(queues), "")
    api = spawner.hub.base_url.rstrip("/") + API_PREFIX if spawner.hub else "/hub" + API_PREFIX
    return _ENV.get_template("options_form.html.j2").render(
        form=form,
        errors=errors,
        queues=list(queues.values()),
        chosen=queues.get(chosen),
        queue_data=queue_data(queues, username, groups, extras),
        extras=extras,
        account_choices=(
            extras.allowed_accounts(queues[chosen].accounts, username, groups) if chosen else None
        ),
        format_walltime=format_walltime,
        queue_timeout_minutes=spawner.queue_timeout // 60,
        queues_url=f"{api}/queues",
        estimate_url=f"{api}/estimate",
        ttl=spawner.queue_info_ttl,
    )
