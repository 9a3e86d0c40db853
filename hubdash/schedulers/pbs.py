"""PBS: the argument lists for qsub, qstat, qdel and pbsnodes, and how to read their answers.

Pure: builds commands and parses answers (pbstext.py reads the text forms, pbsjson.py the
JSON ones). Speaks Torque 6, PBS Pro/OpenPBS and Slurm's Torque wrappers.

Three flavors, because the three differ where it matters (`PBSAdapter(flavor=...)`):

- "torque": Torque 6. Nodes as `-l nodes=N:ppn=T[:gpus=G]`, memory as the job's total
  `-l mem=<MB>mb`. `qstat -x` would mean XML, so finished jobs are seen only while the
  server keeps them (keep_completed).
- "pbspro" (also "openpbs"): PBS Pro and OpenPBS, checked against OpenPBS 23.06. Nodes as
  `-l select=N:ncpus=T:mpiprocs=T[:ngpus=G][:mem=]` with `-l place=scatter` (one chunk per
  node), or, where the admin prefers it (`resource_spelling="nodes"`), Torque's
  `-l nodes=N:ppn=T` with the job's total `-l mem`, which the server turns into the same
  select (it takes no GPUs there). Status from `qstat -E -x -f -F json` (finished jobs stay
  visible with their exit status while the server keeps history: `job_history_enable`).
  Queued jobs carry the scheduler's `estimated.start_time`.
- "slurm-torque": Slurm's perl wrappers (Debian's slurm-wlm-torque). sbatch reads the
  `#PBS` lines; `-l mem` is per node there and GPUs go as `-l naccelerators`. The
  wrapper's qsub puts its own `-o`/`-e` on sbatch's command line, which beats the
  script's `#PBS -o`: pass the request to `submit_command` to keep the output path.
  Its jobs are Slurm jobs: they see SLURM_JOB_ID, not PBS_JOBID.

Every flavor: the script's first line must be `#!...` (the wrapper refuses others, and
Torque and PBS Pro read the shell from it). A relative `-o` is qsub's directory's: the
user's home, where the hub submits from; the job script `cd`s to the home itself.

What the caller does around these methods:

- status (and the monitor's lookup, which is the same command): run `status_command(ids)`;
  one call covers many ids; a user with 2 tracked jobs or more is asked about all of them
  at once (`lookup_batch_min`). qstat lists the ids it knows and complains on stderr about the
  others, with a non-zero exit. So: exit 0, or `status_failure_means_gone(exit, stderr)`
  true (every stderr line says "unknown job" or "job has finished", or the wrapper's
  silent exit 153), then `parse_status(stdout, ids)`: listed ids get their state, the
  others are GONE. Any other failure: SchedulerError. `unknown_ids(stderr)` names the ids
  qstat called unknown, for logs. PBS Pro: `qstat -E` asks for all ids in one server
  request, which answers for those it knows and exits 0 if it knows any (153 and "Unknown
  Job Id" for the last id if none); without -E the JSON form lists only the first job.
- queues: `queues_command()` (qstat -Q -f) gives job counts, limits and state per queue;
  nodes are not tied to queues in PBS, so `nodes_command()` (pbsnodes -a) gives the
  cluster-wide node counts, and `add_queue_detail` copies them into every queue.
- position in the queue: PBS Pro only, `position_command(queue)` is `qstat -T -w QUEUE`
  (queued jobs in the order of the scheduler's estimated start); Torque and the wrapper
  have no such listing.
- start estimates before submitting: no PBS has a what-if query (`test_only_command` None).
  PBS Pro estimates when queued jobs start (`estimated.start_time`, with strict_ordering or
  backfill): `backlog_command(queue)` lists the queue's jobs with it, `parse_backlog` gives
  the waiting jobs' estimates and the running jobs' walltime ends (cluster/startguess.py).

Times: qstat prints the server's local time (`Wed Nov 25 21:40:00 2026`); parsed naive.
"""

from __future__ import annotations

import re
from datetime import timedelta

