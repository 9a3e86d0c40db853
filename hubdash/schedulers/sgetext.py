"""Grid Engine's text answers: `qsub -terse` (the job id) and `qacct -j ID` (how a job ended).

Pure functions of text, checked against Son of Grid Engine 8.1.9's real output
(tests/unit/data/recorded-sge-8.1.9-*).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

from hubdash.schedulers.base import JobState

# `qsub -terse`: '12', or '12.1-10:1' for an array job.
_TERSE_ID = re.compile(r"^(\d+)(?:\.\d+-\d+:\d+)?$")
# qacct's answer for an id the accounting file does not (yet) hold.
_NOT_FOUND = re.compile(r"error: job id \S+ not found")
# `qacct` separates the records of one job (one per parallel task, then the master's).
_SEPARATOR = re.compile(r"^={20,}\s*$")

# qacct `failed` codes (sge_report_execd / execd's shepherd): 0 = the job script ran and
# exited by itself; 100 = the job ended by a signal from outside (qdel, or a limit the
# execution host enforced); 37 = the qmaster's h_rt/h_cpu/h_vmem limit; the codes below
# that = the job could not be started (no such shell, output file not writable ...).
FAILED_KILLED = 100
_LIMIT_CODES = (37,)
_SIGNAL_BASE = 128


@dataclass
class AccountingRecord:
    """One record of `qacct -j`: a job, or one task of a parallel job."""

    fields: dict[str, str] = field(default_factory=dict)

    @property
    def failed_code(self) -> int | None:
        return _leading_int(self.fields.get("failed", ""))

    @property
    def failed_text(self) -> str:
        # 'failed       37  : qmaster enforced h_rt, h_cpu, or h_vmem limit'
        return self.fields.get("failed", "").partition(":")[2].strip()

    @property
    def exit_status(self) -> int | None:
        # 'exit_status  137                  (Killed)'
        return _leading_int(self.fields.get("exit_status", ""))


def parse_terse_id(stdout: str) -> str | None:
    """The job id `qsub -terse` printed (the last line that is one), else None.

    >>> parse_terse_id("12\\n"), parse_terse_id("7.1-10:1\\n"), parse_terse_id("Your job 1")
    ('12', '7', None)
    """
    for line in reversed([line.strip() for line in stdout.splitlines() if line.strip()]):
        match = _TERSE_ID.match(line)
        if match:
            return match.group(1)
    return None


def accounting_missing(stdout: str, stderr: str) -> bool:
    """Whether qacct said it holds no record of the job (not yet, or never: a job deleted
    before it started has none)."""
    return bool(_NOT_FOUND.search(stderr) or _NOT_FOUND.search(stdout))


def parse_qacct(text: str) -> list[AccountingRecord]:
    """The records of `qacct -j ID`, in the accounting file's order.

    A parallel job has one record per task started with `qrsh -inherit`, and one of the job
    itself (its master task), which qacct does not mark (see master_record).
    """
    records: list[AccountingRecord] = []
    current: AccountingRecord | None = None
    for line in text.splitlines():
        if _SEPARATOR.match(line):
            current = AccountingRecord()
            records.append(current)
            continue
        if current is None or not line.strip():
            continue
        key, _, value = line.strip().partition(" ")
        current.fields[key] = value.strip()
    return [record for record in records if record.fields]


def master_record(records: list[AccountingRecord]) -> AccountingRecord | None:
    """The job's own record among a parallel job's: the one that ended last, of those the
    one submitted first (its tasks are submitted, and end, while the job runs); on a tie the
    last written. The accounting file keeps which record is the master's (pe_taskid NONE),
    but qacct does not print it; and until the master's record is flushed, qacct may show
    only its tasks' (the caller asks again while there is none at all).

    The same order picks the newest job where an id was used twice (a cell set up anew).
    """
    if not records:
        return None

    def order(indexed: tuple[int, AccountingRecord]) -> tuple[datetime, float, int]:
        index, record = indexed
        ended = _qacct_time(record.fields.get("end_time", "")) or datetime.min
        submitted = _qacct_time(record.fields.get("qsub_time", ""))
        return ended, -(submitted.timestamp() if submitted else 0.0), index

    return max(enumerate(records), key=order)[1]


def ended_state(record: AccountingRecord) -> tuple[JobState, str]:
    """How the job ended, and why in words, from its accounting record.

    >>> ended_state(AccountingRecord({"failed": "0", "exit_status": "3"}))
    (<JobState.DONE: 'done'>, '')
    >>> ended_state(AccountingRecord({"failed": "100 : assumedly after job",
    ...                               "exit_status": "137 (Killed)"}))
    (<JobState.CANCELLED: 'cancelled'>, 'killed by signal 9 (assumedly after job)')
    >>> ended_state(AccountingRecord({"failed": "37  : qmaster enforced h_rt, h_cpu, or "
    ...                               "h_vmem limit", "exit_status": "137"}))[0]
    <JobState.FAILED: 'failed'>
    """
    code = record.failed_code
    text = record.failed_text
    exit_status = record.exit_status
    if code == 0:
        return JobState.DONE, ""
    if code == FAILED_KILLED and exit_status is not None and exit_status > _SIGNAL_BASE:
        # qdel of a running job; a limit the execution host enforced looks the same.
        signal = exit_status - _SIGNAL_BASE
        return JobState.CANCELLED, f"killed by signal {signal}" + (f" ({text})" if text else "")
    if code in _LIMIT_CODES:
        return JobState.FAILED, text or "killed at a limit (h_rt, h_cpu or h_vmem)"
    if code is None:
        return JobState.FAILED, "qacct gave no failure code"
    return JobState.FAILED, f"failed {code}" + (f": {text}" if text else "")


def _qacct_time(text: str) -> datetime | None:
    # 'Fri Dec  4 03:08:20 2026': the cluster's local time.
    try:
        return datetime.strptime(" ".join(text.split()), "%a %b %d %H:%M:%S %Y")
    except ValueError:
        return None


def _leading_int(text: str) -> int | None:
    match = re.match(r"\s*(-?\d+)", text)
    return int(match.group(1)) if match else None
