"""The spawn form's presets: the user's newest distinct sets of choices, of all their servers,
read from what the hub's database keeps of each (its saved state and last user_options).

Reads only; a preset fills the form in the browser and the hub checks it as any other entry.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from hubdash.relaunch import choice_label, link_options, newest_distinct
from hubdash.serverstate import RecentChoice, read_server_state


def recent_choices_of(user: Any) -> list[RecentChoice]:
    """The user's newest distinct sets of spawn options (at most five), newest first.

    Each server's state keeps the options of its last starts (JobSpawner.remember_choices);
    a server whose state has none yet (saved before there were presets) counts with its last
    user_options, as JupyterHub keeps them.
    """
    found: list[RecentChoice] = []
    for orm_spawner in (getattr(user, "orm_spawners", None) or {}).values():
        # Its spawner logs what it cannot read; a preset is no reason to say it twice.
        saved = read_server_state(getattr(orm_spawner, "state", None) or {})
        if saved.recent_choices:
            found.extend(saved.recent_choices)
        elif orm_spawner.user_options:
            started = orm_spawner.started or getattr(orm_spawner, "last_activity", None)
            found.append(RecentChoice(dict(orm_spawner.user_options), _epoch(started)))
    return newest_distinct(found)


def form_presets(user: Any, cluster_titles: dict[str, str]) -> list[dict[str, Any]]:
    """The presets as the form's template shows them: a label and the options to fill in."""
    return [
        {
            "label": choice_label(choice.options, cluster_titles),
            "options": link_options(choice.options),
        }
        for choice in recent_choices_of(user)
    ]


def _epoch(when: datetime | None) -> float:
    """JupyterHub's times are naive UTC datetimes; none sorts as oldest."""
    if when is None:
        return 0.0
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()
