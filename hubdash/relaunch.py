"""A server's earlier choices used again: the links that carry them (start again at once, or
open the form filled in) and the user's recent sets of choices offered as presets.

Plain data, standard library only: the spawn form and the dashboard both import it. Generic
over the option names: whatever the spawn form's options are, they are carried as they are.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, urlencode

from hubdash.serverstate import RecentChoice

# How many recent sets of choices the spawn form offers (and each server keeps).
PRESETS = 5
# JupyterHub's prefix of a spawn option in a URL's query (/hub/spawn/...?opt-queue=debug).
OPT_PREFIX = "opt-"


def link_options(options: Mapping[str, Any] | None) -> dict[str, str]:
    """The options a link can carry: each name with one text or number value, as text.

    >>> link_options({"queue": "debug", "nodes": 2, "account": None, "x": [1]})
    {'queue': 'debug', 'nodes': '2'}
    """
    carried: dict[str, str] = {}
    for name, value in (options or {}).items():
        if not isinstance(name, str) or not name or value is None or isinstance(value, bool):
            continue
        if isinstance(value, str | int | float):
            carried[name] = str(value)
    return carried


def opt_query(options: Mapping[str, Any] | None) -> str:
    """The options as JupyterHub's spawn URLs spell them, in the options' own order.

    >>> opt_query({"queue": "debug", "walltime": "0:10:00", "nodes": 1})
    'opt-queue=debug&opt-walltime=0%3A10%3A00&opt-nodes=1'
    """
    return urlencode({OPT_PREFIX + name: value for name, value in link_options(options).items()})


def spawn_path(hub_prefix: str, user: str, server: str) -> str:
    """The hub's spawn page of one server (the default server has no name segment).

    >>> spawn_path("/hub/", "alice", ""), spawn_path("/hub/", "alice", "a b")
    ('/hub/spawn/alice', '/hub/spawn/alice/a%20b')
    """
    path = f"{hub_prefix.rstrip('/')}/spawn/{quote(user, safe='')}"
    return f"{path}/{quote(server, safe='')}" if server else path


def start_again_url(
    hub_prefix: str, user: str, server: str, options: Mapping[str, Any] | None
) -> str:
    """A link that starts the server at once with these options (JupyterHub spawns from an
    `opt-` query; options no longer allowed bring the form back, each one named under its
    field). Without options, the spawn form.

    >>> start_again_url("/hub/", "alice", "run", {"queue": "debug", "nodes": 2})
    '/hub/spawn/alice/run?opt-queue=debug&opt-nodes=2'
    """
    query = opt_query(options)
    return spawn_path(hub_prefix, user, server) + (f"?{query}" if query else "")


def launch_link(hub_prefix: str, user: str, server: str, options: Mapping[str, Any] | None) -> str:
    """A link that opens the spawn form filled in with these options and starts nothing.

    The options ride in the fragment (never sent to the hub, so JupyterHub does not spawn
    from them); the form's script fills its fields from it and asks the hub which of them
    are no longer allowed.

    >>> launch_link("/hub/", "alice", "", {"queue": "debug", "walltime": "0:10:00"})
    '/hub/spawn/alice#opt-queue=debug&opt-walltime=0%3A10%3A00'
    """
    query = opt_query(options)
    return spawn_path(hub_prefix, user, server) + (f"#{query}" if query else "")


def choices_key(options: Mapping[str, Any]) -> str:
    """What makes two sets of choices the same: the same options with the same values.

    >>> choices_key({"nodes": 1, "queue": "q"}) == choices_key({"queue": "q", "nodes": "1"})
    True
    """
    return json.dumps(link_options(options), sort_keys=True)


def remember_choice(
    recent: Iterable[RecentChoice], options: Mapping[str, Any], at: float, keep: int = PRESETS
) -> list[RecentChoice]:
    """`recent` (newest first) with `options` put first; an earlier equal set is dropped,
    and only the newest `keep` stay.

    >>> old = [RecentChoice({"queue": "a"}, 1.0), RecentChoice({"queue": "b"}, 2.0)]
    >>> [c.options["queue"] for c in remember_choice(old, {"queue": "b"}, 3.0)]
    ['b', 'a']
    """
    new = RecentChoice(dict(options), at)
    return newest_distinct([new, *recent], keep)


def newest_distinct(choices: Iterable[RecentChoice], limit: int = PRESETS) -> list[RecentChoice]:
    """The newest `limit` distinct sets of choices, newest first; sets without any option a
    link can carry are left out.

    >>> found = [RecentChoice({"queue": "a"}, 5.0), RecentChoice({"queue": "b"}, 9.0),
    ...          RecentChoice({"queue": "a"}, 7.0), RecentChoice({}, 10.0)]
    >>> [(c.options["queue"], c.at) for c in newest_distinct(found)]
    [('b', 9.0), ('a', 7.0)]
    """
    seen: set[str] = set()
    kept: list[RecentChoice] = []
    for choice in sorted(choices, key=lambda c: c.at, reverse=True):
        key = choices_key(choice.options)
        if key == "{}" or key in seen:
            continue
        seen.add(key)
        kept.append(choice)
        if len(kept) == limit:
            break
    return kept


# The form's order: a preset's text names these first.
_WORDS_FIRST = ("cluster", "queue", "walltime", "nodes", "engines")
# How a preset's button names the options every hubdash form has; any other option is
# shown as "name value".
_WORDS = {
    "queue": "{}",
    "walltime": "{}",
    "nodes": "{} node(s)",
    "engines": "{} engines",
    "account": "account {}",
    "memory": "{} per node",
    "gpus": "{} GPU(s)",
}


def choice_label(
    options: Mapping[str, Any], cluster_titles: Mapping[str, str] | None = None
) -> str:
    """A preset's text: its options briefly, in the form's order (the others after them, in
    their own order); no engines are not shown.

    >>> choice_label({"environment": "py312", "nodes": "2", "walltime": "0:10:00",
    ...               "engines": 0, "queue": "debug", "cluster": "c1"}, {"c1": "Slurm"})
    'Slurm · debug · 0:10:00 · 2 node(s) · environment py312'
    """
    carried = link_options(options)
    names = [name for name in _WORDS_FIRST if name in carried]
    names += [name for name in carried if name not in names]
    parts = []
    for name in names:
        value = carried[name]
        if name == "engines" and value == "0":
            continue
        if name == "cluster":
            parts.append((cluster_titles or {}).get(value, value))
        else:
            parts.append(_WORDS.get(name, name + " {}").format(value))
    return " · ".join(parts)
