"""Slurm's accounting (slurmdbd): what a user may charge, their use this month, and how a job
that slurmctld has forgotten ended. Argument lists out, parsed answers in; nothing runs here.

- `associations_command(user)`: `sacctmgr show user USER withassoc` — the accounts the user
  may charge, each with the QOS it allows and its default QOS, and the default account.
- `qos_command()`: `sacctmgr show qos` — each QOS's walltime cap (MaxWall).
- `usage_command(user, since)`: `sacct -X -T` — the user's jobs since the start of the month,
  cut to that window; node-hours per account (allocated nodes × elapsed).
- `ended_command(job_id)`: `sacct -X -j ID` — state, exit code and nodes of a job after
  slurmctld dropped it (MinJobAge, 300 s by default), as long as slurmdbd keeps jobs.

All with `-n -P` (no header, '|' between fields), the same from Slurm 20.11 to 24.x.
"""

from __future__ import annotations

from datetime import datetime

from hubdash.schedulers.base import (
    JobInfo,
    SchedulerError,
    UserAccounting,
    check_directive_value,
    check_job_ids,
)
from hubdash.schedulers.slurmtext import (
    NONE_WORDS,
    expand_hostlist,
    parse_exit_code,
    slurm_state,
)
from hubdash.walltime import WalltimeError, parse_walltime

ASSOCIATION_FIELDS = "DefaultAccount,Account,QOS,DefaultQOS"
USAGE_FIELDS = "Account,NNodes,ElapsedRaw"
ENDED_FIELDS = "JobID,State,ExitCode,NodeList"


def associations_command(user: str) -> list[str]:
    user = check_directive_value("user", user)
    return [
        "sacctmgr",
        "-n",
        "-P",
        "show",
        "user",
        user,
        "withassoc",
        f"format={ASSOCIATION_FIELDS}",
    ]


def parse_associations(stdout: str) -> tuple[str, dict[str, tuple[str, ...]], dict[str, str]]:
    """(default account, {account: its QOS}, {account: default QOS}) from `sacctmgr show user
    withassoc`; an association on several partitions appears once per row, merged here.

    >>> parse_associations("proj1|proj2|normal,short|normal\\nproj1|proj1|normal|normal\\n")
    ('proj1', {'proj1': ('normal',), 'proj2': ('normal', 'short')}, {'proj2': 'normal', ...})
    """
    default = ""
    accounts: dict[str, tuple[str, ...]] = {}
    default_qos: dict[str, str] = {}
    for line in stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 4:
            continue
        user_default, account, qos_list, qos_default = (p.strip() for p in parts)
        if not account:
            continue
        default = default or user_default
        qos = tuple(q for q in qos_list.split(",") if q)
        merged = dict.fromkeys((*accounts.get(account, ()), *qos))
        accounts[account] = tuple(merged)
        if qos_default and account not in default_qos:
            default_qos[account] = qos_default
    # The default account first, then by name: sacctmgr's own order is its database's.
    ordered = sorted(accounts, key=lambda name: (name != default, name))
    return default, {name: accounts[name] for name in ordered}, default_qos


def qos_command() -> list[str]:
    return ["sacctmgr", "-n", "-P", "show", "qos", "format=Name,MaxWall"]


def parse_qos(stdout: str) -> dict[str, int | None]:
    """Each QOS's walltime cap in seconds (None: none).

    >>> parse_qos("normal|\\nshort|00:30:00\\nlong|2-00:00:00\\n")
    {'normal': None, 'short': 1800, 'long': 172800}
    """
    caps: dict[str, int | None] = {}
    for line in stdout.splitlines():
        name, _, max_wall = line.strip().partition("|")
        if not name:
            continue
        try:
            caps[name] = parse_walltime(max_wall) if max_wall.strip() else None
        except WalltimeError:
            caps[name] = None
    return caps


def month_start(now: datetime) -> datetime:
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


def usage_command(user: str, since: datetime) -> list[str]:
    user = check_directive_value("user", user)
    return [
        "sacct",
        "-n",
        "-P",
        "-X",  # the allocations only, not their steps
        "-T",  # times cut to the window: this month's share of a job that began before it
        "-u",
        user,
        "-S",
        since.strftime("%Y-%m-%dT%H:%M:%S"),
        "-E",
        "now",
        "-o",
        USAGE_FIELDS,
    ]


def parse_usage(stdout: str) -> dict[str, float]:
    """Node-hours per account, from sacct's allocated nodes and elapsed seconds.

    >>> parse_usage("proj1|2|1800\\nproj1|1|3600\\nproj2|1|0\\n")
    {'proj1': 2.0, 'proj2': 0.0}
    """
    hours: dict[str, float] = {}
    for line in stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
            continue
        account, nodes, elapsed = parts[0], int(parts[1]), int(parts[2])
        hours[account] = hours.get(account, 0.0) + nodes * elapsed / 3600
    return {account: round(value, 4) for account, value in hours.items()}


def ended_command(job_id: str) -> list[str]:
    (job,) = check_job_ids([job_id])
    return ["sacct", "-n", "-P", "-X", "-j", job, "-o", ENDED_FIELDS]


def parse_ended(stdout: str, job_id: str) -> JobInfo | None:
    """How the job ended as slurmdbd recorded it; None while it has no record (or the job
    still runs there). SchedulerError for a record that cannot be read.

    >>> info = parse_ended("7|FAILED|3:0|cn1\\n", "7")
    >>> info.state, info.raw_state, info.exit_code, info.nodes
    (<JobState.FAILED: 'failed'>, 'FAILED', 3, ['cn1'])
    """
    for line in stdout.splitlines():
        parts = line.strip().split("|")
        if len(parts) != 4 or parts[0] != job_id:
            continue
        raw_state, exit_text, nodelist = parts[1].strip(), parts[2], parts[3].strip()
        word = raw_state.split()[0] if raw_state else ""
        if not word:
            raise SchedulerError(f"sacct gave job {job_id} no state: {line.strip()!r}")
        state = slurm_state(word)
        if state.is_active:
            return None  # slurmctld lost it while slurmdbd still has it running: no answer
        return JobInfo(
            job_id=job_id,
            state=state,
            raw_state=raw_state,
            reason="recorded by Slurm's accounting (sacct)",
            nodes=expand_hostlist(nodelist) if nodelist not in NONE_WORDS else [],
            exit_code=parse_exit_code(exit_text),
        )
    return None


def accounting_commands(user: str, now: datetime) -> list[list[str]]:
    """The three questions behind a user's UserAccounting, asked side by side."""
    return [associations_command(user), qos_command(), usage_command(user, month_start(now))]


def parse_accounting(stdouts: list[str], now: datetime) -> UserAccounting:
    """A UserAccounting from the answers to `accounting_commands`, in their order."""
    default, accounts, default_qos = parse_associations(stdouts[0])
    return UserAccounting(
        default_account=default,
        accounts=accounts,
        default_qos=default_qos,
        qos_max_walltime=parse_qos(stdouts[1]),
        node_hours=parse_usage(stdouts[2]),
        since=month_start(now),
    )
