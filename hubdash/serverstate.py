"""The state of one server: what its spawner saves in the hub's database and the dashboard reads
back through the hub's REST API (scope admin:server_state). One versioned layout, read by both
sides through `read_server_state`.

Plain data, standard library only: the hub side and the dashboard both import it, and it
imports nothing else of hubdash.

Version 2 (times are epoch seconds, durations seconds)::

    {"version": 2,
     "job": {"job_id", "job_name", "queue", "node_count", "nodes": [node names], "engines",
             "engines_up", "engines_state", "walltime_seconds", "submitted_at", "started_at",
             "state", "reason", "position", "estimated_start", "node", "remote_port",
             "local_port", "hub_forward_port", "state_dir", "token_sha256"},
     "tunnel": {...},            # as the spawner's tunnel describes itself
     "history": [{"phase", "time", "message"}, ...],
     "last_outcome": {"job_id", "state", "message", "exit_code", "ended_at", "log_tail",
                      "idle_seconds", "node_hours_returned"},
     "cancel_pending": [job ids],
     "resume": {"job": {...as "job"}, "reason"},
     "cluster": {"name", "title", "login_host", "login_port", "scheduler",
                 "scheduler_options": {name: value}, "bin_dir"},
     "recent_choices": [{"options": {name: value}, "at"}, ...]}

`recent_choices` are the sets of spawn options this server was last started with, newest
first, each once (at most five, hubdash.relaunch): the spawn form offers the user's newest
ones, of all their servers, as presets. Like `last_outcome` they stay after the server
stops. States saved before they existed have none (the form then offers each server's last
user_options).

`cluster` is the cluster the server was last started on (JobSpawner.clusters; a hub with
one cluster names it too): its name and title, and how to reach its scheduler, so that a
server whose cluster was since removed from the config can still be shown and its job
cancelled. States saved before it existed have none: the hub's first cluster is theirs.

`resume` is a job that was still queued or starting when the hub went down: the server was
stopped in the hub's books, and is started again as soon as the hub serves, adopting this
job (same id, same place in the queue) instead of submitting one.

`job`, `tunnel` and `history` are there while the server has a job; `last_outcome` stays after
it stops. `estimated_start` is ISO 8601 text as the scheduler gave it (the cluster's wall
clock, often with no zone), so no reader has to guess a time zone to store it.

Version 1 had no "version" key. It held the job under "job" and again at the top level, with
`job_state`, `nodes` (a count), `node_list` (the names) and `walltime` (H:MM:SS text); a hub
upgraded in place reads it, so that servers started before still show and are re-adopted.
"""

from __future__ import annotations

import functools
import re
import types
import typing
from dataclasses import MISSING, asdict, dataclass, field, fields
from typing import Any, TypeVar

VERSION = 2

_T = TypeVar("_T")
_HMS = re.compile(r"^(\d+):([0-5]\d):([0-5]\d)$")
# Version 1 names of the job's fields that version 2 renamed.
_V1_JOB_NAMES = {"job_state": "state", "nodes": "node_count", "node_list": "nodes"}


@dataclass
class JobRecord:
    """The current batch job of one server; an empty job_id means there is none."""

    job_id: str = ""
    job_name: str = ""
    queue: str = ""
    node_count: int = 0  # as requested
    nodes: list[str] = field(default_factory=list)  # their names, once the job runs
    engines: int = 0  # requested
    engines_up: int = 0  # as the job's engines file last said
    engines_state: str = ""  # starting | running | failed | stopped
    walltime_seconds: int = 0  # as requested; 0: not known
    submitted_at: float | None = None
    started_at: float | None = None
    state: str = ""  # the job's state (a JobState value) as last seen
    reason: str = ""  # the scheduler's words for why it waits
    position: int | None = None  # in the queue
    estimated_start: str | None = None  # ISO 8601, as the scheduler gave it
    node: str = ""  # where the single-user server listens
    remote_port: int = 0
    local_port: int = 0  # the hub-side end of the notebook forward
    hub_forward_port: int = 0  # the login-node end of the hub API forward
    state_dir: str = ""  # the job's folder on the cluster ("": the layout before hub ids)
    token_sha256: str = ""  # of the server's API token in the job's settings file


@dataclass
class Resume:
    """A job to adopt when the hub serves again: still queued or starting at its restart."""

    job: JobRecord
    reason: str = ""  # why, as the user reads it


@dataclass
class JobOutcome:
    """How the last job of a server ended; kept after the server stops, for the dashboard."""

    job_id: str
    state: str  # a JobState value, or "cancelled"
    message: str  # the failure (or stop) text people read
    ended_at: float
    exit_code: int | None = None
    log_tail: str = ""  # the job's last lines of output
    idle_seconds: float | None = None  # stopped after idling this long (spawner/idlecull.py)
    node_hours_returned: float | None = None  # nodes x walltime left at that stop


