"""The scheduler adapter contract: job states, job information, and commands as data.

Adapters build argument lists and parse output; they never run anything themselves.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

# Re-exported: adapters format their walltime directives with it.
from hubdash.walltime import format_walltime as format_walltime


class SchedulerError(Exception):
    """A scheduler command failed or printed something we cannot read.

    Not a verdict on any job: callers keep the last known state.
    """


class JobState(enum.Enum):
    PENDING = "pending"  # queued, held, or being configured
    RUNNING = "running"
    COMPLETING = "completing"  # finished, the scheduler is cleaning up
    DONE = "done"  # ended on its own (any exit code)
    FAILED = "failed"  # ended by a node failure, timeout, out of memory, boot failure ...
    CANCELLED = "cancelled"
    GONE = "gone"  # the scheduler no longer knows the job

    @property
    def is_active(self) -> bool:
        return self in (JobState.PENDING, JobState.RUNNING)

    @property
    def is_finished(self) -> bool:
        return not self.is_active


@dataclass
class JobInfo:
    job_id: str
    state: JobState
    raw_state: str = ""  # the scheduler's own word, e.g. "PD", "R", "Q", "TIMEOUT"
    reason: str = ""  # why it waits or why it ended, in the scheduler's words
    queue: str = ""
    nodes: list[str] = field(default_factory=list)
    estimated_start: datetime | None = None
    exit_code: int | None = None
    position: int | None = None  # 1 = next to start in its queue
    output_path: str = ""  # the job's standard output file, where the scheduler reports it


@dataclass(frozen=True)
class UserAccounting:
    """What one user may charge, as the scheduler's accounting says, and their use this
    month (Slurm: slurmdbd)."""

    default_account: str = ""
    accounts: dict[str, tuple[str, ...]] = field(default_factory=dict)  # account -> its QOS
    default_qos: dict[str, str] = field(default_factory=dict)  # account -> its default QOS
    qos_max_walltime: dict[str, int | None] = field(default_factory=dict)  # None: no cap
    node_hours: dict[str, float] = field(default_factory=dict)  # account -> this month
    since: datetime | None = None  # the start of that month, the cluster's local time

    def qos_for(self, account: str) -> tuple[str, ...]:
        """The QOS a job charged to `account` ('' for the default account) may ask for."""
        return self.accounts.get(account or self.default_account, ())


@dataclass
class QueueSummary:
    name: str
    nodes_total: int | None = None
    nodes_free: int | None = None
    jobs_pending: int | None = None
    jobs_running: int | None = None
    max_walltime: str = ""
    state: str = ""
    is_default: bool = False  # where jobs go that name no queue


@dataclass
class Backlog:
    """What one queue holds, for a start estimate where the scheduler has no what-if query."""

    waiting_starts: list[datetime | None] = field(default_factory=list)  # per waiting job
    running_ends: list[tuple[datetime, int]] = field(default_factory=list)  # (walltime end, hosts)


@dataclass(frozen=True)
class JobRequest:
    """Validated resources for one job; every field is safe to place in a directive."""

    job_name: str
    queue: str
    walltime_seconds: int
    nodes: int = 1
    tasks_per_node: int = 1
    output_path: str = ""  # relative to the user's home (jobs are submitted from there)
    account: str = ""
    memory_mb: int | None = None  # per node
    gpus: int | None = None  # per node
    qos: str = ""  # Slurm's quality of service; empty: the association's default


# What a directive value or a scheduler argument may hold. Slurm's qsub wrapper joins its
# arguments into a shell line, so anything a shell reads (| & ( < * ~ # ...) is out too.
_DIRECTIVE_VALUE = re.compile(r"[A-Za-z0-9_.+\-/=:,@]+")
_JOB_ID = re.compile(r"[0-9][0-9A-Za-z_.\-+\[\]@]*")  # whole value: fullmatch


def check_directive_value(field_name: str, value: str) -> str:
    """The value itself, if it can stand in a directive line or an argument list; else ValueError.

    A second line of defence: the form validates first, so this only fires on a bug.

    >>> check_directive_value("queue", "debug")
    'debug'
    >>> check_directive_value("job_name", "a b")
    Traceback (most recent call last):
    ...
    ValueError: job_name 'a b' cannot go in a directive: only letters, digits and _ . + - / = : , @
    >>> check_directive_value("account", "-x")
    Traceback (most recent call last):
    ...
    ValueError: account '-x' cannot go in a directive: it starts with '-'
    """
    text = str(value)
    if not _DIRECTIVE_VALUE.fullmatch(text):
        raise ValueError(
            f"{field_name} {text[:80]!r} cannot go in a directive: "
            "only letters, digits and _ . + - / = : , @"
        )
    if text.startswith("-"):
        raise ValueError(f"{field_name} {text!r} cannot go in a directive: it starts with '-'")
    return text


def check_count(field_name: str, value: int, minimum: int = 1) -> int:
    """A whole number of at least `minimum` (nodes, tasks, seconds, MB); else ValueError.

    >>> check_count("nodes", 2)
    2
    >>> check_count("nodes", 0)
    Traceback (most recent call last):
    ...
    ValueError: nodes must be a whole number, at least 1, not 0
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{field_name} must be a whole number, at least {minimum}, not {value!r}")
    return value


