"""What a page shows of one server: the hub's server model (and spawner state) read into plain,
JSON-ready fields. Pure data handling; tolerant of every field the spawner may not send yet.
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any

from hubdash.walltime import WalltimeError, parse_walltime

# The card's word for each status, and the Bootstrap colour it is drawn in.
STATUS_LABELS = {
    "queued": ("Queued", "warning"),
    "starting": ("Starting", "info"),
    "running": ("Running", "success"),
    "stopping": ("Stopping", "secondary"),
    "stopped": ("Stopped", "secondary"),
    "failed": ("Failed", "danger"),
}
FINISHED_JOB_STATES = {"done", "failed", "cancelled", "gone"}


def server_status(model: dict[str, Any]) -> str:
    """queued / starting / running / stopping / stopped / failed, from a server model.

    >>> server_status({"pending": "spawn", "state": {"job_state": "pending"}})
    'queued'
    >>> server_status({"pending": "spawn", "state": {"job_state": "running"}})
    'starting'
    >>> server_status({"pending": None, "ready": True})
    'running'
    >>> server_status({"pending": None, "ready": False, "state": {"last_error": "x"}})
    'failed'
    >>> server_status({"ready": False, "state": {"last_outcome": {"state": "cancelled"}}})
    'stopped'
    """
    state = model.get("state") or {}
    pending = model.get("pending")
    if pending == "stop":
        return "stopping"
    if pending:
        return "queued" if state.get("job_state") == "pending" else "starting"
    if model.get("ready"):
        return "running"
    if state.get("last_error") or state.get("job_state") == "failed" or _failed(outcome(state)):
        return "failed"
    return "stopped"


def outcome(state: dict[str, Any]) -> dict[str, Any] | None:
    """How the server's last job ended, as the spawner keeps it after a stop (or None)."""
    value = state.get("last_outcome")
    return value if isinstance(value, dict) and value.get("message") else None


def _failed(last: dict[str, Any] | None) -> bool:
    if last is None:
        return False
    return last.get("state") in ("failed", "gone") or last.get("exit_code") not in (None, 0)


def walltime_seconds(value: Any) -> int | None:
    """Seconds of a walltime as the spawner writes it ('H:MM:SS'), or None.

    >>> walltime_seconds("0:30:00")
    1800
    >>> walltime_seconds(None) is None
    True
    """
    if isinstance(value, int | float) and value > 0:
        return int(value)
    if not isinstance(value, str) or not value:
        return None
    try:
        return parse_walltime(value)
    except WalltimeError:
        return None


def epoch(value: Any) -> float | None:
    """An epoch time from epoch seconds or an ISO 8601 string, or None.

    >>> epoch("1970-01-01T00:01:00Z")
    60.0
    >>> epoch(12.5)
    12.5
    """
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value) if value > 0 else None
    if isinstance(value, str) and value:
        try:
            return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    return None


def _number(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def server_view(user: str, model: dict[str, Any], now: float | None = None) -> dict[str, Any]:
    """Everything a card or a status page shows of one server (plain JSON values)."""
    now = time.time() if now is None else now
    state = model.get("state") or {}
    options = model.get("user_options") or {}
    name = model.get("name") or ""
    status = server_status(model)
    label, colour = STATUS_LABELS[status]

    walltime = state.get("walltime") or options.get("walltime") or ""
    walltime_total = walltime_seconds(walltime)
    started_at = epoch(state.get("started_at"))
    elapsed = max(0, int(now - started_at)) if started_at and status == "running" else None
    left = (
        max(0, walltime_total - elapsed)
        if walltime_total is not None and elapsed is not None
        else None
    )
    submitted_at = epoch(state.get("submitted_at")) or epoch(model.get("started"))
    tunnel = state.get("tunnel") if isinstance(state.get("tunnel"), dict) else None
    history = state.get("history") if isinstance(state.get("history"), list) else []
    last = outcome(state)
    last_error = state.get("last_error") or ""
    if not last_error and status == "failed" and last is not None:
        last_error = last["message"]
        if last.get("log_tail"):
            last_error += " Last lines of its output:\n" + last["log_tail"]
    node_list = state.get("node_list") or state.get("nodes_list") or []

    return {
        "user": user,
        "name": name,
        "title": name or "default server",
        "status": status,
        "label": label,
        "colour": colour,
        "pending": model.get("pending"),
        "ready": bool(model.get("ready")),
        "url": model.get("url") or "",
        "queue": state.get("queue") or options.get("queue") or "",
        "nodes": _number(state.get("nodes") or options.get("nodes")),
        "engines": _number(state.get("engines") if "engines" in state else options.get("engines")),
        "engines_up": _number(state.get("engines_up")),
        "engines_state": state.get("engines_state") or "",
        "walltime": walltime,
        "walltime_seconds": walltime_total,
        "job_id": state.get("job_id") or "",
        "job_state": state.get("job_state") or "",
        "node": state.get("node") or "",
        "node_list": [str(n) for n in node_list] if isinstance(node_list, list) else [],
        "reason": state.get("reason") or "",
        "position": _number(state.get("position")),
        "estimated_start": state.get("estimated_start") or "",
        "submitted_at": submitted_at,
        "started_at": started_at,
        "elapsed_seconds": elapsed,
        "walltime_left_seconds": left,
        "tunnel": tunnel,
        "last_error": last_error,
        "outcome": last,
        "history": history,
        "time": now,
    }


def duration(seconds: float | None) -> str:
    """A duration as people read it in a table.

    >>> duration(59)
    '59 s'
    >>> duration(3725)
    '1 h 02 min'
    >>> duration(None)
    '—'
    """
    if seconds is None:
        return "—"
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds} s"
    minutes, _ = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"