@dataclass
class Step:
    """One entry of a start's timeline: a progress event's phase, time and message."""

    phase: str
    time: float | None = None
    message: str = ""


@dataclass
class ClusterRef:
    """The cluster a server runs on, as saved with it."""

    name: str
    title: str = ""
    login_host: str = ""
    login_port: int = 22
    scheduler: str = ""
    scheduler_options: dict[str, str] = field(default_factory=dict)
    bin_dir: str = ""


@dataclass
class RecentChoice:
    """One set of spawn options a server was started with (as its user_options), and when."""

    options: dict[str, Any]
    at: float  # epoch seconds


@dataclass
class ServerState:
    """Everything saved about one server; `problems` says what a read could not take."""

    job: JobRecord = field(default_factory=JobRecord)
    tunnel: dict[str, Any] | None = None
    history: list[Step] = field(default_factory=list)
    last_outcome: JobOutcome | None = None
    cancel_pending: list[str] = field(default_factory=list)  # job ids whose cancel failed
    cluster: ClusterRef | None = None
    resume: Resume | None = None
    recent_choices: list[RecentChoice] = field(default_factory=list)  # newest first
    problems: list[str] = field(default_factory=list, compare=False)  # never saved

    def to_state(self) -> dict[str, Any]:
        """The saved form (plain JSON values); empty parts are left out."""
        state: dict[str, Any] = {"version": VERSION}
        if self.job.job_id:
            state["job"] = asdict(self.job)
        if self.tunnel is not None:
            state["tunnel"] = self.tunnel
        if self.history:
            state["history"] = [asdict(step) for step in self.history]
        if self.last_outcome is not None:
            state["last_outcome"] = asdict(self.last_outcome)
        if self.cancel_pending:
            state["cancel_pending"] = list(self.cancel_pending)
        if self.cluster is not None:
            state["cluster"] = asdict(self.cluster)
        if self.resume is not None:
            state["resume"] = asdict(self.resume)
        if self.recent_choices:
            state["recent_choices"] = [asdict(choice) for choice in self.recent_choices]
        return state


def read_server_state(state: dict[str, Any] | None) -> ServerState:
    """A saved state of any version this code knows, read into typed values.

    Never raises: a value of the wrong type is left out and named in `problems`, and a state
    of a newer version than this code reads is not read at all (one problem says so).

    >>> read_server_state({"version": 2, "job": {"job_id": "7", "nodes": ["cn1"]}}).job.nodes
    ['cn1']
    >>> read_server_state({"job": {"job_id": "7", "walltime": "1:30:00"}}).job.walltime_seconds
    5400
    >>> read_server_state({"version": 9}).problems
    ['saved by a newer hubdash (state version 9; this one reads up to 2): not read']
    """
    state = state if isinstance(state, dict) else {}
    version = state.get("version", 1)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        return ServerState(problems=[f"state version {_shown(version)} is not a version: not read"])
    if version > VERSION:
        return ServerState(
            problems=[
                f"saved by a newer hubdash (state version {version}; this one reads up to "
                f"{VERSION}): not read"
            ]
        )
    problems: list[str] = []
    job = state.get("job")
    if version == 1:
        # Version 1 also had the job's fields at the top level.
        job = _v1_job(job if isinstance(job, dict) else state, problems)
    saved = ServerState(
        job=_read(JobRecord, job, "job", problems) if job is not None else JobRecord(),
        tunnel=_dict_or_none(state.get("tunnel"), "tunnel", problems),
        history=_history(state.get("history"), problems),
        last_outcome=_outcome(state.get("last_outcome"), problems),
        cancel_pending=_job_ids(state.get("cancel_pending"), problems),
        cluster=_cluster(state.get("cluster"), problems),
        resume=_resume(state.get("resume"), problems),
        recent_choices=_recent_choices(state.get("recent_choices"), problems),
        problems=problems,
    )
    if not saved.job.job_id:
        saved.job = JobRecord()  # the rest of a job without an id is no job
    return saved


def _resume(data: Any, problems: list[str]) -> Resume | None:
    if data is None:
        return None
    if not isinstance(data, dict):
        problems.append(f"resume: {_shown(data)} is not an object")
        return None
    job = _read(JobRecord, data.get("job"), "resume.job", problems)
    if not job.job_id:
        problems.append("resume: no job id: not read")
        return None
    reason = data.get("reason")
    return Resume(job=job, reason=reason if isinstance(reason, str) else "")


def _recent_choices(value: Any, problems: list[str]) -> list[RecentChoice]:
    choices = []
    for index, entry in enumerate(_items(value, "recent_choices", problems)):
        try:
            choices.append(_read(RecentChoice, entry, f"recent_choices[{index}]", problems))
        except _Unreadable as exc:
            problems.append(f"{exc}: left out")
    return choices


