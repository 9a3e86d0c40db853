"""What the hub remembers of one server's batch job, as saved in JupyterHub's database.

Plain data with its (de)serialisation; no I/O and no decisions.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass
class JobRecord:
    """The current job of one server; an empty job_id means there is none."""

    job_id: str = ""
    job_name: str = ""
    job_state: str = ""  # a JobState value, as last seen
    queue: str = ""
    nodes: int = 0
    engines: int = 0  # requested
    engines_up: int = 0  # as the job's engines.json last said (hubdash.job.engines)
    engines_state: str = ""  # starting | running | failed | stopped
    walltime: str = ""  # H:MM:SS as requested
    reason: str = ""  # the scheduler's words for why it waits
    position: int | None = None
    estimated_start: str | None = None  # ISO 8601, local time of the cluster
    submitted_at: float | None = None  # epoch seconds
    started_at: float | None = None
    node: str = ""  # where the single-user server listens
    node_list: list[str] = field(default_factory=list)
    remote_port: int = 0
    local_port: int = 0  # the hub-side end of the notebook forward
    hub_forward_port: int = 0  # the login-node end of the hub API forward

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> JobRecord:
        """Read a saved state, ignoring keys this version does not know."""
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in state.items() if k in known})


@dataclass
class JobOutcome:
    """How the last job of a server ended, kept after it stops for the dashboard."""

    job_id: str
    state: str
    message: str
    ended_at: float
    exit_code: int | None = None
    log_tail: str = ""

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: dict[str, Any] | None) -> JobOutcome | None:
        if not state:
            return None
        known = {f.name for f in fields(cls)}
        try:
            return cls(**{k: v for k, v in state.items() if k in known})
        except TypeError:
            return None  # saved by an older version without some field: forget it
