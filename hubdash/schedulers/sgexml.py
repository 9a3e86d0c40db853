"""Grid Engine's XML answers, read into plain values: `qstat -xml` (a user's jobs),
`qstat -j ID -xml` (one job in detail, with the scheduler's messages), `qstat -g c -xml`
(cluster queues) and `qhost -q -xml` (hosts and their queue instances).

Pure functions of text, checked against Son of Grid Engine 8.1.9's real output
(tests/unit/data/recorded-sge-8.1.9-*).

Safety: the text comes from the scheduler through a transport that bounds its size (1 MiB
by default). It is parsed with the standard library's xml.etree (expat), which fetches no
external entities; a document type declaration, which Grid Engine never writes, is refused
before parsing, so no entity can be declared, let alone expanded.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime

from hubdash.schedulers.base import SchedulerError

# Grid Engine's message when the scheduler has nothing to say about any job.
NO_MESSAGES = "There are no messages available"
# JAT_status bit of a running array task (Grid Engine's JRUNNING).
_RUNNING_BIT = 0x80


@dataclass
class ListedJob:
    """One job as `qstat -xml` lists it (with `-g t`, its task lines merged)."""

    job_id: str
    state: str  # Grid Engine's letters: qw, hqw, r, t, Rr, s, S, T, Eqw, dr, z ...
    name: str = ""
    owner: str = ""
    hosts: list[str] = field(default_factory=list)  # the master task's host first
    queue: str = ""  # the cluster queue of the master task ('all.q'), '' while pending
    slots: int | None = None
    submitted: datetime | None = None
    started: datetime | None = None


@dataclass
class DetailedJob:
    """One job as `qstat -j ID -xml` describes it."""

    job_id: str
    name: str = ""
    owner: str = ""
    running: bool = False  # a task of it runs (or is being deleted while it runs)
    queues: list[str] = field(default_factory=list)  # the queues it asked for (-q)
    errors: list[str] = field(default_factory=list)  # why it is in error state (Eqw)
    messages: list[str] = field(default_factory=list)  # the scheduler's, about this job


@dataclass
class JobDetails:
    """All of one `qstat -j ... -xml` answer."""

    jobs: dict[str, DetailedJob] = field(default_factory=dict)
    unknown: list[str] = field(default_factory=list)  # ids qstat says do not exist
    global_messages: list[str] = field(default_factory=list)  # about every pending job


@dataclass
class ClusterQueue:
    """One line of `qstat -g c -xml`: a cluster queue's slots."""

    name: str
    used: int | None = None
    reserved: int | None = None
    available: int | None = None
    total: int | None = None
    temporarily_unavailable: int | None = None  # slots in states a o A C D S (aoACDS)
    needs_admin: int | None = None  # slots in states c d s u E (cdsuE): disabled, error ...


@dataclass
class QueueInstance:
    """One queue on one host, from `qhost -q -xml`."""

    queue: str
    host: str
    slots_used: int | None = None
    slots: int | None = None
    state: str = ""  # '' in service; letters otherwise (d disabled, u unknown, E error ...)
    host_reports: bool = True  # the host sends load reports (its execd runs)


def _documents(text: str) -> list[ET.Element]:
    """The root elements of an answer; qstat may print more than one XML document."""
    if "<!DOCTYPE" in text or "<!ENTITY" in text:
        raise SchedulerError("Grid Engine printed XML with a document type: refused")
    parts = [part for part in text.split("<?xml") if part.strip()]
    roots = []
    for part in parts:
        body = part.split("?>", 1)[1] if part.lstrip().startswith("version") else part
        try:
            roots.append(ET.fromstring(body))
        except ET.ParseError as exc:
            raise SchedulerError(f"Grid Engine printed XML we cannot read: {exc}") from None
    if not roots:
        raise SchedulerError("Grid Engine printed no XML")
    return roots


def _text(element: ET.Element, tag: str) -> str:
    child = element.find(tag)
    return (child.text or "").strip() if child is not None else ""


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if text.lstrip("-").isdigit() else None


def _time(text: str) -> datetime | None:
    # '2026-12-04T03:08:20': the cluster's local time, without a zone.
    try:
        return datetime.fromisoformat(text.strip()) if text.strip() else None
    except ValueError:
        return None


def _host_of(queue_instance: str) -> tuple[str, str]:
    queue, _, host = queue_instance.partition("@")
    return queue, host


