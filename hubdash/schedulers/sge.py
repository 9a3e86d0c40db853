"""Grid Engine (Son of Grid Engine 8.1.9): the argument lists for qsub, qstat, qacct, qdel and
qhost, and how to read their answers.

Pure: builds commands and parses text; what the XML and text look like is
hubdash.schedulers.sgexml's and sgetext's. Checked against a real Son of Grid Engine 8.1.9
(tests/unit/data/recorded-sge-8.1.9-*, tests/integration/test_sge_cluster.py).

How a job is asked for (`#$` lines in the script, `qsub -terse SCRIPT`): `-l h_rt=H:MM:SS`,
`-q QUEUE`, `-N NAME`, `-o PATH -j y` (a relative path is the home's: a job without `-cwd`
runs there), `-S /bin/bash`, `-r n`, and never `-V`: the submitting shell's environment
must not become the job's. More than one slot (several nodes, or several engines on one
node) needs a parallel environment: `-pe <parallel_environment> <slots>`. With
`slots_per_node` 0 (a PE with `allocation_rule $round_robin` or `$fill_up`) a job asks for
nodes x tasks-per-node slots and Grid Engine places them; with a number K (a PE with
`allocation_rule K`), for nodes x K slots, which puts exactly K on each of `nodes` hosts.

What the caller does around these methods:

- monitor rounds: `lookup_command(ids, user)` is `qstat -u USER -g t -xml`: one qmaster
  request for all of the user's jobs (pending, running, suspended), asked about all of the
  user's tracked jobs at once (`lookup_batch_min` 1), so its cost stays flat in N.
  `parse_lookup` gives state, queue and hosts; a job that is not listed has ended (or never
  was), and comes back GONE.
- follow-ups (SchedulerClient runs them for a lookup's answers, bounded): a waiting job's
  reason is in the scheduler's messages, `qstat -j ID -xml` (only where the cluster keeps
  them: `schedd_job_info true`); a job that left the listing ended, and how is in the
  accounting file, `qacct -j ID`. qacct can lag the end by the accounting flush time (15 s
  by default): while it has no record the client asks again after each of
  `follow_up_delays`, and the job stays as it was until then; after the last, GONE stands.
- status (the cancel's check): `qstat -j A,B -xml`; a job it knows is alive.
- exit code: `job_detail_command` is qacct too (SchedulerClient.exit_code).
- queues: `qstat -g c -xml` (slots per cluster queue; a queue whose every slot waits for
  an admin is 'disabled'), and `qhost -q -xml` for its hosts: total, and free (the host
  reports, the queue instance is in service and runs nothing).
- Grid Engine has no start estimates (`test_only_command` None: the form says so) and no
  queue positions (`position_command` None).

Times: qstat prints the cluster's local time without a zone; parsed naive.
"""

from __future__ import annotations

import re

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
from hubdash.schedulers.sgetext import (
    accounting_missing,
    ended_state,
    master_record,
    parse_qacct,
    parse_terse_id,
)
from hubdash.schedulers.sgexml import (
    DetailedJob,
    JobDetails,
    ListedJob,
    parse_cluster_queues,
    parse_host_queues,
    parse_job_details,
    parse_job_list,
)

# Words of a waiting job's reason, at most; a big site's scheduler names every queue
# instance it dropped.
_REASON_MESSAGES = 3
_REASON_CHARS = 300
_NOT_LISTED = "no longer in qstat's listing"
# Said of every queue a job did not ask for: no reason why it waits.
_OTHER_QUEUE = re.compile(r"because it is not contained in its hard queue list")
# An error reason's time stamp and process ('12/04/2026 11:03:39 [1001:17111]: '), and the
# environment Grid Engine appends to it.
_ERROR_PREFIX = re.compile(r"^\d\d/\d\d/\d{4} \d\d:\d\d:\d\d \[[\d:]+\]: ")
_ERROR_SUFFIX = re.compile(r"\s+KRB5CCNAME=.*$")