def check_job_ids(job_ids: Iterable[str]) -> list[str]:
    """Job ids as the scheduler printed them, safe as arguments; ValueError if none or odd.

    >>> check_job_ids(["123", "124.server.example.org"])
    ['123', '124.server.example.org']
    >>> check_job_ids(["-1"])
    Traceback (most recent call last):
    ...
    ValueError: '-1' is not a job id a scheduler prints
    """
    ids = [str(job_id) for job_id in job_ids]
    if not ids:
        raise ValueError("no job ids given")
    for job_id in ids:
        if not _JOB_ID.fullmatch(job_id):
            raise ValueError(f"{job_id!r} is not a job id a scheduler prints")
    return ids


class SchedulerAdapter:
    """One batch system. Subclasses declare commands as data and parse their output."""

    name: str = ""
    directive_prefix: str = ""  # "#SBATCH" or "#PBS"

    def directives(self, request: JobRequest) -> list[str]:
        """Header lines for the job script: `directive_prefix` and each submit option."""
        return [f"{self.directive_prefix} {option}" for option in self.submit_options(request)]

    def submit_options(self, request: JobRequest) -> list[str]:
        """The submit command's options for `request`, each checked (ValueError naming the
        field otherwise)."""
        raise NotImplementedError

    def submit_command(self, script_path: str, request: JobRequest | None = None) -> list[str]:
        """The submit command for a script already on the cluster.

        Pass the request where the scheduler needs some of it on the command line
        (Slurm's qsub wrapper overrides the script's output path otherwise).
        """
        raise NotImplementedError

    def parse_submit(self, stdout: str) -> str:
        """The job id printed by the submit command; SchedulerError if there is none."""
        raise NotImplementedError

    def status_command(self, job_ids: list[str]) -> list[str]:
        raise NotImplementedError

    def parse_status(self, stdout: str, job_ids: list[str]) -> dict[str, JobInfo]:
        """Information for every job id asked about; ids the scheduler did not list are GONE."""
        raise NotImplementedError

    def status_failure_means_gone(self, exit_status: int, stderr: str) -> bool:
        """Whether a failed status command definitively says the jobs are unknown.

        Only such an answer may end a server; any other failure is a SchedulerError.
        """
        return False

    # The job monitor's query, for jobs of one cluster user. By default the status command
    # for the jobs due; Slurm overrides it with something cheaper.

    # None: one lookup command answers for any number of ids (qstat -f A B ...). A number:
    # a user with at least that many tracked jobs is asked about all of them in one
    # command (a per-user query); one with fewer, one id per command.
    lookup_batch_min: int | None = None

    def lookup_command(self, job_ids: list[str], username: str) -> list[str]:
        """The command that answers for these jobs of `username` at the least cost."""
        return self.status_command(job_ids)

    def parse_lookup(
        self, exit_status: int, stdout: str, stderr: str, job_ids: list[str]
    ) -> dict[str, JobInfo]:
        """Definitive answers from `lookup_command`: ids left out got none this time.

        Raises SchedulerError when the command as a whole gave no answer.
        """
        if exit_status != 0 and not self.status_failure_means_gone(exit_status, stderr):
            raise SchedulerError(
                f"status command failed (exit {exit_status}): "
                f"{(stderr or stdout).strip()[-400:] or '(no output)'}"
            )
        return self.parse_status(stdout, job_ids)

    # Follow-ups: a second command about one job of a lookup's answer, where the lookup
    # cannot tell all (Grid Engine: why a job waits; how a job that left the listing
    # ended). SchedulerClient.lookup runs at most `follow_ups_per_lookup` of them; while
    # `complete_lookup` says the scheduler has no answer yet, it asks again after each of
    # `follow_up_delays` seconds, and the job keeps the lookup's answer after the last.
    follow_ups_per_lookup: int = 4
    follow_up_delays: tuple[float, ...] = ()

    def follow_up_command(self, info: JobInfo) -> list[str] | None:
        """The command that completes this answer of a lookup; None when it is complete."""
        return None

    def complete_lookup(
        self, info: JobInfo, exit_status: int, stdout: str, stderr: str
    ) -> JobInfo | None:
        """`info` completed from `follow_up_command`'s answer; None: no answer yet."""
        return info

    def cancel_command(self, job_ids: list[str]) -> list[str]:
        raise NotImplementedError

    def jobs_named_command(self, job_name: str, user: str) -> list[str] | None:
        """The user's live jobs of this name, one id a line; None where it cannot be asked.

        Job names are deterministic per server, so this finds a job the hub submitted
        but never recorded (the hub died between submitting and saving).
        """
        return None

    def parse_job_ids(self, stdout: str, job_name: str = "", user: str = "") -> list[str]:
        """The ids `jobs_named_command(job_name, user)` printed (a line each by default)."""
        return [line.strip() for line in stdout.splitlines() if line.strip()]

    # --- a user's jobs by name (the hub's start-up sweep of its orphaned jobs) ------------

    def user_jobs_command(self, user: str) -> list[str] | None:
        """A listing of the cluster user's live jobs; None where it cannot be asked."""
        return None

    def parse_user_jobs(self, stdout: str, user: str) -> dict[str, str]:
        """Job id -> name from `user_jobs_command`'s answer; a name is '' where the listing
        holds none (then `job_names_command` is asked)."""
        raise NotImplementedError

    def job_names_command(self, job_ids: list[str]) -> list[str] | None:
        """The names of these jobs, where `user_jobs_command` lists ids only."""
        return None

    def parse_job_names(self, stdout: str) -> dict[str, str]:
        """Job id (as the scheduler prints it) -> name, from `job_names_command`'s answer."""
        raise NotImplementedError

    def queues_command(self) -> list[str]:
        raise NotImplementedError

    def parse_queues(self, stdout: str) -> dict[str, QueueSummary]:
        raise NotImplementedError

    # Optional queries. An adapter that cannot answer one returns None for its command;
    # a generic caller (the monitor) skips it then.

    def position_command(self, queue: str) -> list[str] | None:
        """A command that lists the queue's pending jobs, next to start first."""
        return None

    def parse_positions(self, stdout: str) -> dict[str, int]:
        """Job id -> place in the queue (1 = next), from `position_command`'s output.

        The caller copies these into JobInfo.position; a job not listed has no position.
        """
        return {}

    def job_detail_command(self, job_id: str) -> list[str] | None:
        """A command that tells a finished job's exit code, where its state does not."""
        return None

    def parse_job_detail(self, stdout: str) -> JobInfo:
        """The job as `job_detail_command` describes it (its exit code, at least)."""
        raise NotImplementedError

    def queue_detail_command(self) -> list[str] | None:
        """A second command that fills in what `queues_command` leaves out."""
        return None

    def add_queue_detail(self, queues: dict[str, QueueSummary], stdout: str) -> None:
        """Complete the summaries from `queues_command` with `queue_detail_command`'s output."""

    def test_only_command(self, request: JobRequest, script_path: str = "") -> list[str] | None:
        """A command that says when a job of this size would start, submitting nothing.

        Without `script_path`, a placeholder job stands in for the script.
        """
        return None

    def parse_test_only(self, stderr: str) -> datetime:
        """The start time from `test_only_command`'s answer; SchedulerError if it gave none."""
        raise SchedulerError("this scheduler gives no start estimates")

    def backlog_command(self, queue: str) -> list[str] | None:
        """Without a what-if query: a command listing the queue's jobs with the scheduler's
        own estimates (None: this scheduler gives none)."""
        return None

    def parse_backlog(self, stdout: str) -> Backlog:
        """`backlog_command`'s answer: when each waiting job starts, when running ones end."""
        raise SchedulerError("this scheduler gives no start estimates")

    # What a user may charge, from the scheduler's accounting (None: it keeps no such list).
    def accounting_commands(self, user: str, now: datetime) -> list[list[str]] | None:
        return None

    def parse_accounting(self, stdouts: list[str], now: datetime) -> UserAccounting:
        raise SchedulerError("this scheduler keeps no accounts of its own")

    # The job's own id inside the job, for the launcher and for messages.
    job_id_variable: str = ""

    def same_job(self, written: str, ours: str) -> bool:
        """Whether the job id `written` (by the job from `job_id_variable`, or by a status
        command) names the job `ours` (as the submit command printed it). An empty id
        names none.

        >>> adapter = SchedulerAdapter()
        >>> adapter.same_job("123", "123"), adapter.same_job("12", "123"), adapter.same_job("", "")
        (True, False, False)
        """
        return bool(written) and written == ours
