"""The spawn form as HTML for JupyterHub's /hub/spawn page, with the user's entries kept.

Renders only, and never asks the scheduler: the page's script fetches live queue figures
from the hub's queue API (queueapi.py) after the page is shown. The rules live in options.py.
On a hub of several clusters the cluster is the first choice, and each allowed cluster's part
of the form is rendered from its own settings (a sibling spawner, clusterchoice.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jinja2
from markupsafe import Markup

from hubdash.cluster.queueinfo import API_PREFIX
from hubdash.schedulers.base import UserAccounting
from hubdash.spawner.clusterform import (
    cluster_health,
    latest_choices_by_cluster,
    one_value,
    opening_cluster,
    options_newest_first,
    unavailable_mark,
    unavailable_text,
)
from hubdash.spawner.environments import default_environment, offered_environments
from hubdash.spawner.extras import ExtraFields, format_memory
from hubdash.spawner.formpresets import form_presets
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
    saved = options_newest_first(spawner)
    return saved[0] if saved else {}


def usable_defaults(
    choices: Mapping[str, Any],
    queues: Mapping[str, QueueSpec],
    username: str,
    groups: list[str],
    extras: ExtraFields | None,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Earlier choices that still pass today's rules, queue defaults for the rest; and each
    choice not kept, with why (the form names them: nothing is changed silently).

    >>> from hubdash.spawner.options import parse_queue_table
    >>> q = parse_queue_table({"debug": {"max_walltime": "1:00:00", "max_nodes": 2}})
    >>> kept, dropped = usable_defaults(
    ...     {"queue": "debug", "walltime": "600", "nodes": 2}, q, "a", [], None)
    >>> kept["nodes"], kept["walltime"]  # walltime over the limit: the queue's default
    (2, '1:00:00')
    >>> dropped
    {'walltime': "queue 'debug' allows at most 1:00:00 of walltime; you asked for 10:00:00"}
    """
    fields = known_fields(extras)
    data = {k: v for k, v in choices.items() if k in fields}
    dropped: dict[str, str] = {}
    while True:
        try:
            kept = validate_options(data, queues, username, groups, extras).to_user_options()
            return kept, dropped
        except OptionsError as exc:
            named = set(exc.errors) & set(data)
            if not named:
                if not data:
                    return {}, dropped
                dropped.update(exc.errors)
                data = {}  # an error no single field explains: start from the defaults
                continue
            for name in named:
                dropped[name] = exc.errors[name]
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
            "environments": environment_choices(extras, q),
        }
        for q in queues.values()
    ]


def qos_choices(extras: ExtraFields, account: str) -> list[dict[str, Any]] | None:
    """The QOS a job charged to `account` may ask for, with each one's walltime cap; None
    where they are typed (no accounting asked)."""
    accounting = extras.user_accounting
    if accounting is None:
        return None
    caps = accounting.qos_max_walltime
    return [
        {"name": q, "cap": format_walltime(caps[q]) if caps.get(q) else ""}
        for q in accounting.qos_for(account)
    ]


def qos_data(extras: ExtraFields) -> dict[str, Any] | None:
    """Every account's QOS for the page's script (the account '' is the default one)."""
    accounting = extras.user_accounting
    if accounting is None:
        return None
    by_account = {a: qos_choices(extras, a) for a in ["", *accounting.accounts]}
    defaults = {
        a: accounting.default_qos.get(a or accounting.default_account, "") for a in by_account
    }
    return {"by_account": by_account, "defaults": defaults}


def usage_text(accounting: UserAccounting | None) -> str:
    """'This month (since 2026-12-01): proj1 1.5 node-hours, proj2 0 node-hours'."""
    if accounting is None or not accounting.accounts:
        return ""
    since = accounting.since.date().isoformat() if accounting.since else "the 1st"
    parts = [
        f"{a} {_hours(accounting.node_hours.get(a, 0.0))} node-hours" for a in accounting.accounts
    ]
    return f"Your use this month (since {since}): {', '.join(parts)}."


def _hours(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".") if value else "0"


def environment_choices(extras: ExtraFields, queue: QueueSpec | None) -> list[dict[str, Any]]:
    """The environments a queue offers, for the form: name, what it holds, the default."""
    if queue is None or not extras.environments:
        return []
    offered = offered_environments(extras.environments, queue.environments)
    default = default_environment(offered)
    return [
        {"name": env.name, "summary": env.summary(), "default": env.name == default}
        for env in offered.values()
    ]


async def options_form_page(spawner: Any) -> str:
    """JupyterHub calls this (options_form) with the spawner to show the form: the user's
    accounts are asked of each offered cluster's accounting first (accounts_from_scheduler,
    cached), then the page is rendered from the caches without waiting on anything."""
    if spawner.clusters:
        siblings = [spawner.for_cluster(choice.name) for choice in spawner.allowed_clusters()]
    else:
        siblings = [spawner]
    for sibling in siblings:
        try:
            await sibling.load_user_accounting()
        except Exception:  # noqa: BLE001 - a form without them is still a form
            spawner.log.exception("Accounts of %s could not be asked", spawner._log_name)
    return render_options_form(spawner)