def sge_state(letters: str) -> JobState:
    """Our state for qstat's letters; letters we do not know keep the job waiting.

    d (being deleted) beats everything: the job is ending. z (zombie: finished, listed with
    `-s z`) tells no more than that it ended: GONE, to be read from qacct. E (error) waits
    for an admin, as do h (hold), q and w; s, S and T (suspended) hold nodes but cannot
    answer, so they count as waiting too; t (being transferred to its host) has not started.

    >>> [sge_state(w).value for w in ("qw", "hqw", "r", "Rr", "t", "s", "Eqw")]
    ['pending', 'pending', 'running', 'running', 'pending', 'pending', 'pending']
    >>> sge_state("dr").value, sge_state("z").value
    ('completing', 'gone')
    """
    if "z" in letters:
        return JobState.GONE
    if "d" in letters:
        return JobState.COMPLETING
    if "r" in letters and not any(letter in letters for letter in "EsST"):
        return JobState.RUNNING
    return JobState.PENDING


def state_reason(letters: str) -> str:
    """What the letters alone say about a job that waits ('' where they say nothing more).

    >>> state_reason("hqw"), state_reason("Eqw"), state_reason("qw")
    ('held (qhold or qsub -h)', 'in error state: an admin must clear it (qmod -cj)', '')
    """
    if "d" in letters:
        return "being deleted"
    if "E" in letters:
        return "in error state: an admin must clear it (qmod -cj)"
    if "h" in letters:
        return "held (qhold or qsub -h)"
    if "s" in letters:
        return "suspended (qmod -sj)"
    if "S" in letters:
        return "suspended: its queue is suspended"
    if "T" in letters:
        return "suspended: its host is over a load threshold"
    if "t" in letters:
        return "being sent to its host"
    return ""


