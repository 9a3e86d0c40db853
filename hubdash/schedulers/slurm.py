"""Slurm: the argument lists for sbatch, squeue, scancel, sinfo and scontrol, and how to read them.

Pure: builds commands and parses their text; running them is the caller's business (Cluster).
How Slurm writes single values (states, host lists, times) is hubdash.schedulers.slurmtext's.

What the caller does around these methods:

- monitor rounds: `lookup_command([id], user)` is `scontrol --local -o show job ID`: one
  RPC (REQUEST_JOB_INFO_SINGLE, ≈0.14 ms, the same with 10 or 100,000 jobs queued), where
  `squeue -j A,B` loads every job in the system and `squeue -j ID` adds two more RPCs.
  For a user with `lookup_batch_min` jobs or more, one `squeue --local -u USER` answers
  for all of them. `parse_lookup` gives state, reason, node(s), estimated start and
  (scontrol only) exit code.
- status: run `status_command(ids)`. Exit 0: `parse_status`. Non-zero exit: only when
  `status_failure_means_gone` says so (squeue's "Invalid job id specified", printed when a
  single asked-for id is unknown) are the jobs GONE; anything else is a SchedulerError and
  the last known state stands.
- position: `status_command` cannot tell it. For each queue with pending jobs, run
  `position_command(queue)` and copy `parse_positions(stdout).get(job_id)` into
  JobInfo.position. The order is by priority, then id: the best guess without running
  the scheduler's own simulation.
- estimated start: `parse_status` already fills it for pending jobs when the backfill
  scheduler has one (squeue's %S; for other states %S is not an estimate and is dropped).
  `test_only_command` asks Slurm when a job of that size would start if submitted now
  (nothing is submitted).
- exit code: squeue has none. `job_detail_command` (scontrol) reads it while slurmctld
  still holds the job (MinJobAge, 300 s by default); after that, a lookup that finds the
  job GONE follows up with sacct (`follow_up_command`), where Slurm's accounting keeps the
  end state and exit code (slurmaccounting.py).
- queues: `queues_command` (sinfo) gives nodes and limits per partition;
  `pending_counts_command` (squeue) gives pending jobs per partition.

Times: Slurm prints the cluster's local time without a zone; parsed into naive datetimes.
"""

from __future__ import annotations

import re
from datetime import datetime

from hubdash.schedulers.base import (
    JobInfo,
    JobRequest,
    JobState,
    QueueSummary,
    SchedulerAdapter,
    SchedulerError,
    UserAccounting,
    check_count,
    check_directive_value,
    check_job_ids,
    format_walltime,
)
from hubdash.schedulers.slurmaccounting import (
    accounting_commands,
    ended_command,
    parse_accounting,
    parse_ended,
)
from hubdash.schedulers.slurmtext import (
    NONE_WORDS,
    expand_hostlist,
    parse_exit_code,
    parse_id_and_name,
    parse_scontrol_line,
    parse_slurm_time,
    slurm_state,
    slurm_walltime,
    squeue_live,
)

_SUBMITTED = re.compile(r"^(\d+)(?:;\S+)?$")
_TEST_ONLY = re.compile(r"\bJob \d+ to start at (\S+)")


