"""PBS: the argument lists for qsub, qstat, qdel and pbsnodes, and how to read their answers.

Pure: builds commands and parses text. Speaks Torque 6, PBS Pro/OpenPBS and Slurm's Torque wrappers.

Three flavors, because the three differ where it matters (`PBSAdapter(flavor=...)`):

- "torque": Torque 6. Nodes as `-l nodes=N:ppn=T[:gpus=G]`, memory as the job's total
  `-l mem=<MB>mb`. `qstat -x` would mean XML, so finished jobs are seen only while the
  server keeps them (keep_completed).
- "pbspro": PBS Pro and OpenPBS. Nodes as `-l select=N:ncpus=T:mpiprocs=T[:ngpus=G][:mem=]`
  with `-l place=scatter` (one chunk per node). `qstat -x` so finished jobs stay visible.
- "slurm-torque": Slurm's perl wrappers (Debian's slurm-wlm-torque). sbatch reads the
  `#PBS` lines; `-l mem` is per node there and GPUs go as `-l naccelerators`. The
  wrapper's qsub puts its own `-o`/`-e` on sbatch's command line, which beats the
  script's `#PBS -o`: pass the request to `submit_command` to keep the output path.
  Its jobs are Slurm jobs: they see SLURM_JOB_ID, not PBS_JOBID.

Every flavor: the script's first line must be `#!...` (the wrapper refuses others, and
Torque and PBS Pro read the shell from it). A relative `-o` is qsub's directory's: the
user's home, where the hub submits from; the job script `cd`s to the home itself.

What the caller does around these methods:

- status: run `status_command(ids)`; one call covers many ids. qstat lists the ids it
  knows and complains on stderr about the others, with a non-zero exit. So: exit 0, or
  `status_failure_means_gone(exit, stderr)` true (every stderr line says "unknown job" or
  "job has finished", or the wrapper's silent exit 153), then `parse_status(stdout, ids)`:
  listed ids get their state, the others are GONE. Any other failure: SchedulerError.
  `unknown_ids(stderr)` names the ids qstat called unknown, for logs.
- queues: `queues_command()` (qstat -Q -f) gives job counts, limits and state per queue;
  nodes are not tied to queues in PBS, so `nodes_command()` (pbsnodes -a) gives the
  cluster-wide node counts, and `add_queue_detail` copies them into every queue.
- position in the queue: PBS has no priority-ordered listing that all three flavors
  share; `position_command` is None.

Times: qstat prints the server's local time (`Wed Nov 25 21:40:00 2026`); parsed naive.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from hubdash.schedulers.base import (
    JobInfo,
    JobRequest,
    JobState,
    QueueSummary,
    SchedulerAdapter,
    SchedulerError,
    check_count,
    check_directive_value,
    check_job_ids,
    format_walltime,
)

FLAVORS = ("torque", "pbspro", "slurm-torque")

# 256 + signal is how Torque and PBS Pro report a job killed by a signal.
_SIGNAL_BASE = 256
_SIGTERM = 15

_SUBMITTED = re.compile(r"^\d+(?:\[\d*\])?(?:\.[A-Za-z0-9][\w.\-]*)?$")
_UNKNOWN = re.compile(r"^qstat: Unknown Job Id(?: Error)? (\S+)")
_FINISHED = re.compile(r"^qstat: (\S+) Job has finished")
_ATTRIBUTE = re.compile(r"^([A-Za-z_][\w.\-]*) =(?: (.*))?$")
_JOB_HEADER = re.compile(r"^Job Id:\s*(\S+)")
_QUEUE_HEADER = re.compile(r"^Queue:\s*(\S+)")
_NODE_HEADER = re.compile(r"^(\S+)\s*$")

# The wrapper's qstat exits 153 (PBS's "unknown job id" code) and prints nothing when
# none of the asked ids exist.
_WRAPPER_UNKNOWN_EXIT = 153


@dataclass
class NodeCounts:
    """Compute nodes as `pbsnodes -a` shows them, cluster-wide."""

    total: int = 0
    free: int = 0  # idle: state free and no jobs on it
    unavailable: int = 0  # down, offline or unknown


class PBSAdapter(SchedulerAdapter):
    """qsub/qstat/qdel/pbsnodes; `flavor` is 'torque', 'pbspro' or 'slurm-torque'."""

    name = "pbs"
    directive_prefix = "#PBS"

    def __init__(self, flavor: str = "torque"):
        if flavor not in FLAVORS:
            raise ValueError(
                f"unknown PBS flavor {flavor!r}: choose 'torque' (Torque 6), "
                "'pbspro' (PBS Pro, OpenPBS) or 'slurm-torque' (Slurm's qsub wrappers)"
            )
        self.flavor = flavor
        # Torque's nodes=N:ppn=T, or PBS Pro's select=N:ncpus=T.
        self.node_spelling = "select" if flavor == "pbspro" else "nodes"
        # PBS Pro hides finished jobs without -x; Torque's -x means XML; the wrapper has none.
        self.show_finished = flavor == "pbspro"
        self.job_id_variable = "SLURM_JOB_ID" if flavor == "slurm-torque" else "PBS_JOBID"

    # --- the job script and submission -------------------------------------------------

    def submit_options(self, request: JobRequest) -> list[str]:
        options = []
        if request.job_name:
            options.append(f"-N {check_directive_value('job_name', request.job_name)}")
        if request.queue:
            options.append(f"-q {check_directive_value('queue', request.queue)}")
        seconds = check_count("walltime_seconds", request.walltime_seconds)
        options.append(f"-l walltime={format_walltime(seconds)}")
        options.extend(self._resource_options(request))
        if request.output_path:
            options.append(f"-o {check_directive_value('output_path', request.output_path)}")
            options.append("-j oe")
        if request.account:
            options.append(f"-A {check_directive_value('account', request.account)}")
        # Not rerunnable: after a node failure a rerun would be a server no tunnel leads to.
        options.append("-r n")
        return options

    def _resource_options(self, request: JobRequest) -> list[str]:
        nodes = check_count("nodes", request.nodes)
        tasks = check_count("tasks_per_node", request.tasks_per_node)
        memory = None if request.memory_mb is None else check_count("memory_mb", request.memory_mb)
        gpus = check_count("gpus", request.gpus) if request.gpus else 0
        if self.node_spelling == "select":
            chunk = f"select={nodes}:ncpus={tasks}:mpiprocs={tasks}"
            chunk += f":ngpus={gpus}" if gpus else ""
            chunk += f":mem={memory}mb" if memory else ""  # per chunk, i.e. per node
            return [f"-l {chunk}", "-l place=scatter"]
        spec = f"nodes={nodes}:ppn={tasks}"
        if gpus and self.flavor == "torque":
            spec += f":gpus={gpus}"
        options = [f"-l {spec}"]
        if gpus and self.flavor == "slurm-torque":
            # sbatch would read ":gpus=G" in nodes= as a host name; naccelerators is --gpus (total).
            options.append(f"-l naccelerators={gpus * nodes}")
        if memory:
            # Torque's mem is the job's total; sbatch turns it into --mem, which is per node.
            total = memory * nodes if self.flavor == "torque" else memory
            options.append(f"-l mem={total}mb")
        return options

    def submit_command(self, script_path: str, request: JobRequest | None = None) -> list[str]:
        script_path = check_directive_value("script_path", script_path)
        if self.flavor != "slurm-torque" or request is None:
            return ["qsub", script_path]
        # The wrapper's own defaults (-o/-e <script>.o<id>) beat the script's #PBS lines,
        # and sbatch ignores '#PBS -r n': both go on the command line.
        argv = ["qsub", "-j", "oe", "-r", "n"]
        if request.output_path:
            argv += ["-o", check_directive_value("output_path", request.output_path)]
        return [*argv, script_path]

    def parse_submit(self, stdout: str) -> str:
        """The job id as qsub printed it, kept whole: `123.server.domain`, `123.server` or `123`."""
        lines = [line.strip() for line in stdout.splitlines() if line.strip()]
        if not lines or not _SUBMITTED.match(lines[-1]):
            raise SchedulerError(f"qsub did not print a job id; it printed {stdout.strip()!r}")
        return lines[-1]

    def same_job(self, written: str, ours: str) -> bool:
        """`123`, `123.srv` and `123.srv.example.org` name one job: qsub, qstat and the job's
        PBS_JOBID each may leave out the server's name, or part of it."""
        if not written or not ours:
            return False
        return written == ours or ours.startswith(written + ".") or written.startswith(ours + ".")

    # --- job status ----------------------------------------------------------------------

    def status_command(self, job_ids: list[str]) -> list[str]:
        history = ["-x"] if self.show_finished else []
        return ["qstat", "-f", *history, *check_job_ids(job_ids)]

    def parse_status(self, stdout: str, job_ids: list[str]) -> dict[str, JobInfo]:
        records = parse_records(stdout, _JOB_HEADER)
        result = {}
        for job_id in job_ids:
            attributes = next(
                (attrs for listed, attrs in records if self.same_job(listed, job_id)), None
            )
            result[job_id] = (
                JobInfo(job_id=job_id, state=JobState.GONE)
                if attributes is None
                else self._job_info(job_id, attributes)
            )
        return result

    def _job_info(self, job_id: str, attributes: dict[str, str]) -> JobInfo:
        raw_state = attributes.get("job_state", "").strip()
        exit_status = _int(attributes.get("exit_status", attributes.get("Exit_status", "")))
        state = self.job_state(raw_state, exit_status)
        reason = attributes.get("comment", "").strip()
        if not reason and state.is_finished:
            reason = _exit_reason(exit_status)
        return JobInfo(
            job_id=job_id,
            state=state,
            raw_state=raw_state,
            reason=reason,
            queue=attributes.get("queue", "").strip(),
            nodes=exec_host_nodes(attributes.get("exec_host", "")),
            estimated_start=parse_pbs_time(attributes.get("estimated.start_time", ""))
            if state is JobState.PENDING
            else None,
            exit_code=exit_status,
            output_path=_strip_host(attributes.get("Output_Path", "")),
        )

    def job_state(self, raw_state: str, exit_status: int | None) -> JobState:
        """Our state for qstat's letter (and, for finished jobs, the exit status).

        A letter we do not know keeps the job waiting; it never ends a server.
        """
        letter = raw_state[:1].upper()
        if letter in ("Q", "H", "W", "T", "S", "M"):
            return JobState.PENDING  # queued, held, waiting, in transit, suspended, moved
        if letter in ("R", "B"):
            return JobState.RUNNING  # B: an array job that has begun
        if letter == "E":
            return JobState.COMPLETING
        if letter in ("C", "F", "X"):
            return finished_state(exit_status)
        if letter == "U":
            # PBS Pro: suspended while its workstation is busy. The Slurm wrapper: a Slurm
            # state it has no letter for (out of memory, deadline), both of which end a job.
            return JobState.PENDING if self.flavor == "pbspro" else JobState.FAILED
        return JobState.PENDING

    def status_failure_means_gone(self, exit_status: int, stderr: str) -> bool:
        # Sound for several ids too: qstat still prints the jobs it knows on stdout, and any
        # other trouble adds a line that is neither "unknown" nor "finished".
        lines = [line.strip() for line in stderr.splitlines() if line.strip()]
        if not lines:
            return exit_status == _WRAPPER_UNKNOWN_EXIT
        return all(_UNKNOWN.match(line) or _FINISHED.match(line) for line in lines)

    def unknown_ids(self, stderr: str) -> set[str]:
        """The ids qstat says it does not know, or knows only as finished (without -x)."""
        ids = set()
        for line in stderr.splitlines():
            match = _UNKNOWN.match(line.strip()) or _FINISHED.match(line.strip())
            if match:
                ids.add(match.group(1))
        return ids

    # --- cancelling ----------------------------------------------------------------------

    def cancel_command(self, job_ids: list[str]) -> list[str]:
        return ["qdel", *check_job_ids(job_ids)]

    def jobs_named_command(self, job_name: str, user: str) -> list[str]:
        name = check_directive_value("job_name", job_name)
        user = check_directive_value("user", user)
        if self.flavor == "slurm-torque":
            # The wrappers have no qselect; underneath is Slurm, which can be asked.
            return [
                "squeue",
                "-h",
                "-u",
                user,
                "-n",
                name,
                "-t",
                "PENDING,RUNNING,SUSPENDED,CONFIGURING",
                "-o",
                "%i",
            ]
        # qselect lists ids of jobs not yet finished (Q, H, W, R, E ...).
        return ["qselect", "-N", name, "-u", user, "-s", "QHWRTE"]

    # --- queues and nodes -------------------------------------------------------------------

    def queues_command(self) -> list[str]:
        # The full listing, for the walltime limit the table leaves out.
        return ["qstat", "-Q", "-f"]

    def parse_queues(self, stdout: str) -> dict[str, QueueSummary]:
        """Queues from `qstat -Q -f` (blocks) or from the `qstat -Q` table, whichever it is."""
        records = parse_records(stdout, _QUEUE_HEADER)
        if records:
            return {name: _queue_from_attributes(name, attrs) for name, attrs in records}
        return _queues_from_table(stdout)

    def nodes_command(self) -> list[str]:
        return ["pbsnodes", "-a"]

    def parse_nodes(self, stdout: str) -> NodeCounts:
        counts = NodeCounts()
        for _, attributes in parse_records(stdout, _NODE_HEADER):
            if "state" not in attributes:
                continue
            words = {re.sub(r"[^a-z\-]", "", w) for w in attributes["state"].lower().split(",")}
            counts.total += 1
            if words == {"free"} and not attributes.get("jobs", "").strip():
                counts.free += 1
            elif words & {"down", "offline", "state-unknown", "unknown", "stale", "drained"}:
                counts.unavailable += 1
        return counts

    def queue_detail_command(self) -> list[str]:
        return self.nodes_command()

    def add_queue_detail(self, queues: dict[str, QueueSummary], stdout: str) -> None:
        counts = self.parse_nodes(stdout)
        for summary in queues.values():
            summary.nodes_total = counts.total
            summary.nodes_free = counts.free


