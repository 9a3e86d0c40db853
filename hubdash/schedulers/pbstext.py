"""How PBS writes things: the `key = value` records of qstat -f, qstat -Q -f and pbsnodes, the
qstat tables, times, durations, exec_host, and what a finished job's exit status means.

Pure functions, shared by every PBS flavor. The JSON forms of OpenPBS (pbsjson.py) are
flattened into the same records, so one reader serves both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from hubdash.schedulers.base import JobState, QueueSummary, format_walltime

# 256 + signal is how Torque and PBS Pro report a job killed by a signal.
SIGNAL_BASE = 256
_SIGTERM = 15

JOB_HEADER = re.compile(r"^Job Id:\s*(\S+)")
QUEUE_HEADER = re.compile(r"^Queue:\s*(\S+)")
NODE_HEADER = re.compile(r"^(\S+)\s*$")
_ATTRIBUTE = re.compile(r"^([A-Za-z_][\w.\-]*) =(?: (.*))?$")

# PBS Pro's own exit statuses for jobs it ended (JOB_EXEC_* in OpenPBS's job.h); any other
# negative one means it could not start or run the job.
_PBS_ENDED = {
    -24: "used more CPUs than it asked for",
    -25: "used more CPUs than it asked for",
    -26: "used more virtual memory than it asked for",
    -27: "used more memory than it asked for",
    -28: "used more CPU time than it asked for",
    -29: "ran out of walltime",
}

Records = list[tuple[str, dict[str, str]]]


@dataclass
class NodeCounts:
    """Compute nodes as `pbsnodes -a` shows them, cluster-wide."""

    total: int = 0
    free: int = 0  # idle: state free and no jobs on it
    unavailable: int = 0  # down, offline or unknown


def parse_records(text: str, header: re.Pattern[str]) -> Records:
    """The `name` + indented `key = value` records of qstat -f, qstat -Q -f and pbsnodes.

    Torque and PBS Pro indent attributes with spaces and continue long values on lines
    that start with a tab; the Slurm wrapper indents with a tab and never wraps. So the
    first attribute line of a record sets the indent, and any other indented line
    continues the previous value.

    >>> parse_records("Job Id: 7.srv\\n    a = T: \\n\\t16)\\n    b = 2\\n", JOB_HEADER)
    [('7.srv', {'a': 'T: 16)', 'b': '2'})]
    """
    records: Records = []
    attributes: dict[str, str] | None = None
    indent: str | None = None
    last_key = ""
    for line in text.splitlines():
        if not line.strip():
            continue
        if not line[0].isspace():
            match = header.match(line)
            if match:
                attributes, indent, last_key = {}, None, ""
                records.append((match.group(1), attributes))
            else:
                attributes = None  # stray text: no record until the next header
            continue
        if attributes is None:
            continue
        own_indent = line[: len(line) - len(line.lstrip())]
        match = _ATTRIBUTE.match(line.lstrip())
        if match and indent in (None, own_indent):
            indent = own_indent
            last_key = match.group(1)
            attributes[last_key] = match.group(2) or ""
        elif last_key:
            # A continuation: the value was cut at a fixed width (maybe right after a
            # space), so join it as it stands.
            attributes[last_key] += line[1:] if line.startswith("\t") else line.lstrip()
    for _, attrs in records:
        for key, value in attrs.items():
            attrs[key] = value.strip()
    return records


def exec_host_nodes(exec_host: str) -> list[str]:
    """Node names from exec_host, in order, each once.

    >>> exec_host_nodes("cn01/0-3+cn02/0-3")
    ['cn01', 'cn02']
    >>> exec_host_nodes("cn1/0+cn1/1+cn2/0")
    ['cn1', 'cn2']
    >>> exec_host_nodes("pbs-cn1/1*2+pbs-cn2/0*2")
    ['pbs-cn1', 'pbs-cn2']
    """
    nodes: list[str] = []
    for slot in exec_host.strip().split("+"):
        node = slot.split("/")[0].strip()
        if node and node != "--" and node not in nodes:
            nodes.append(node)
    return nodes


def parse_pbs_time(text: str) -> datetime | None:
    """A qstat time (`Wed Nov 25 21:40:00 2026`, or seconds since the epoch); None if neither.

    >>> parse_pbs_time("Wed Nov  5 21:40:00 2026")
    datetime.datetime(2026, 11, 5, 21, 40)
    """
    text = " ".join(text.split())
    if text.isdigit():
        return datetime.fromtimestamp(int(text))
    try:
        return datetime.strptime(text, "%a %b %d %H:%M:%S %Y")
    except ValueError:
        return None


def pbs_walltime(text: str) -> str:
    """A PBS duration (`[[H:]M:]S`, plain seconds) as H:MM:SS; empty if unreadable.

    >>> pbs_walltime("48:00:00"), pbs_walltime("3600"), pbs_walltime("")
    ('48:00:00', '1:00:00', '')
    """
    parts = text.strip().split(".")[0].split(":")
    if not all(part.isdigit() for part in parts) or len(parts) > 3:
        return ""
    seconds = 0
    for part in parts:
        seconds = seconds * 60 + int(part)
    return format_walltime(seconds)


def finished_state(exit_status: int | None, deleted: bool = False) -> JobState:
    """How a finished PBS job ended, from its exit status.

    0-255: the job script's own exit code, DONE. 271 (256 + SIGTERM): what qdel of a
    running job gives; Torque reports a walltime kill the same way, so a cancelled job
    and one that ran out of time look alike there. Other values above 256 (killed by
    another signal) and negative ones (PBS could not start the job, or ended it: -29 is
    PBS Pro's walltime kill) are FAILED. No exit status at all (the Slurm wrapper never
    prints one) counts as DONE. `deleted`: PBS Pro says the job was deleted (qdel), which
    it also says of a queued job that never ran and so has no exit status: CANCELLED.

    >>> [finished_state(status).value for status in (0, 1, 271, 265, -1, -29, None)]
    ['done', 'done', 'cancelled', 'failed', 'failed', 'failed', 'done']
    >>> finished_state(None, deleted=True).value
    'cancelled'
    """
    if deleted or exit_status == SIGNAL_BASE + _SIGTERM:
        return JobState.CANCELLED
    if exit_status is None or 0 <= exit_status < SIGNAL_BASE:
        return JobState.DONE
    return JobState.FAILED


def exit_reason(exit_status: int | None) -> str:
    """Words for an exit status PBS gave, where the job's own code does not explain it.

    >>> exit_reason(271), exit_reason(-29), exit_reason(3)
    ('killed by signal 15', 'ran out of walltime', '')
    >>> exit_reason(-1)
    'the batch system could not run the job (exit status -1)'
    """
    if exit_status is None:
        return ""
    if exit_status > SIGNAL_BASE:
        return f"killed by signal {exit_status - SIGNAL_BASE}"
    if exit_status in _PBS_ENDED:
        return _PBS_ENDED[exit_status]
    if exit_status < 0:
        return f"the batch system could not run the job (exit status {exit_status})"
    return ""


def queue_from_attributes(name: str, attributes: dict[str, str]) -> QueueSummary:
    """One queue of `qstat -Q -f` (text or flattened JSON)."""
    # state_count = Transit:0 Queued:1 Held:0 Waiting:0 Running:2 Exiting:0 ...
    counts: dict[str, int] = {}
    for item in attributes.get("state_count", "").split():
        key, _, number = item.partition(":")
        if to_int(number) is not None:
            counts[key] = to_int(number) or 0
    return QueueSummary(
        name=name,
        jobs_pending=sum(counts.get(k, 0) for k in ("Queued", "Held", "Waiting"))
        if counts
        else None,
        jobs_running=counts.get("Running") if counts else None,
        max_walltime=pbs_walltime(attributes.get("resources_max.walltime", "")),
        state=queue_state(attributes.get("enabled", ""), attributes.get("started", "")),
    )


def queues_from_table(stdout: str) -> dict[str, QueueSummary]:
    """Queues from the `qstat -Q` table (what Slurm's wrapper prints for -Q -f too)."""
    # Queue Max Tot Ena Str Que Run Hld Wat Trn Ext T [Cpt] ; the wrapper prints "?" counts.
    queues: dict[str, QueueSummary] = {}
    columns: list[str] = []
    for line in stdout.splitlines():
        words = line.split()
        if not words or set(line.strip()) <= {"-", " "}:
            continue
        if words[0] == "Queue":
            columns = words
            continue
        if not columns or len(words) < len(columns):
            continue
        row = dict(zip(columns, words, strict=False))
        waiting = [to_int(row.get(k, "")) for k in ("Que", "Hld", "Wat")]
        queues[words[0]] = QueueSummary(
            name=words[0],
            jobs_pending=None if None in waiting else sum(n for n in waiting if n is not None),
            jobs_running=to_int(row.get("Run", "")),
            state=queue_state(row.get("Ena", ""), row.get("Str", "")),
        )
    return queues


def queue_state(enabled: str, started: str) -> str:
    if not _true(enabled):
        return "disabled"  # accepts no new jobs
    return "up" if _true(started) else "stopped"  # stopped: accepts jobs, starts none


def count_nodes(records: Records) -> NodeCounts:
    """Cluster-wide node counts from pbsnodes records (text or flattened JSON)."""
    counts = NodeCounts()
    for _, attributes in records:
        if "state" not in attributes:
            continue
        words = {re.sub(r"[^a-z\-]", "", w) for w in attributes["state"].lower().split(",")}
        counts.total += 1
        if words == {"free"} and not attributes.get("jobs", "").strip():
            counts.free += 1
        elif words & {"down", "offline", "state-unknown", "unknown", "stale", "drained"}:
            counts.unavailable += 1
    return counts


def queued_in_order(stdout: str) -> list[str]:
    """Ids of the queued (Q) jobs of a `qstat -T -w` table, in its order: running jobs
    first, then queued ones by the scheduler's estimated start, then those without one.

    Job names and user names hold no spaces, so the state is the tenth word of a row.

    >>> queued_in_order("Job ID  User Queue Name SessID NDS TSK Memory Time S Time\\n"
    ...     "------- ---- ----- ---- ------ --- --- ------ ---- - ----\\n"
    ...     "7.s  al q a 12  1 1 -- 00:10 R --\\n8.s  al q b --  1 1 -- 00:10 Q 11:25\\n"
    ...     "9.s  al q c --  1 1 -- 00:10 H --\\n10.s al q d --  1 1 -- 00:10 Q --\\n")
    ['8.s', '10.s']
    """
    ids: list[str] = []
    dashes_seen = False
    for line in stdout.splitlines():
        words = line.split()
        if not words:
            continue
        if set(line.strip()) <= {"-", " "}:
            dashes_seen = True
            continue
        if dashes_seen and len(words) >= 11 and words[9] == "Q" and not words[0].endswith("*"):
            ids.append(words[0])  # a '*' ends an id qstat cut short: it names no job whole
    return ids


def strip_host(path: str) -> str:
    """Output_Path is "host:/path"; the host is the submit host, the path is what we want."""
    path = path.strip()
    host, sep, rest = path.partition(":")
    return rest if sep and "/" not in host else path


def to_int(text: str) -> int | None:
    text = text.strip()
    return int(text) if re.fullmatch(r"-?\d+", text) else None


def _true(text: str) -> bool:
    return text.strip().lower() in ("true", "yes", "y", "1", "t")