def _cluster(data: Any, problems: list[str]) -> ClusterRef | None:
    if data is None:
        return None
    try:
        ref = _read(ClusterRef, data, "cluster", problems)
    except _Unreadable as exc:
        problems.append(f"{exc}: not read")
        return None
    options = ref.scheduler_options
    if not all(isinstance(k, str) and isinstance(v, str) for k, v in options.items()):
        problems.append("cluster.scheduler_options: not all text")
        ref.scheduler_options = {}
    return ref


def _v1_job(job: dict[str, Any], problems: list[str]) -> dict[str, Any] | None:
    if not job.get("job_id"):
        return None
    renamed = {_V1_JOB_NAMES.get(key, key): value for key, value in job.items()}
    walltime = renamed.pop("walltime", None)
    if walltime:
        match = _HMS.match(walltime) if isinstance(walltime, str) else None
        if match is None:
            problems.append(f"job.walltime: {_shown(walltime)} is not H:MM:SS")
        else:
            hours, minutes, seconds = (int(part) for part in match.groups())
            renamed["walltime_seconds"] = (hours * 60 + minutes) * 60 + seconds
    return renamed


def _read(cls: type[_T], data: Any, where: str, problems: list[str]) -> _T:
    """An instance of dataclass `cls` from `data`: unknown keys ignored, missing or null ones
    defaulted, values of the wrong type named in `problems` and defaulted."""
    if not isinstance(data, dict):
        problems.append(f"{where}: {_shown(data)} is not an object")
        data = {}
    hints = _hints(cls)
    values: dict[str, Any] = {}
    for spec in fields(cls):  # type: ignore[arg-type]
        value, hint = data.get(spec.name), hints[spec.name]
        if value is None and _allows_none(hint):
            values[spec.name] = None
        elif value is not None and _conforms(value, hint):
            values[spec.name] = list(value) if isinstance(value, list) else value
        else:
            if value is not None:
                problems.append(f"{where}.{spec.name}: {_shown(value)} is not {_name(hint)}")
            if spec.default is MISSING and spec.default_factory is MISSING:
                raise _Unreadable(f"{where}: no {spec.name}")
    return cls(**values)


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    """A dataclass's field types, evaluated once (its annotations are text here)."""
    return typing.get_type_hints(cls)


def _shown(value: Any) -> str:
    """A value as a problem names it: short, whatever it holds."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _Unreadable(ValueError):
    """A record that lacks a field it cannot do without."""


def _outcome(value: Any, problems: list[str]) -> JobOutcome | None:
    if value is None:
        return None
    try:
        outcome = _read(JobOutcome, value, "last_outcome", problems)
    except _Unreadable as exc:
        problems.append(f"{exc}: not read")
        return None
    return outcome


def _items(value: Any, where: str, problems: list[str]) -> list[Any]:
    """A saved list, or none (named in `problems` when it is something else)."""
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(f"{where}: {_shown(value)} is not a list")
        return []
    return value


def _history(value: Any, problems: list[str]) -> list[Step]:
    steps = []
    for index, entry in enumerate(_items(value, "history", problems)):
        try:
            steps.append(_read(Step, entry, f"history[{index}]", problems))
        except _Unreadable as exc:
            problems.append(f"{exc}: left out")
    return steps


def _job_ids(value: Any, problems: list[str]) -> list[str]:
    ids = []
    for job_id in _items(value, "cancel_pending", problems):
        if isinstance(job_id, str | int) and not isinstance(job_id, bool):
            ids.append(str(job_id))
        else:
            problems.append(f"cancel_pending: {_shown(job_id)} is not a job id")
    return ids


def _dict_or_none(value: Any, where: str, problems: list[str]) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    problems.append(f"{where}: {_shown(value)} is not an object")
    return None


def _allows_none(hint: Any) -> bool:
    return isinstance(hint, types.UnionType) and type(None) in typing.get_args(hint)


def _conforms(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a field's type (bool is no number; an int is a float)."""
    if isinstance(hint, types.UnionType):
        return any(_conforms(value, option) for option in typing.get_args(hint))
    origin = typing.get_origin(hint)
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_conforms(v, item) for v in value)
    if origin is dict:
        return isinstance(value, dict)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _name(hint: Any) -> str:
    """A field's type as a reader of a problem understands it."""
    words = {str: "text", int: "a whole number", float: "a number", type(None): "null"}
    if isinstance(hint, types.UnionType):
        return " or ".join(_name(option) for option in typing.get_args(hint))
    if typing.get_origin(hint) is list:
        return f"a list of {_name(typing.get_args(hint)[0])}"
    return words.get(hint, getattr(hint, "__name__", str(hint)))