def finished_state(exit_status: int | None) -> JobState:
    """How a finished PBS job ended, from its exit status.

    0-255: the job script's own exit code, DONE. 271 (256 + SIGTERM): what qdel of a
    running job gives; PBS Pro reports a walltime kill the same way, so a cancelled job
    and one that ran out of time look alike. Other values above 256 (killed by another
    signal) and negative ones (PBS could not start the job) are FAILED. No exit status at
    all (the Slurm wrapper never prints one) counts as DONE.

    >>> [finished_state(status).value for status in (0, 1, 271, 265, -1, None)]
    ['done', 'done', 'cancelled', 'failed', 'failed', 'done']
    """
    if exit_status is None or 0 <= exit_status < _SIGNAL_BASE:
        return JobState.DONE
    if exit_status == _SIGNAL_BASE + _SIGTERM:
        return JobState.CANCELLED
    return JobState.FAILED


def parse_records(text: str, header: re.Pattern[str]) -> list[tuple[str, dict[str, str]]]:
    """The `name` + indented `key = value` records of qstat -f, qstat -Q -f and pbsnodes.

    Torque and PBS Pro indent attributes with spaces and continue long values on lines
    that start with a tab; the Slurm wrapper indents with a tab and never wraps. So the
    first attribute line of a record sets the indent, and any other indented line
    continues the previous value.

    >>> parse_records("Job Id: 7.srv\\n    a = T: \\n\\t16)\\n    b = 2\\n", _JOB_HEADER)
    [('7.srv', {'a': 'T: 16)', 'b': '2'})]
    """
    records: list[tuple[str, dict[str, str]]] = []
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
    >>> exec_host_nodes("cn1/0*4+cn2/0*4")
    ['cn1', 'cn2']
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


