"""How Slurm writes what it prints: job state words, compressed host lists (`cn[1-3,5]`),
timestamps, time limits, exit codes, and scontrol's Key=Value records. Pure functions of text,
used by the Slurm adapter (hubdash.schedulers.slurm) to read its commands' answers.
"""

from __future__ import annotations

import re
from datetime import datetime

from hubdash.schedulers.base import JobState, format_walltime
from hubdash.walltime import parse_walltime

# squeue's long state names (%T).
_STATES = {
    "PENDING": JobState.PENDING,
    "CONFIGURING": JobState.PENDING,  # nodes allocated, booting: not running yet
    "REQUEUED": JobState.PENDING,
    "REQUEUE_FED": JobState.PENDING,
    "REQUEUE_HOLD": JobState.PENDING,
    "RESV_DEL_HOLD": JobState.PENDING,
    "SPECIAL_EXIT": JobState.PENDING,  # requeued and held by the site's epilog
    "SUSPENDED": JobState.PENDING,  # holds its nodes but its server cannot answer
    "STOPPED": JobState.PENDING,
    "RUNNING": JobState.RUNNING,
    "RESIZING": JobState.RUNNING,
    "SIGNALING": JobState.RUNNING,
    "COMPLETING": JobState.COMPLETING,
    "STAGE_OUT": JobState.COMPLETING,
    "COMPLETED": JobState.DONE,
    "FAILED": JobState.FAILED,
    "TIMEOUT": JobState.FAILED,
    "NODE_FAIL": JobState.FAILED,
    "OUT_OF_MEMORY": JobState.FAILED,
    "BOOT_FAIL": JobState.FAILED,
    "DEADLINE": JobState.FAILED,
    "PREEMPTED": JobState.FAILED,
    "CANCELLED": JobState.CANCELLED,
    "REVOKED": JobState.CANCELLED,  # federation: a sibling cluster runs it instead
}

# Words Slurm prints where there is no value.
NONE_WORDS = {"", "N/A", "(null)", "None", "Unknown", "NONE"}

# One scontrol field: a key that follows whitespace (or the line's start) and an '='.
_SCONTROL_KEY = re.compile(r"(?:^|(?<=\s))([A-Za-z][\w:/.+\-]*)=")


# The states of a job that still holds (or waits for) nodes, as squeue -t takes them.
LIVE_STATES = "PENDING,RUNNING,SUSPENDED,CONFIGURING"


def squeue_live(user: str, *selection: str, fields: str) -> list[str]:
    """squeue listing one user's live jobs (`selection`: more squeue options), no header.
    `user` and each selection value must be checked already (check_directive_value)."""
    return ["squeue", "-h", "-u", user, *selection, "-t", LIVE_STATES, "-o", fields]


def parse_id_and_name(stdout: str) -> dict[str, str]:
    r"""Job id -> name from squeue -o '%i|%j' (the name may hold '|'; the id never does).

    >>> parse_id_and_name("12|jupyterhub-h1-alice-default\n13|a|b\n\n")
    {'12': 'jupyterhub-h1-alice-default', '13': 'a|b'}
    """
    jobs = {}
    for line in stdout.splitlines():
        job_id, bar, name = line.strip().partition("|")
        if bar and job_id:
            jobs[job_id] = name
    return jobs


def slurm_state(raw_state: str) -> JobState:
    """Our state for Slurm's word; a word we do not know keeps the job waiting, never ends it.

    >>> slurm_state("COMPLETING")
    <JobState.COMPLETING: 'completing'>
    >>> slurm_state("CANCELLED+")
    <JobState.CANCELLED: 'cancelled'>
    >>> slurm_state("SOMETHING_NEW")
    <JobState.PENDING: 'pending'>
    """
    # scontrol may print "CANCELLED by 1001"; sacct appends "+" for some states.
    word = raw_state.strip().split(" ")[0].rstrip("+")
    return _STATES.get(word, JobState.PENDING)