class GridEngineAdapter(SchedulerAdapter):
    """qsub/qstat/qacct/qdel/qhost of Son of Grid Engine 8.1.9 (and Sun Grid Engine 6.2)."""

    name = "sge"
    directive_prefix = "#$"
    job_id_variable = "JOB_ID"
    # The user's listing answers for all of the user's jobs: ask it for all of them at once,
    # not once per job as each falls due (bench/README.md, section 1b).
    lookup_batch_min = 1
    # qacct's record of an ended job can lag by the accounting flush time (15 s default).
    follow_up_delays = (1.0, 2.0, 4.0, 8.0, 5.0)

    def __init__(self, parallel_environment: str = "mpi", slots_per_node: int | str = 0):
        self.parallel_environment = parallel_environment
        if parallel_environment:
            check_directive_value("parallel_environment", parallel_environment)
        try:
            self.slots_per_node = int(slots_per_node)
        except ValueError:
            raise ValueError(
                f"slots_per_node must be a whole number, not {slots_per_node!r}"
            ) from None
        if self.slots_per_node < 0:
            raise ValueError(f"slots_per_node must be 0 or more, not {self.slots_per_node}")

    # --- the job script and submission -------------------------------------------------

    def submit_options(self, request: JobRequest) -> list[str]:
        options = []
        if request.job_name:
            options.append(f"-N {check_directive_value('job_name', request.job_name)}")
        if request.queue:
            options.append(f"-q {check_directive_value('queue', request.queue)}")
        seconds = check_count("walltime_seconds", request.walltime_seconds)
        options.append(f"-l h_rt={format_walltime(seconds)}")
        slots_on_node = self._slots_on_node(request)
        slots = check_count("nodes", request.nodes) * slots_on_node
        if slots > 1:
            if not self.parallel_environment:
                raise ValueError(
                    f"a job of {request.nodes} node(s) x {slots_on_node} slot(s) needs a "
                    "parallel environment: set JobSpawner.sge_parallel_environment"
                )
            options.append(f"-pe {self.parallel_environment} {slots}")
        if request.output_path:
            options.append(f"-o {check_directive_value('output_path', request.output_path)}")
            options.append("-j y")
        if request.account:
            # Grid Engine's projects are what sites charge and share by (-A is a label only).
            options.append(f"-P {check_directive_value('account', request.account)}")
        if request.memory_mb is not None:
            # h_vmem is per slot: the node's share divided among the job's slots on it.
            per_slot = -(-check_count("memory_mb", request.memory_mb) // slots_on_node)
            options.append(f"-l h_vmem={per_slot}M")
        if request.gpus:
            raise ValueError(
                "GPUs on Grid Engine are a site-defined resource; hubdash does not ask for "
                "them: offer no 'max_gpus' in the queue table"
            )
        # The job script is bash whatever the queue's shell (shell_start_mode posix_compliant).
        options.append("-S /bin/bash")
        # Not rerunnable: after a host failure a rerun would be a server no tunnel leads to.
        options.append("-r n")
        return options

    def _slots_on_node(self, request: JobRequest) -> int:
        tasks = check_count("tasks_per_node", request.tasks_per_node)
        if not self.slots_per_node or (request.nodes == 1 and tasks == 1):
            return tasks
        if tasks > self.slots_per_node:
            raise ValueError(
                f"{tasks} tasks per node do not fit the {self.slots_per_node} slots the "
                f"parallel environment {self.parallel_environment} gives each node "
                "(JobSpawner.sge_slots_per_node): lower the queue's engines_per_node"
            )
        return self.slots_per_node

    def submit_command(self, script_path: str, request: JobRequest | None = None) -> list[str]:
        # -terse: the id alone. Every option is in the script's #$ lines.
        return ["qsub", "-terse", check_directive_value("script_path", script_path)]

    def parse_submit(self, stdout: str) -> str:
        job_id = parse_terse_id(stdout)
        if job_id is None:
            raise SchedulerError(f"qsub did not print a job id; it printed {stdout.strip()!r}")
        return job_id

    # --- job status ----------------------------------------------------------------------

    def lookup_command(self, job_ids: list[str], username: str) -> list[str]:
        check_job_ids(job_ids)
        return self._user_listing(username)

    @staticmethod
    def _user_listing(username: str) -> list[str]:
        user = check_directive_value("username", username)
        # -g t: a line per task of a parallel job, so that every host of it is named.
        return ["qstat", "-u", user, "-g", "t", "-xml"]

    def parse_lookup(
        self, exit_status: int, stdout: str, stderr: str, job_ids: list[str]
    ) -> dict[str, JobInfo]:
        """Every id asked about: listed jobs with their state, the others GONE (ended, or
        never known). A failed qstat is no answer at all (SchedulerError)."""
        if exit_status != 0:
            raise SchedulerError(
                f"qstat failed (exit {exit_status}): "
                f"{(stderr or stdout).strip()[-400:] or '(no output)'}"
            )
        listed = parse_job_list(stdout)
        return {
            job_id: _job_info(listed[job_id])
            if job_id in listed
            else JobInfo(job_id=job_id, state=JobState.GONE, reason=_NOT_LISTED)
            for job_id in job_ids
        }

    def status_command(self, job_ids: list[str]) -> list[str]:
        return ["qstat", "-j", ",".join(check_job_ids(job_ids)), "-xml"]

    def parse_status(self, stdout: str, job_ids: list[str]) -> dict[str, JobInfo]:
        """From `qstat -j`: a job it knows is alive (RUNNING where a task runs, else
        PENDING); one it does not is GONE."""
        details = parse_job_details(stdout)
        result = {}
        for job_id in job_ids:
            job = details.jobs.get(job_id)
            if job is None:
                result[job_id] = JobInfo(job_id=job_id, state=JobState.GONE)
            else:
                state = JobState.RUNNING if job.running else JobState.PENDING
                result[job_id] = JobInfo(job_id=job_id, state=state, reason=_reason(job, details))
        return result

    # --- what the listing cannot tell: follow-ups ------------------------------------------

    def follow_up_command(self, info: JobInfo) -> list[str] | None:
        """qacct for a job that left the listing; `qstat -j` for one that waits for
        something its letters do not name (qw), or is in error state (Eqw)."""
        if info.state is JobState.GONE:
            return self.job_detail_command(info.job_id)
        if info.state is JobState.PENDING and ("E" in info.raw_state or info.raw_state == "qw"):
            return ["qstat", "-j", *check_job_ids([info.job_id]), "-xml"]
        return None

    def complete_lookup(
        self, info: JobInfo, exit_status: int, stdout: str, stderr: str
    ) -> JobInfo | None:
        if info.state is JobState.GONE:
            if exit_status != 0 or accounting_missing(stdout, stderr):
                # Not written yet (or never: deleted before it started); or no accounting
                # file to read yet (a new cell, a rotated file): ask again, bounded.
                return None
            ended = self.parse_job_detail(stdout)
            ended.job_id = info.job_id
            return ended
        if exit_status != 0:
            return info  # the reason is a nicety: the state stands as listed
        details = parse_job_details(stdout)
        job = details.jobs.get(info.job_id)
        if job is not None:
            info.reason = _reason(job, details) or info.reason
        return info

    # --- cancelling ----------------------------------------------------------------------

    def cancel_command(self, job_ids: list[str]) -> list[str]:
        return ["qdel", *check_job_ids(job_ids)]

    def jobs_named_command(self, job_name: str, user: str) -> list[str]:
        # The user's own listing: `qstat -j NAME` would name every user's jobs of that name.
        check_directive_value("job_name", job_name)
        return self._user_listing(user)

    def user_jobs_command(self, user: str) -> list[str]:
        return self._user_listing(user)

    def parse_user_jobs(self, stdout: str, user: str) -> dict[str, str]:
        return {
            job.job_id: job.name
            for job in parse_job_list(stdout).values()
            if not job.owner or job.owner == user
        }

    def parse_job_ids(self, stdout: str, job_name: str = "", user: str = "") -> list[str]:
        return [
            job.job_id
            for job in parse_job_list(stdout).values()
            if job.name == job_name and (not user or job.owner == user)
        ]

    # --- one ended job ---------------------------------------------------------------------

    def job_detail_command(self, job_id: str) -> list[str]:
        """The accounting record(s) of an ended job (none for one deleted before it ran)."""
        return ["qacct", "-j", *check_job_ids([job_id])]

    def parse_job_detail(self, stdout: str) -> JobInfo:
        records = parse_qacct(stdout)
        master = master_record(records)
        if master is None:
            raise SchedulerError(f"qacct printed no record: {stdout.strip()[:200]!r}")
        state, reason = ended_state(master)
        hosts = [master.fields.get("hostname", "")]
        hosts += [r.fields.get("hostname", "") for r in records]
        return JobInfo(
            job_id=master.fields.get("jobnumber", ""),
            state=state,
            reason=reason,
            queue=master.fields.get("qname", ""),
            nodes=[host for i, host in enumerate(hosts) if host and host not in hosts[:i]],
            exit_code=master.exit_status,
        )

    # --- queues ---------------------------------------------------------------------------

    def queues_command(self) -> list[str]:
        return ["qstat", "-g", "c", "-xml"]

    def parse_queues(self, stdout: str) -> dict[str, QueueSummary]:
        queues = {}
        for name, queue in parse_cluster_queues(stdout).items():
            blocked = queue.needs_admin is not None and queue.needs_admin == queue.total
            queues[name] = QueueSummary(name=name, state="disabled" if blocked else "up")
        return queues

    def queue_detail_command(self) -> list[str]:
        return ["qhost", "-q", "-xml"]

    def add_queue_detail(self, queues: dict[str, QueueSummary], stdout: str) -> None:
        for instance in parse_host_queues(stdout):
            summary = queues.get(instance.queue)
            if summary is None:
                continue
            summary.nodes_total = (summary.nodes_total or 0) + 1
            free = instance.host_reports and not instance.state and instance.slots_used == 0
            summary.nodes_free = (summary.nodes_free or 0) + (1 if free else 0)


def _job_info(job: ListedJob) -> JobInfo:
    state = sge_state(job.state)
    return JobInfo(
        job_id=job.job_id,
        state=state,
        raw_state=job.state,
        reason=state_reason(job.state),
        queue=job.queue,
        nodes=list(job.hosts),
    )


def _reason(job: DetailedJob, details: JobDetails) -> str:
    """Why the job waits, in the scheduler's words, bounded: its error (Eqw), else its own
    messages and those about the queues it asked for (the scheduler's messages about every
    pending job name each queue instance it dropped)."""
    if job.errors:
        messages = [_ERROR_PREFIX.sub("", _ERROR_SUFFIX.sub("", e)) for e in job.errors]
    else:
        own = [m for m in job.messages if not _OTHER_QUEUE.search(m)]
        queues = tuple(f'"{queue}@' for queue in job.queues)
        about = [m for m in details.global_messages if not queues or any(q in m for q in queues)]
        messages = own + about
    text = "; ".join(messages[:_REASON_MESSAGES])
    if len(messages) > _REASON_MESSAGES:
        text += f" (and {len(messages) - _REASON_MESSAGES} more)"
    return text if len(text) <= _REASON_CHARS else text[: _REASON_CHARS - 1] + "…"