def render_options_form(spawner: Any) -> str:
    """The form's HTML, from the spawner's settings and the caches only."""
    api = spawner.hub.base_url.rstrip("/") + API_PREFIX if spawner.hub else "/hub" + API_PREFIX
    # What both layouts show: the API the page's script asks, and the user's presets.
    common = {
        "queues_url": f"{api}/queues",
        "estimate_url": f"{api}/estimate",
        "check_url": f"{api}/check",
        "presets": form_presets(
            spawner.user, {c.name: c.label for c in spawner.cluster_choices.values()}
        ),
    }
    if spawner.clusters:
        return _several_clusters_form(spawner, common, f"{api}/clusters")
    data, errors = hub_state(spawner.user).failed_forms.take(
        spawner.user.name, spawner.name, known_fields(spawner.extra_fields)
    )
    body = _cluster_body(spawner, data, errors, last_choices(spawner))
    return _ENV.get_template("options_form.html.j2").render(
        live=body, several=False, clusters=[], templates=[], cluster_error="", **common
    )


def _several_clusters_form(spawner: Any, common: dict[str, Any], clusters_url: str) -> str:
    """The cluster first, then the chosen cluster's part of the form live and every other
    allowed cluster's in an inert <template>, which the page's script swaps in on a change."""
    allowed = spawner.allowed_clusters()
    names = [choice.name for choice in allowed]
    siblings = {name: spawner.for_cluster(name) for name in names}
    fields = {"cluster"}
    for sibling in siblings.values() or [spawner]:
        fields.update(known_fields(sibling.extra_fields))
    data, errors = hub_state(spawner.user).failed_forms.take(
        spawner.user.name, spawner.name, fields
    )
    refused_for = one_value((data or {}).get("cluster"))
    if refused_for in names:
        chosen = refused_for  # a refused form comes back on the cluster it was for
    else:
        chosen = opening_cluster(last_choices(spawner), names)
    latest = latest_choices_by_cluster(spawner, names[0]) if names else {}
    # With a choice shown, its error is shown under it; else with the others above the form.
    cluster_error = errors.get("cluster", "") if len(names) > 1 else ""
    clusters, live, templates = [], None, []
    for choice in allowed:
        sibling = siblings[choice.name]
        health = cluster_health(sibling)
        own = choice.name == chosen
        own_errors = {k: v for k, v in errors.items() if k != "cluster" or not cluster_error}
        body = _cluster_body(
            sibling,
            data if own else None,
            own_errors if own else {},
            latest.get(choice.name, {}),
            cluster=choice.name,
            label=choice.label,
        )
        clusters.append(
            {
                "name": choice.name,
                "label": choice.label,
                "mark": unavailable_mark(health),
                "warning": unavailable_text(choice.label, health),
                "selected": own,
            }
        )
        if own:
            live = body
        else:
            templates.append((choice.name, body))
    return _ENV.get_template("options_form.html.j2").render(
        live=live,
        several=True,
        clusters=clusters,
        templates=templates,
        cluster_error=cluster_error,
        clusters_url=clusters_url,
        **common,
    )


def _cluster_body(
    spawner: Any,
    data: dict[str, Any] | None,
    errors: dict[str, str],
    last: Mapping[str, Any],
    cluster: str = "",
    label: str = "",
) -> Markup:
    """One cluster's part of the form (its queues, limits, extras and live figures), from
    `spawner`, whose settings are that cluster's; filled from refused `data`, else from the
    user's `last` choices that still pass."""
    username = spawner.user.name
    groups = spawner.user_groups()
    extras: ExtraFields = spawner.extras_for_user()
    queues = allowed_queues(spawner.queue_table, username, groups)
    defaults, dropped = None, {}
    if data is None and queues:
        defaults, dropped = usable_defaults(last, queues, username, groups, extras)
    form = build_form(queues, data, defaults=defaults, extras=extras)
    chosen = form.queue.data if form.queue.data in queues else next(iter(queues), "")
    account = (form.account.data or "").strip() if "account" in extras else ""
    html = _ENV.get_template("options_form_body.html.j2").render(
        form=form,
        errors=errors,
        queues=list(queues.values()),
        chosen=queues.get(chosen),
        queue_data=queue_data(queues, username, groups, extras),
        extras=extras,
        environment_choices=environment_choices(extras, queues.get(chosen)),
        accounting=extras.user_accounting,
        usage=usage_text(extras.user_accounting),
        qos_choices=qos_choices(extras, account),
        qos_data=qos_data(extras),
        account_choices=(
            extras.allowed_accounts(queues[chosen].accounts, username, groups) if chosen else None
        ),
        format_walltime=format_walltime,
        queue_timeout_minutes=spawner.queue_timeout // 60,
        ttl=spawner.queue_info_ttl,
        cluster=cluster,
        cluster_label=label,
        dropped=dropped,
    )
    return Markup(html)  # rendered with autoescape: every value in it is escaped