def expand_hostlist(hostlist: str) -> list[str]:
    """Node names from Slurm's compressed host list, in Slurm's order.

    >>> expand_hostlist("cn[1-3,5]")
    ['cn1', 'cn2', 'cn3', 'cn5']
    >>> expand_hostlist("cn1,cn2")
    ['cn1', 'cn2']
    >>> expand_hostlist("n[01-03]")
    ['n01', 'n02', 'n03']
    >>> expand_hostlist("gpu[8-10],cn7")
    ['gpu8', 'gpu9', 'gpu10', 'cn7']
    >>> expand_hostlist("r[1-2]n[1-2]")
    ['r1n1', 'r1n2', 'r2n1', 'r2n2']
    >>> expand_hostlist("(null)")
    []
    >>> expand_hostlist("cn[1-")
    Traceback (most recent call last):
    ...
    ValueError: unbalanced '[' in host list 'cn[1-'
    """
    text = hostlist.strip()
    if text in NONE_WORDS:
        return []
    names: list[str] = []
    for item in _split_outside_brackets(text):
        names.extend(_expand_item(item, hostlist))
    return names


def _split_outside_brackets(text: str) -> list[str]:
    items, depth, start = [], 0, 0
    for i, char in enumerate(text):
        if char == "[":
            depth += 1
        elif char == "]":
            depth -= 1
        elif char == "," and depth == 0:
            items.append(text[start:i])
            start = i + 1
    items.append(text[start:])
    return [item for item in items if item]


def _expand_item(item: str, whole: str) -> list[str]:
    opening = item.find("[")
    if opening < 0:
        if "]" in item:
            raise ValueError(f"unbalanced ']' in host list {whole!r}")
        return [item]
    closing = item.find("]", opening)
    if closing < 0:
        raise ValueError(f"unbalanced '[' in host list {whole!r}")
    prefix, ranges, rest = item[:opening], item[opening + 1 : closing], item[closing + 1 :]
    tails = _expand_item(rest, whole) if rest else [""]
    return [prefix + number + tail for number in _numbers(ranges, whole) for tail in tails]


def _numbers(ranges: str, whole: str) -> list[str]:
    numbers = []
    for part in ranges.split(","):
        low, _, high = part.partition("-")
        if not low.isdigit() or (high and not high.isdigit()):
            raise ValueError(f"bad range {part!r} in host list {whole!r}")
        width = len(low)  # "01-03" keeps its zero padding
        for n in range(int(low), int(high or low) + 1):
            numbers.append(str(n).zfill(width))
    return numbers


def parse_slurm_time(text: str) -> datetime | None:
    """A Slurm timestamp (local time, no zone); None for N/A, Unknown and the like.

    >>> parse_slurm_time("2026-11-25T21:30:00")
    datetime.datetime(2026, 11, 25, 21, 30)
    >>> parse_slurm_time("N/A") is None
    True
    """
    text = text.strip()
    if text in NONE_WORDS:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def slurm_walltime(text: str) -> str:
    """A partition's time limit as H:MM:SS; empty when unlimited.

    >>> slurm_walltime("1-00:00:00")
    '24:00:00'
    >>> slurm_walltime("30:00")
    '0:30:00'
    >>> slurm_walltime("infinite")
    ''
    """
    try:
        return format_walltime(parse_walltime(text))
    except ValueError:  # WalltimeError is one
        return ""  # "infinite", "n/s" (not set) and the like


def parse_exit_code(text: str) -> int | None:
    """The job's exit code from scontrol's `ExitCode=code:signal`.

    A job killed by a signal reports 128 + signal, as a shell would.

    >>> parse_exit_code("1:0")
    1
    >>> parse_exit_code("0:9")
    137
    >>> parse_exit_code("") is None
    True
    """
    code, _, signal = text.strip().partition(":")
    if not code.isdigit():
        return None
    if int(code) == 0 and signal.isdigit() and int(signal) > 0:
        return 128 + int(signal)
    return int(code)


def parse_scontrol_line(line: str) -> dict[str, str]:
    """The Key=Value fields of one `scontrol show -o` record; values may hold spaces.

    >>> fields = parse_scontrol_line("JobId=7 Reason=Nodes required for job are DOWN ExitCode=0:0")
    >>> fields["Reason"], fields["ExitCode"]
    ('Nodes required for job are DOWN', '0:0')
    """
    keys = list(_SCONTROL_KEY.finditer(line))
    ends = [following.start() for following in keys[1:]] + [len(line)]
    # With no keys, `ends` still holds the line's end: zip stops at the shorter list.
    pairs = zip(keys, ends, strict=False)
    return {match.group(1): line[match.end() : end].strip() for match, end in pairs}
