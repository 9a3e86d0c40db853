"""What the integration tests on the test bed's PBS and Grid Engine clusters share
(test_pbs_cluster.py, test_sge_cluster.py): alice over SSH on the login node, the session
that brings the cluster up and fails on jobs the tests left, a hubdash Cluster for alice,
and jobs written with the adapter's directives, submitted, followed and cancelled through
hubdash's SchedulerClient.
"""

from __future__ import annotations

import asyncio
import subprocess
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest

from hubdash.cluster.cluster import Cluster
from hubdash.cluster.config import ClusterConfig
from hubdash.schedulers.base import JobInfo, JobRequest
from hubdash.transport.factory import LoginSettings, UserKeys
from tests.conftest import JOB_PREFIX, KEY_DIR, KNOWN_HOSTS, ROOT

PYTHON = "/opt/hubdash/venv/bin/python"  # what jobs run; the package installed there
PATIENCE = 60.0


@dataclass(frozen=True)
class BatchBed:
    """One batch cluster of the test bed, as these tests use it."""

    scheduler: str  # hubdash's scheduler name, also `scripts/testcluster --only`'s
    label: str  # the scheduler's name in messages
    login: str  # the login node's address
    queue: str  # where jobs go unless a test says otherwise
    hold: str  # the directive that submits a job held
    options: tuple[tuple[str, str], ...]  # the cluster's scheduler_options
    qstat: tuple[str, ...]  # the command that lists alice's jobs on the login node
    # qstat's output -> (id, name) of alice's live jobs
    parse: Callable[[str], list[tuple[str, str]]]

    @property
    def script_dir(self) -> str:
        """Where the jobs' scripts, logs and files go, under alice's home."""
        return f".hubdash-it-{self.scheduler}"

    @property
    def ssh(self) -> list[str]:
        """ssh as alice to the login node (a command's words follow)."""
        return ["ssh", "-i", str(KEY_DIR / "alice"), "-o", f"UserKnownHostsFile={KNOWN_HOSTS}",
                "-o", "BatchMode=yes", f"alice@{self.login}"]  # fmt: skip

    def alice_jobs(self) -> list[str]:
        """'id name' of alice's live jobs of this test session, from qstat over SSH."""
        out = subprocess.run(
            [*self.ssh, *self.qstat], capture_output=True, text=True, timeout=30, check=True
        )
        jobs = self.parse(out.stdout)
        return [f"{job_id} {name}" for job_id, name in jobs if name.endswith(f"-{JOB_PREFIX}")]

    def session(self) -> Iterator[None]:
        """A session fixture's body: the cluster up; afterwards this session's files go,
        and any job of the tests still in the queue is deleted and fails the session."""
        subprocess.run(
            [str(ROOT / "scripts" / "testcluster"), "up", "--only", self.scheduler],
            check=True,
            timeout=900,
        )
        yield
        # This session's scripts, logs and host lists go; other sessions' stay.
        folder = self.script_dir
        subprocess.run(
            [*self.ssh, f"rm -f {folder}/*-{JOB_PREFIX}.* {folder}/{JOB_PREFIX}-*"], timeout=30
        )
        # Every job of these tests ends or is cancelled by them: none may be left.
        left = self.alice_jobs()
        if left:
            subprocess.run([*self.ssh, "qdel", *[entry.split()[0] for entry in left]], timeout=30)
            pytest.fail(f"{self.label} jobs of the tests left in the queue: " + "; ".join(left))

    def cluster(self, **options: str) -> Cluster:
        """A hubdash Cluster on this scheduler with alice's key (`options` over the bed's)."""
        config = ClusterConfig(
            name=f"it-{self.scheduler}-{uuid.uuid4().hex[:4]}",
            login=LoginSettings(host=self.login, known_hosts=str(KNOWN_HOSTS)),
            scheduler=self.scheduler,
            scheduler_options=tuple(sorted({**dict(self.options), **options}.items())),
        )
        cluster = Cluster(config)
        cluster.transport_for("alice", UserKeys(key_files=(str(KEY_DIR / "alice"),)))
        return cluster

    async def submit(
        self, cluster: Cluster, what: str, body: str, *, hold: bool = False, **resources
    ) -> tuple[str, str]:
        """A job of alice's: the adapter's directives (plus the bed's hold one), then `body`;
        submitted with SchedulerClient.submit. Returns (job id, job name)."""
        alice = cluster.transport_for("alice")
        name = job_name(what)
        request = JobRequest(
            job_name=name,
            queue=resources.pop("queue", self.queue),
            walltime_seconds=resources.pop("walltime_seconds", 300),
            output_path=f"{self.script_dir}/{name}.log",
            **resources,
        )
        lines = ["#!/bin/bash", *cluster.adapter.directives(request)]
        lines += [self.hold] if hold else []
        script = f"{self.script_dir}/{name}.sh"
        await alice.run(["mkdir", "-p", self.script_dir])
        await alice.write_file(script, ("\n".join([*lines, body]) + "\n").encode(), mode=0o700)
        return await cluster.client.submit(alice, script, request), name


def job_name(what: str) -> str:
    return f"hd-{what}-{uuid.uuid4().hex[:4]}-{JOB_PREFIX}"


async def lookup_until(
    cluster: Cluster, job_id: str, check: Callable[[JobInfo], bool], what: str
) -> JobInfo:
    """The lookup's answer (with the adapter's follow-ups) once `check` holds."""
    alice = cluster.transport_for("alice")
    deadline = asyncio.get_running_loop().time() + PATIENCE
    while True:
        info = (await cluster.client.lookup(alice, [job_id], "alice"))[job_id]
        if check(info):
            return info
        assert asyncio.get_running_loop().time() < deadline, f"never saw {what}; last: {info}"
        await asyncio.sleep(0.5)


async def cancel(cluster: Cluster, *job_ids: str) -> None:
    await cluster.client.cancel(cluster.transport_for("alice"), list(job_ids))
