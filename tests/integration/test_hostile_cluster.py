"""Hostile input and identities on the test cluster: real sshd, real login shells, Slurm's own
qsub wrapper, and each hub user's own SSH key."""

from __future__ import annotations

import shlex
import subprocess
from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from traitlets.config import Config

from hubdash.schedulers.base import JobRequest
from hubdash.schedulers.pbs import PBSAdapter
from hubdash.spawner.jobspawner import JobSpawner
from hubdash.transport.base import TransportError
from hubdash.transport.ssh import SSHTransport

from ..conftest import KEY_DIR, KNOWN_HOSTS, LOGIN_HOST
from ..hostile import ODD_VALUES, TALLY, marker_name, payloads

pytestmark = pytest.mark.integration

MARKER = f"/tmp/{marker_name()}"
words = st.one_of(st.sampled_from(payloads(MARKER) + ODD_VALUES), st.text(max_size=30)).filter(
    lambda s: "\x00" not in s
)


@pytest.fixture(scope="module")
async def alice(test_cluster):
    transport = SSHTransport(
        LOGIN_HOST,
        username="alice",
        client_keys=[str(KEY_DIR / "alice")],
        known_hosts=str(KNOWN_HOSTS),
    )
    yield transport
    await transport.close()


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(words, min_size=1, max_size=4))
async def test_hostile_arguments_reach_the_login_shell_as_the_same_words(alice, argv):
    with TALLY.trying(argv):
        result = await alice.run(["printf", "%s\\0", "first", *argv])
        assert result.exit_status == 0, result.stderr
        assert result.stdout.split("\0")[:-1] == ["first", *argv]
        assert not (await alice.run(["test", "-e", MARKER])).exit_status == 0, "a payload ran"


def test_slurms_qsub_wrapper_gets_only_arguments_its_shell_line_keeps_whole(tmp_path):
    # The wrapper joins its arguments into one line for a shell (perl backticks): every
    # argument the adapter builds must read back as the same word.
    adapter = PBSAdapter("slurm-torque")
    request = JobRequest(
        job_name="jupyterhub-alice-x",
        queue="debug",
        walltime_seconds=600,
        output_path=".hubdash/servers/a.b+c-d_e/job.log",
    )
    argv = adapter.submit_command(".hubdash/servers/a.b+c-d_e/job.sh", request)
    done = subprocess.run(
        [f"/usr/bin/{argv[0]}", "--sbatchline", *argv[1:]],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=tmp_path,
        check=True,
    )
    line = done.stdout.strip()
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    sbatch = list(lexer)
    assert sbatch[0].endswith("sbatch")
    for value in (request.output_path, ".hubdash/servers/a.b+c-d_e/job.sh", "--no-requeue"):
        assert value in sbatch, (value, line)


def hub_spawner(name: str) -> JobSpawner:
    """A spawner configured as the test hub's, for hub user `name`."""
    config = Config()
    config.JobSpawner.login_host = LOGIN_HOST
    config.JobSpawner.known_hosts = str(KNOWN_HOSTS)
    config.JobSpawner.ssh_key_path = str(KEY_DIR / "{username}")
    user = SimpleNamespace(name=name, groups=[], url=f"/user/{name}/", escaped_name=name)
    return JobSpawner(config=config, user=user)


async def test_each_hub_users_commands_run_as_that_cluster_user(test_cluster):
    spawners = {name: hub_spawner(name) for name in ("alice", "bob")}
    cluster = spawners["alice"].cluster
    try:
        for name, spawner in spawners.items():
            transport = spawner.user_transport()
            result = await transport.run(["id", "-un"])
            assert result.stdout.strip() == name
        # What the job monitor does: ask by name. Bob's own transport, or none at all.
        assert (await cluster.transport_for("bob").run(["id", "-un"])).stdout.strip() == "bob"
        with pytest.raises(TransportError, match="carol"):
            cluster.transport_for("carol")
    finally:
        await cluster.close()