def _queue_from_attributes(name: str, attributes: dict[str, str]) -> QueueSummary:
    # state_count = Transit:0 Queued:1 Held:0 Waiting:0 Running:2 Exiting:0 ...
    counts: dict[str, int] = {}
    for item in attributes.get("state_count", "").split():
        key, _, number = item.partition(":")
        if _int(number) is not None:
            counts[key] = _int(number) or 0
    return QueueSummary(
        name=name,
        jobs_pending=sum(counts.get(k, 0) for k in ("Queued", "Held", "Waiting"))
        if counts
        else None,
        jobs_running=counts.get("Running") if counts else None,
        max_walltime=pbs_walltime(attributes.get("resources_max.walltime", "")),
        state=_queue_state(attributes.get("enabled", ""), attributes.get("started", "")),
    )


def _queues_from_table(stdout: str) -> dict[str, QueueSummary]:
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
        waiting = [_int(row.get(k, "")) for k in ("Que", "Hld", "Wat")]
        queues[words[0]] = QueueSummary(
            name=words[0],
            jobs_pending=None if None in waiting else sum(n for n in waiting if n is not None),
            jobs_running=_int(row.get("Run", "")),
            state=_queue_state(row.get("Ena", ""), row.get("Str", "")),
        )
    return queues


def _queue_state(enabled: str, started: str) -> str:
    if not _true(enabled):
        return "disabled"  # accepts no new jobs
    return "up" if _true(started) else "stopped"  # stopped: accepts jobs, starts none


def _true(text: str) -> bool:
    return text.strip().lower() in ("true", "yes", "y", "1", "t")


def _exit_reason(exit_status: int | None) -> str:
    if exit_status is None:
        return ""
    if exit_status > _SIGNAL_BASE:
        return f"killed by signal {exit_status - _SIGNAL_BASE}"
    if exit_status < 0:
        return f"the batch system could not run the job (exit status {exit_status})"
    return ""


def _strip_host(path: str) -> str:
    # Output_Path is "host:/path"; the host is the submit host, the path is what we want.
    path = path.strip()
    host, sep, rest = path.partition(":")
    return rest if sep and "/" not in host else path


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if re.fullmatch(r"-?\d+", text) else None
