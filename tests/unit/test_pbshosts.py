"""PBS Pro's engine launcher (hubdash.job.pbshosts): hosts from $PBS_NODEFILE, copies placed
per host, this host's started here and the others' through `pbs_tmrsh` (a stand-in here; the
real one runs in tests/integration/test_pbs_cluster.py)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hubdash.job import pbshosts

from .scheduler_samples import DATA
from .spreading import on_a_job_host, spread_copies


def recorded_node_file(tmp_path: Path) -> Path:
    """The node file of the recorded two-node job (select=2:ncpus=2:mpiprocs=2)."""
    lines = (DATA / "recorded-openpbs-23.06-job-output-two-nodes.txt").read_text().splitlines()
    node_file = tmp_path / "nodefile"
    node_file.write_text("\n".join(lines[2:6]) + "\n")
    return node_file


def test_the_recorded_node_file_reads_as_hosts_and_their_processes(tmp_path):
    hosts = pbshosts.read_node_file(str(recorded_node_file(tmp_path)))
    assert hosts == [("pbs-cn1", 2), ("pbs-cn2", 2)]


def test_the_remote_command_is_words_for_pbs_tmrsh_with_the_needed_variables(monkeypatch):
    monkeypatch.setenv("IPYTHONDIR", "/home/a b/.hubdash/servers/x/ipython")
    monkeypatch.setenv("SECRET_TOKEN", "never-forwarded")
    engine = ["python3", "-m", "ipyparallel.engine", "--file=/x y/e.json"]
    argv = pbshosts.remote_argv("/opt/pbs/bin/pbs_tmrsh", "pbs-cn2", 2, engine)
    assert argv[:3] == ["/opt/pbs/bin/pbs_tmrsh", "pbs-cn2", "env"]
    assert "IPYTHONDIR=/home/a b/.hubdash/servers/x/ipython" in argv
    assert not any("SECRET_TOKEN" in word for word in argv)
    assert argv[argv.index("local") - 2 :] == [
        "-m", "hubdash.job.pbshosts", "local", "--count", "2", "--", *engine,
    ]  # fmt: skip
    assert "ssh" not in " ".join(argv)


def test_pbs_tmrsh_is_found_through_pbs_conf_when_not_on_path(tmp_path, monkeypatch):
    exec_dir = tmp_path / "pbs"
    (exec_dir / "bin").mkdir(parents=True)
    tmrsh = exec_dir / "bin" / "pbs_tmrsh"
    tmrsh.write_text("#!/bin/sh\n")
    tmrsh.chmod(0o755)
    conf = tmp_path / "pbs.conf"
    conf.write_text(f"PBS_SERVER=pbs-login\nPBS_EXEC={exec_dir}\n")
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("PBS_CONF_FILE", str(conf))
    assert pbshosts.tmrsh_path() == str(tmrsh)
    conf.write_text("PBS_EXEC=/nonexistent\n")
    with pytest.raises(FileNotFoundError, match="pbs_tmrsh"):
        pbshosts.tmrsh_path()


@pytest.mark.parametrize(("engines", "here_copies", "remote_count"), [(4, 2, 2), (3, 2, 1)])
def test_spread_puts_per_node_copies_here_and_the_rest_through_pbs_tmrsh(
    tmp_path, monkeypatch, engines, here_copies, remote_count
):
    log = on_a_job_host(
        monkeypatch,
        tmp_path,
        pbshosts,
        here="pbs-cn1",
        hosts=("PBS_NODEFILE", recorded_node_file(tmp_path)),
        remote=("pbs_tmrsh", 'shift\nexec "$@"'),  # as the MOM would: HOST, then the words
    )
    assert spread_copies(pbshosts, tmp_path, engines, 2) == (0, "x" * engines)
    (call,) = log.read_text().splitlines()  # one task for pbs-cn2
    assert call.startswith("pbs-cn2 env ")
    assert f" local --count {remote_count} -- " in call


def test_without_a_node_file_every_copy_runs_here(tmp_path, monkeypatch):
    monkeypatch.delenv("PBS_NODEFILE", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")  # no pbs_tmrsh needed
    assert spread_copies(pbshosts, tmp_path, 2, 1) == (0, "xx")


def test_a_missing_command_is_the_launchers_exit_code(tmp_path):
    assert pbshosts.main(["local", "--count", "1", "--", str(tmp_path / "missing")]) == 127