def parse_job_list(text: str) -> dict[str, ListedJob]:
    """The jobs of `qstat [-u USER] [-g t] -xml`, by id, in qstat's order.

    With `-g t` a parallel job has a line per task (`<master>MASTER</master>` or `SLAVE`),
    each naming the queue instance it runs in; they are merged into one job whose hosts
    start with the master task's.
    """
    jobs: dict[str, ListedJob] = {}
    for root in _documents(text):
        if root.tag != "job_info":
            raise SchedulerError(f"qstat printed <{root.tag}> where a job list belongs")
        for line in root.iter("job_list"):
            job_id = _text(line, "JB_job_number")
            if not job_id:
                continue
            job = jobs.get(job_id)
            if job is None:
                job = jobs[job_id] = ListedJob(
                    job_id=job_id,
                    state=_text(line, "state"),
                    name=_text(line, "JB_name"),
                    owner=_text(line, "JB_owner"),
                    slots=_int(_text(line, "slots")),
                    submitted=_time(_text(line, "JB_submission_time")),
                    started=_time(_text(line, "JAT_start_time")),
                )
            queue, host = _host_of(_text(line, "queue_name"))
            is_master = _text(line, "master") in ("MASTER", "")
            if host and is_master:
                if host in job.hosts:
                    job.hosts.remove(host)
                job.hosts.insert(0, host)
            elif host and host not in job.hosts:
                job.hosts.append(host)
            if queue and (is_master or not job.queue):
                job.queue = queue
    return jobs


def parse_job_details(text: str) -> JobDetails:
    """What `qstat -j ID[,ID...] -xml` says: the jobs it knows, the ids it does not, and
    the scheduler's messages (kept only where the cluster has `schedd_job_info true`)."""
    details = JobDetails()
    for root in _documents(text):
        if root.tag == "unknown_jobs":
            details.unknown += [(e.text or "").strip() for e in root.iter("ST_name") if e.text]
            continue
        if root.tag != "detailed_job_info":
            raise SchedulerError(f"qstat -j printed <{root.tag}> where job details belong")
        for info in root.iter("djob_info"):
            for element in info.findall("element"):
                job = _detailed_job(element)
                if job.job_id:
                    details.jobs[job.job_id] = job
        for listing in root.iter("SME_message_list"):
            for element in listing.findall("element"):
                message = _text(element, "MES_message")
                ids = [(v.text or "").strip() for v in element.iter("ULNG_value")]
                for job_id in ids:
                    if message and job_id in details.jobs:
                        details.jobs[job_id].messages.append(message)
        for listing in root.iter("SME_global_message_list"):
            for element in listing.findall("element"):
                message = _text(element, "MES_message")
                if message and message != NO_MESSAGES:
                    details.global_messages.append(message)
    return details


def _detailed_job(element: ET.Element) -> DetailedJob:
    job = DetailedJob(
        job_id=_text(element, "JB_job_number"),
        name=_text(element, "JB_job_name"),
        owner=_text(element, "JB_owner"),
        queues=[(q.text or "").strip() for q in element.iterfind("JB_hard_queue_list//QR_name")],
    )
    for task in element.iter("JB_ja_tasks"):
        for status in task.iter("JAT_status"):
            value = _int(status.text or "")
            job.running = job.running or (value is not None and bool(value & _RUNNING_BIT))
        for message in task.iter("QIM_message"):
            if message.text and message.text.strip():
                job.errors.append(message.text.strip())
    return job


def parse_cluster_queues(text: str) -> dict[str, ClusterQueue]:
    """The cluster queues of `qstat -g c -xml`, by name."""
    queues: dict[str, ClusterQueue] = {}
    for root in _documents(text):
        for element in root.iter("cluster_queue_summary"):
            name = _text(element, "name")
            if not name:
                continue
            queues[name] = ClusterQueue(
                name=name,
                used=_int(_text(element, "used")),
                reserved=_int(_text(element, "resv")),
                available=_int(_text(element, "available")),
                total=_int(_text(element, "total")),
                temporarily_unavailable=_int(_text(element, "temp_disabled")),
                needs_admin=_int(_text(element, "manual_intervention")),
            )
    return queues


def parse_host_queues(text: str) -> list[QueueInstance]:
    """Every queue instance of `qhost -q -xml` (the pseudo host 'global' has none)."""
    instances: list[QueueInstance] = []
    for root in _documents(text):
        if root.tag != "qhost":
            raise SchedulerError(f"qhost printed <{root.tag}> where hosts belong")
        for host in root.findall("host"):
            name = host.get("name", "")
            values = {v.get("name", ""): (v.text or "").strip() for v in host.findall("hostvalue")}
            # No load average: the host's execd sends no reports (down, or not started).
            reports = values.get("load_avg", "-") not in ("-", "")
            for queue in host.findall("queue"):
                qvalues = {
                    v.get("name", ""): (v.text or "").strip() for v in queue.findall("queuevalue")
                }
                instances.append(
                    QueueInstance(
                        queue=queue.get("name", ""),
                        host=name,
                        slots_used=_int(qvalues.get("slots_used", "")),
                        slots=_int(qvalues.get("slots", "")),
                        state=qvalues.get("state_string", ""),
                        host_reports=reports,
                    )
                )
    return instances