from hubdash.schedulers import pbsjson
from hubdash.schedulers.base import (
    Backlog,
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
from hubdash.schedulers.pbstext import (
    JOB_HEADER,
    NODE_HEADER,
    QUEUE_HEADER,
    NodeCounts,
    Records,
    count_nodes,
    exec_host_nodes,
    exit_reason,
    finished_state,
    parse_pbs_time,
    parse_records,
    pbs_walltime,
    queue_from_attributes,
    queued_in_order,
    queues_from_table,
    strip_host,
    to_int,
)
from hubdash.schedulers.slurmtext import parse_id_and_name, squeue_live
from hubdash.walltime import parse_walltime

# Re-exported: tests and callers read records and hosts through this module.
__all__ = ["FLAVORS", "NodeCounts", "PBSAdapter", "exec_host_nodes", "parse_records"]

FLAVORS = ("torque", "pbspro", "slurm-torque")
# Other names admins use for a flavor.
FLAVOR_ALIASES = {"openpbs": "pbspro"}
SPELLINGS = ("select", "nodes")

_SUBMITTED = re.compile(r"^\d+(?:\[\d*\])?(?:\.[A-Za-z0-9][\w.\-]*)?$")
_UNKNOWN = re.compile(r"^qstat: Unknown Job Id(?: Error)? (\S+)")
_FINISHED = re.compile(r"^qstat: (\S+) Job has finished")

# The wrapper's qstat exits 153 (PBS's "unknown job id" code) and prints nothing when
# none of the asked ids exist.
_WRAPPER_UNKNOWN_EXIT = 153
# PBS Pro's substate of a finished job that was deleted (qdel), run or not.
_SUBSTATE_TERMINATED = 91


class PBSAdapter(SchedulerAdapter):
    """qsub/qstat/qdel/pbsnodes; `flavor` is 'torque', 'pbspro' (or 'openpbs') or
    'slurm-torque'; `resource_spelling` 'select' or 'nodes' (PBS Pro only; empty: the
    flavor's own, select for PBS Pro)."""

    name = "pbs"
    directive_prefix = "#PBS"
    # From 2 tracked jobs of a user, one qstat asks about all of them: servers spawned at
    # different moments fall due at different moments, and one command each would grow
    # with N (bench/README.md, section 1b).
    lookup_batch_min = 2

    def __init__(self, flavor: str = "torque", resource_spelling: str = ""):
        flavor = FLAVOR_ALIASES.get(flavor, flavor)
        if flavor not in FLAVORS:
            raise ValueError(
                f"unknown PBS flavor {flavor!r}: choose 'torque' (Torque 6), "
                "'pbspro' or 'openpbs' (PBS Pro, OpenPBS) or 'slurm-torque' "
                "(Slurm's qsub wrappers)"
            )
        own = "select" if flavor == "pbspro" else "nodes"
        spelling = resource_spelling or own
        if spelling not in SPELLINGS or (spelling == "select" and own != "select"):
            raise ValueError(
                f"PBS resource spelling {resource_spelling!r} does not suit flavor {flavor!r}: "
                "choose 'select' or 'nodes' for PBS Pro/OpenPBS; Torque and Slurm's "
                "wrappers speak only 'nodes'"
            )
        self.flavor = flavor
        # Torque's nodes=N:ppn=T, or PBS Pro's select=N:ncpus=T.
        self.node_spelling = spelling
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
        elif gpus and self.flavor == "pbspro":
            # PBS Pro turns nodes= into select= with only ncpus (and a share of the job's
            # mem) in each chunk: there is no way to ask for GPUs per node in it.
            raise ValueError(
                "gpus cannot be asked for in PBS's nodes=N:ppn=M spelling: "
                "set JobSpawner.pbs_resource_spelling = 'select'"
            )
        options = [f"-l {spec}"]
        if gpus and self.flavor == "slurm-torque":
            # sbatch would read ":gpus=G" in nodes= as a host name; naccelerators is --gpus (total).
            options.append(f"-l naccelerators={gpus * nodes}")
        if memory:
            # Torque's and PBS Pro's mem is the job's total (PBS Pro splits it over the
            # chunks); sbatch turns it into --mem, which is per node.
            total = memory if self.flavor == "slurm-torque" else memory * nodes
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
        ids = check_job_ids(job_ids)
        if not self.show_finished:
            return ["qstat", "-f", *ids]
        # -E: all ids in one server request (without it, one request per id, and the JSON
        # form then lists only the first job); ids the server does not know are left out.
        return ["qstat", "-E", "-x", "-f", "-F", "json", *ids]

    def parse_status(self, stdout: str, job_ids: list[str]) -> dict[str, JobInfo]:
        records = self._job_records(stdout)
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

    def _job_records(self, stdout: str) -> Records:
        if pbsjson.is_json(stdout):
            return pbsjson.records(stdout, "Jobs", "qstat")
        return parse_records(stdout, JOB_HEADER)

    def _job_info(self, job_id: str, attributes: dict[str, str]) -> JobInfo:
        raw_state = attributes.get("job_state", "").strip()
        exit_status = to_int(attributes.get("exit_status", attributes.get("Exit_status", "")))
        deleted = (
            self.flavor == "pbspro"
            and to_int(attributes.get("substate", "")) == _SUBSTATE_TERMINATED
        )
        state = self.job_state(raw_state, exit_status, deleted)
        reason = attributes.get("comment", "").strip()
        if not reason and state.is_finished:
            reason = exit_reason(exit_status)
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
            output_path=strip_host(attributes.get("Output_Path", "")),
        )

    def job_state(self, raw_state: str, exit_status: int | None, deleted: bool = False) -> JobState:
        """Our state for qstat's letter (and, for finished jobs, the exit status and whether
        PBS Pro says the job was deleted).

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
            return finished_state(exit_status, deleted)
        if letter == "U":
            # PBS Pro: suspended while its workstation is busy. The Slurm wrapper: a Slurm
            # state it has no letter for (out of memory, deadline), both of which end a job.
            return JobState.PENDING if self.flavor == "pbspro" else JobState.FAILED
        return JobState.PENDING

    def status_failure_means_gone(self, exit_status: int, stderr: str) -> bool:
        # Sound for several ids too: qstat still prints the jobs it knows on stdout, and any
        # other trouble adds a line that is neither "unknown" nor "finished" (PBS Pro without
        # job history: "PBS is not configured to maintain job history", for every job).
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
            return squeue_live(user, "-n", name, fields="%i")
        # qselect lists ids of jobs not yet finished (Q, H, W, R, E ...).
        return ["qselect", "-N", name, "-u", user, "-s", "QHWRTE"]

    def user_jobs_command(self, user: str) -> list[str]:
        user = check_directive_value("user", user)
        if self.flavor == "slurm-torque":
            return squeue_live(user, fields="%i|%j")
        # Ids only: qstat's listings cut names short (to 15 characters, even with -w).
        return ["qselect", "-u", user, "-s", "QHWRTE"]

    def parse_user_jobs(self, stdout: str, user: str) -> dict[str, str]:
        if self.flavor == "slurm-torque":
            return parse_id_and_name(stdout)
        return dict.fromkeys(self.parse_job_ids(stdout), "")

    def job_names_command(self, job_ids: list[str]) -> list[str]:
        ids = check_job_ids(job_ids)
        return ["qstat", "-f", "-F", "json", *ids] if self.show_finished else ["qstat", "-f", *ids]

    def parse_job_names(self, stdout: str) -> dict[str, str]:
        return {job_id: attrs.get("Job_Name", "") for job_id, attrs in self._job_records(stdout)}

    # --- place in the queue ----------------------------------------------------------------

    def position_command(self, queue: str) -> list[str] | None:
        if self.flavor != "pbspro":
            return None
        # -T: with estimated start times, in their order; -w: job ids not cut short.
        return ["qstat", "-T", "-w", check_directive_value("queue", queue)]

    def parse_positions(self, stdout: str) -> dict[str, int]:
        return {job_id: place for place, job_id in enumerate(queued_in_order(stdout), start=1)}

    def backlog_command(self, queue: str) -> list[str] | None:
        # Only PBS Pro estimates starts (estimated.start_time, with strict_ordering or
        # backfill) and prints JSON; one request lists the queue's jobs with them.
        if self.flavor != "pbspro":
            return None
        return ["qstat", "-f", "-F", "json", check_directive_value("queue", queue)]

    def parse_backlog(self, stdout: str) -> Backlog:
        backlog = Backlog()
        for _, attributes in pbsjson.records(stdout, "Jobs", "qstat"):
            state = self.job_state(attributes.get("job_state", ""), None)
            if state is JobState.PENDING:
                start = parse_pbs_time(attributes.get("estimated.start_time", ""))
                backlog.waiting_starts.append(start)
            elif state is JobState.RUNNING:
                started = parse_pbs_time(attributes.get("stime", ""))
                walltime = pbs_walltime(attributes.get("Resource_List.walltime", ""))
                hosts = len(exec_host_nodes(attributes.get("exec_host", ""))) or 1
                if started is not None and walltime:
                    end = started + timedelta(seconds=parse_walltime(walltime))
                    backlog.running_ends.append((end, hosts))
        return backlog

    # --- queues and nodes -------------------------------------------------------------------

    def queues_command(self) -> list[str]:
        # The full listing, for the walltime limit the table leaves out.
        json_form = ["-F", "json"] if self.flavor == "pbspro" else []
        return ["qstat", "-Q", "-f", *json_form]

    def parse_queues(self, stdout: str) -> dict[str, QueueSummary]:
        """Queues from `qstat -Q -f` (JSON or blocks) or from the `qstat -Q` table."""
        if pbsjson.is_json(stdout):
            records = pbsjson.records(stdout, "Queue", "qstat -Q")
            return {name: queue_from_attributes(name, attrs) for name, attrs in records}
        records = parse_records(stdout, QUEUE_HEADER)
        if records:
            return {name: queue_from_attributes(name, attrs) for name, attrs in records}
        return queues_from_table(stdout)

    def nodes_command(self) -> list[str]:
        json_form = ["-F", "json"] if self.flavor == "pbspro" else []
        return ["pbsnodes", "-a", *json_form]

    def parse_nodes(self, stdout: str) -> NodeCounts:
        if pbsjson.is_json(stdout):
            return count_nodes(pbsjson.records(stdout, "nodes", "pbsnodes"))
        return count_nodes(parse_records(stdout, NODE_HEADER))

    def queue_detail_command(self) -> list[str]:
        return self.nodes_command()

    def add_queue_detail(self, queues: dict[str, QueueSummary], stdout: str) -> None:
        counts = self.parse_nodes(stdout)
        for summary in queues.values():
            summary.nodes_total = counts.total
            summary.nodes_free = counts.free