class SlurmAdapter(SchedulerAdapter):
    """sbatch/squeue/scancel/sinfo/scontrol, as in Slurm 22.05 to 24.x."""

    name = "slurm"
    directive_prefix = "#SBATCH"
    job_id_variable = "SLURM_JOB_ID"

    status_format = "%i|%T|%r|%P|%N|%S|%Q"
    queues_format = "%P|%a|%l|%D|%F"

    # --- the job script and submission -------------------------------------------------

    def submit_options(self, request: JobRequest) -> list[str]:
        options = []
        if request.job_name:
            options.append(f"--job-name={check_directive_value('job_name', request.job_name)}")
        if request.queue:
            options.append(f"--partition={check_directive_value('queue', request.queue)}")
        seconds = check_count("walltime_seconds", request.walltime_seconds)
        options.append(f"--time={format_walltime(seconds)}")
        options.append(f"--nodes={check_count('nodes', request.nodes)}")
        options.append(f"--ntasks-per-node={check_count('tasks_per_node', request.tasks_per_node)}")
        if request.output_path:
            options.append(f"--output={check_directive_value('output_path', request.output_path)}")
        if request.account:
            options.append(f"--account={check_directive_value('account', request.account)}")
        if request.qos:
            options.append(f"--qos={check_directive_value('qos', request.qos)}")
        if request.memory_mb is not None:
            options.append(f"--mem={check_count('memory_mb', request.memory_mb)}M")
        if request.gpus:
            options.append(f"--gres=gpu:{check_count('gpus', request.gpus)}")
        # After a node failure Slurm would start the job again elsewhere, a new server that
        # no tunnel leads to, while the hub still counts the old one as running.
        options.append("--no-requeue")
        return options

    def submit_command(self, script_path: str, request: JobRequest | None = None) -> list[str]:
        # The script carries every option; request is not needed here.
        return ["sbatch", "--parsable", check_directive_value("script_path", script_path)]

    def parse_submit(self, stdout: str) -> str:
        """The job id from `sbatch --parsable`: `123`, or `123;cluster` on a multi-cluster site."""
        lines = [line.strip() for line in stdout.splitlines() if line.strip()]
        match = _SUBMITTED.match(lines[-1]) if lines else None
        if match is None:
            raise SchedulerError(f"sbatch did not print a job id; it printed {stdout.strip()!r}")
        return match.group(1)

    # --- job status ----------------------------------------------------------------------

    def status_command(self, job_ids: list[str]) -> list[str]:
        ids = ",".join(check_job_ids(job_ids))
        return ["squeue", "-h", "--states=all", "-j", ids, "-o", self.status_format]

    def parse_status(self, stdout: str, job_ids: list[str]) -> dict[str, JobInfo]:
        wanted = set(job_ids)
        found: dict[str, JobInfo] = {}
        for line in stdout.splitlines():
            parts = line.strip().split("|")
            if parts[0] not in wanted:
                continue  # another job (an array element, say) or stray text
            if len(parts) < 7:
                # Our job, but not in our format: no verdict on it.
                raise SchedulerError(f"squeue printed a line we cannot read: {line.strip()!r}")
            # The reason may hold anything; every other field is fixed, so count from the right.
            job_id, raw_state = parts[0], parts[1]
            reason = "|".join(parts[2:-4])
            queue, nodes, start = parts[-4], parts[-3], parts[-2]
            state = slurm_state(raw_state)
            found[job_id] = JobInfo(
                job_id=job_id,
                state=state,
                raw_state=raw_state,
                reason=_value(reason),
                queue=queue,
                nodes=_nodes(nodes),
                estimated_start=parse_slurm_time(start) if state is JobState.PENDING else None,
            )
        return {
            job_id: found.get(job_id) or JobInfo(job_id=job_id, state=JobState.GONE)
            for job_id in job_ids
        }

    def status_failure_means_gone(self, exit_status: int, stderr: str) -> bool:
        # squeue -j with one id that slurmctld does not know: exit 1 and this message.
        # With several ids it exits 0 and leaves the unknown ones out.
        return exit_status == 1 and "Invalid job id specified" in stderr

    # --- the monitor's lookup ------------------------------------------------------------

    # From bench/query_shapes.py (1,050 jobs queued): scontrol for one id ≈0.14 ms, squeue
    # for all of a user's jobs ≈0.5-1.0 ms (and growing with the queue); so from six jobs
    # of one user on, one squeue is the cheaper way.
    lookup_batch_min = 6

    def lookup_command(self, job_ids: list[str], username: str) -> list[str]:
        ids = check_job_ids(job_ids)
        if len(ids) == 1:
            # --local: no federation lookup; one RPC (REQUEST_JOB_INFO_SINGLE) in all.
            return ["scontrol", "--local", "-o", "show", "job", ids[0]]
        # Several: every job of the user in one RPC (REQUEST_JOB_USER_INFO); a list of ids
        # would make squeue load every job in the system.
        user = check_directive_value("username", username)
        return ["squeue", "--local", "-h", "--states=all", "-u", user, "-o", self.status_format]

    def parse_lookup(
        self, exit_status: int, stdout: str, stderr: str, job_ids: list[str]
    ) -> dict[str, JobInfo]:
        """One id: the job as scontrol shows it (state, reason, nodes, estimated start, exit
        code). Several: the user's jobs as squeue lists them. GONE where slurmctld does not
        know the id; SchedulerError for any other failure."""
        if len(job_ids) > 1:
            return super().parse_lookup(exit_status, stdout, stderr, job_ids)
        (job_id,) = job_ids
        if exit_status == 0:
            info = self.parse_job_detail(stdout)
            info.job_id = job_id
            return {job_id: info}
        if self.status_failure_means_gone(exit_status, stderr):
            return {job_id: JobInfo(job_id=job_id, state=JobState.GONE)}
        raise SchedulerError(
            f"scontrol show job {job_id} failed (exit {exit_status}): "
            f"{(stderr or stdout).strip()[-400:] or '(no output)'}"
        )

    # --- how a job slurmctld forgot ended: Slurm's accounting ----------------------------

    def follow_up_command(self, info: JobInfo) -> list[str] | None:
        """sacct for a job slurmctld no longer knows (past MinJobAge, or a restart lost it):
        slurmdbd still has its end state and exit code."""
        return ended_command(info.job_id) if info.state is JobState.GONE else None

    def complete_lookup(
        self, info: JobInfo, exit_status: int, stdout: str, stderr: str
    ) -> JobInfo | None:
        # No accounting (sacct: "Slurm accounting storage is disabled"), no record, or a
        # record that cannot be read: GONE stands, as it did without the question.
        if info.state is not JobState.GONE or exit_status != 0:
            return info
        try:
            ended = parse_ended(stdout, info.job_id)
        except SchedulerError:
            return info
        return ended or info

    def accounting_commands(self, user: str, now: datetime) -> list[list[str]]:
        return accounting_commands(user, now)

    def parse_accounting(self, stdouts: list[str], now: datetime) -> UserAccounting:
        return parse_accounting(stdouts, now)

    # --- place in the queue and start estimates ------------------------------------------

    def position_command(self, queue: str) -> list[str]:
        queue = check_directive_value("queue", queue)
        return ["squeue", "-h", "--states=PENDING", "-p", queue, "--sort=-p,i", "-o", "%i"]

    def parse_positions(self, stdout: str) -> dict[str, int]:
        job_ids = [line.strip() for line in stdout.splitlines() if line.strip()]
        return {job_id: place for place, job_id in enumerate(job_ids, start=1)}

    def test_only_command(self, request: JobRequest, script_path: str = "") -> list[str]:
        """Ask when a job of this size would start if submitted now; nothing is submitted.

        Slurm answers on stderr; read it with `parse_test_only`. Without a script,
        `--wrap=true` stands in for one (Slurm reads the script, it never runs it).
        """
        script = [check_directive_value("script_path", script_path)] if script_path else []
        options = self.submit_options(request)
        return ["sbatch", "--test-only", *options, *(script or ["--wrap=true"])]

    def parse_test_only(self, stderr: str) -> datetime:
        match = _TEST_ONLY.search(stderr)
        start = parse_slurm_time(match.group(1)) if match else None
        if start is None:
            raise SchedulerError(f"sbatch --test-only gave no start time: {stderr.strip()!r}")
        return start

    # --- cancelling ----------------------------------------------------------------------

    def cancel_command(self, job_ids: list[str]) -> list[str]:
        return ["scancel", *check_job_ids(job_ids)]

    def jobs_named_command(self, job_name: str, user: str) -> list[str]:
        name = check_directive_value("job_name", job_name)
        return squeue_live(check_directive_value("user", user), "-n", name, fields="%i")

    def user_jobs_command(self, user: str) -> list[str]:
        return squeue_live(check_directive_value("user", user), fields="%i|%j")

    def parse_user_jobs(self, stdout: str, user: str) -> dict[str, str]:
        return parse_id_and_name(stdout)

    # --- one job in detail ----------------------------------------------------------------

    def job_detail_command(self, job_id: str) -> list[str]:
        """Everything slurmctld holds about one job, on one line (with its exit code)."""
        return ["scontrol", "show", "job", "-o", *check_job_ids([job_id])]

    def parse_job_detail(self, stdout: str) -> JobInfo:
        """The job from `scontrol show job`, one-line (-o) or as several indented lines."""
        fields = parse_scontrol_line(_first_record(stdout))
        if "JobId" not in fields or "JobState" not in fields:
            raise SchedulerError(f"scontrol printed no job: {stdout.strip()!r}")
        raw_state = fields["JobState"]
        state = slurm_state(raw_state)
        return JobInfo(
            job_id=fields["JobId"],
            state=state,
            raw_state=raw_state,
            reason=_value(fields.get("Reason", "")),
            queue=_value(fields.get("Partition", "")),
            nodes=_nodes(fields.get("NodeList", "")),
            estimated_start=parse_slurm_time(fields.get("StartTime", ""))
            if state is JobState.PENDING
            else None,
            exit_code=parse_exit_code(fields.get("ExitCode", "")) if state.is_finished else None,
            output_path=_value(fields.get("StdOut", "")),
        )

    # --- queues ---------------------------------------------------------------------------

    def queues_command(self) -> list[str]:
        return ["sinfo", "-h", "-o", self.queues_format]

    def parse_queues(self, stdout: str) -> dict[str, QueueSummary]:
        queues: dict[str, QueueSummary] = {}
        for line in stdout.splitlines():
            parts = line.strip().split("|")
            if len(parts) != 5:
                continue
            name, availability, limit, _, counts = parts
            is_default = name.endswith("*")
            name = name.rstrip("*")
            allocated_idle_other_total = [_int(n) for n in counts.split("/")]
            if len(allocated_idle_other_total) != 4:
                continue
            _, idle, _, total = allocated_idle_other_total
            summary = queues.get(name)
            if summary is None:
                queues[name] = QueueSummary(
                    name=name,
                    nodes_total=total,
                    nodes_free=idle,
                    max_walltime=slurm_walltime(limit),
                    state=availability,
                    is_default=is_default,
                )
            else:
                # sinfo splits a partition over several lines when its nodes differ.
                summary.nodes_total = _add(summary.nodes_total, total)
                summary.nodes_free = _add(summary.nodes_free, idle)
        return queues

    def pending_counts_command(self) -> list[str]:
        return ["squeue", "-h", "--states=PENDING", "-o", "%P"]

    def parse_pending_counts(self, stdout: str) -> dict[str, int]:
        """Pending jobs per partition; a job waiting for several partitions counts in each."""
        counts: dict[str, int] = {}
        for line in stdout.splitlines():
            for partition in line.strip().split(","):
                if partition:
                    counts[partition] = counts.get(partition, 0) + 1
        return counts

    def queue_detail_command(self) -> list[str]:
        return self.pending_counts_command()

    def add_queue_detail(self, queues: dict[str, QueueSummary], stdout: str) -> None:
        counts = self.parse_pending_counts(stdout)
        for name, summary in queues.items():
            summary.jobs_pending = counts.get(name, 0)


def _first_record(text: str) -> str:
    # Without -o, scontrol spreads a record over indented lines and ends it with a blank one.
    lines: list[str] = []
    for line in text.splitlines():
        if line.startswith("JobId="):
            if lines:
                break
            lines.append(line)
        elif lines and line.strip():
            lines.append(line)
        elif lines:
            break
    return " ".join(line.strip() for line in lines)


def _value(text: str) -> str:
    text = text.strip()
    return "" if text in NONE_WORDS else text


def _nodes(text: str) -> list[str]:
    try:
        return expand_hostlist(text)
    except ValueError:
        return [text.strip()]  # a spelling we do not know: show it as Slurm printed it


def _int(text: str) -> int | None:
    return int(text) if text.strip().isdigit() else None


def _add(a: int | None, b: int | None) -> int | None:
    return None if a is None or b is None else a + b
