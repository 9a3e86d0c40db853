"""What a page shows of one server: the hub's server model (and the spawner's saved state, read
through hubdash.serverstate) turned into plain, JSON-ready fields. Pure data handling.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from datetime import datetime
from typing import Any

from hubdash.dashboard.clusters import ClusterHealth, cluster_view
from hubdash.relaunch import link_options
from hubdash.serverstate import JobOutcome, ServerState, read_server_state

log = logging.getLogger("hubdash.dashboard.views")

# The card's word for each status, and the Bootstrap colour it is drawn in.
STATUS_LABELS = {
    "queued": ("Queued", "warning"),
    "starting": ("Starting", "info"),
    "running": ("Running", "success"),
    "stopping": ("Stopping", "secondary"),
    "stopped": ("Stopped", "secondary"),
    "failed": ("Failed", "danger"),
}
# Where the failure text ends and the job's own last lines begin (status.js splits there).
OUTPUT_MARKER = " Last lines of its output:\n"


def server_status(model: dict[str, Any], saved: ServerState) -> str:
    """queued / starting / running / stopping / stopped / failed, from a server model and
    its spawner's saved state.

    >>> from hubdash.serverstate import JobOutcome, JobRecord
    >>> server_status({"pending": "spawn"}, ServerState(job=JobRecord("7", state="pending")))
    'queued'
    >>> server_status({"pending": "spawn"}, ServerState(job=JobRecord("7", state="running")))
    'starting'
    >>> server_status({"pending": None, "ready": True}, ServerState())
    'running'
    >>> failed = JobOutcome("7", "failed", "Job 7 ended (FAILED).", ended_at=1.0)
    >>> server_status({"ready": False}, ServerState(last_outcome=failed))
    'failed'
    >>> stopped = JobOutcome("7", "cancelled", "Job 7 was stopped from the hub.", ended_at=1.0)
    >>> server_status({"ready": False}, ServerState(last_outcome=stopped))
    'stopped'
    """
    pending = model.get("pending")
    if pending == "stop":
        return "stopping"
    if pending:
        return "queued" if saved.job.state == "pending" else "starting"
    if model.get("ready"):
        return "running"
    if saved.job.state == "failed" or _failed(saved.last_outcome):
        return "failed"
    return "stopped"


def _failed(last: JobOutcome | None) -> bool:
    if last is None:
        return False
    return last.state in ("failed", "gone") or last.exit_code not in (None, 0)


def failure_text(last: JobOutcome) -> str:
    """What a page says about a failed job: its message, then its last lines if any."""
    return last.message + (OUTPUT_MARKER + last.log_tail if last.log_tail else "")


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


def read_state(user: str, model: dict[str, Any]) -> ServerState:
    """The spawner's saved state in a server model; what it could not read is logged."""
    saved = read_server_state(model.get("state") or {})
    for problem in saved.problems:
        log.warning("State of %s/%s: %s", user, model.get("name") or "", problem)
    return saved


def server_view(
    user: str,
    model: dict[str, Any],
    now: float | None = None,
    clusters: list[ClusterHealth] | None = None,
) -> dict[str, Any]:
    """Everything a card or a status page shows of one server (plain JSON values);
    `clusters` is the hub's cluster list, None when it gave none."""
    now = time.time() if now is None else now
    saved = read_state(user, model)
    job = saved.job
    # Before its job is submitted (and after it ends) a server shows what the form asked for.
    options = model.get("user_options") or {}
    name = model.get("name") or ""
    status = server_status(model, saved)
    label, colour = STATUS_LABELS[status]

    walltime_total = job.walltime_seconds or None
    walltime = walltime_text(walltime_total) if walltime_total else options.get("walltime") or ""
    started_at = epoch(job.started_at)
    elapsed = max(0, int(now - started_at)) if started_at and status == "running" else None
    left = (
        max(0, walltime_total - elapsed)
        if walltime_total is not None and elapsed is not None
        else None
    )
    submitted_at = epoch(job.submitted_at) or epoch(model.get("started"))
    last = saved.last_outcome
    has_job = bool(job.job_id)

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
        "queue": job.queue or options.get("queue") or "",
        "environment": str(options.get("environment") or ""),
        "nodes": job.node_count or _number(options.get("nodes")),
        "engines": job.engines if has_job else _number(options.get("engines")),
        "engines_up": job.engines_up if has_job else None,
        "engines_state": job.engines_state,
        "walltime": walltime,
        "walltime_seconds": walltime_total,
        "job_id": job.job_id,
        "job_state": job.state,
        "node": job.node,
        "node_list": list(job.nodes),
        "reason": job.reason,
        "position": job.position,
        "estimated_start": job.estimated_start or "",
        "submitted_at": submitted_at,
        "started_at": started_at,
        "elapsed_seconds": elapsed,
        "walltime_left_seconds": left,
        "tunnel": saved.tunnel,
        "last_error": failure_text(last) if status == "failed" and last is not None else "",
        "outcome": asdict(last) if last is not None else None,
        "history": [asdict(step) for step in saved.history],
        "cluster": cluster_view(saved.cluster, clusters),
        # The options of its last start, for Start again and the launch link (hubdash.relaunch).
        "choices": link_options(options),
        "time": now,
    }


def walltime_text(seconds: int) -> str:
    """A walltime in seconds as the spawn form spells it, H:MM:SS (hours may pass 24).

    >>> walltime_text(1800), walltime_text(100 * 3600 + 61)
    ('0:30:00', '100:01:01')
    """
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


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
