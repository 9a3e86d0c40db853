"""Grid Engine's engine launcher (hubdash.job.pehosts): hosts from $PE_HOSTFILE, copies placed
per host, this host's started here and the others' through `qrsh -inherit` (a stand-in qrsh
here; the real one runs in tests/integration/test_sge_cluster.py)."""

from __future__ import annotations

import shlex
import sys

import pytest

from hubdash.job import pehosts

from .scheduler_samples import DATA
from .spreading import on_a_job_host, spread_copies


def test_the_recorded_pe_hostfile_reads_as_hosts_and_slots():
    hosts = pehosts.read_pe_hostfile(str(DATA / "recorded-sge-8.1.9-pe-hostfile.txt"))
    assert hosts == [("sge-cn1", 1), ("sge-cn2", 1)]


def test_a_host_in_two_queues_counts_once_with_all_its_slots(tmp_path):
    hostfile = tmp_path / "pe_hostfile"
    hostfile.write_text("cn2 1 all.q@cn2 UNDEFINED\ncn1 2 all.q@cn1 UNDEFINED\ncn2 1 b.q@cn2 X\n")
    assert pehosts.read_pe_hostfile(str(hostfile)) == [("cn2", 2), ("cn1", 2)]


@pytest.mark.parametrize(
    ("hosts", "engines", "per_node", "expected"),
    [
        ([("a", 2), ("b", 2)], 4, 2, [("a", 2), ("b", 2)]),
        ([("a", 8), ("b", 8)], 3, 2, [("a", 2), ("b", 1)]),
        ([("a", 3), ("b", 1)], 4, 2, [("a", 3), ("b", 1)]),
        ([("a", 1), ("b", 1)], 1, 1, [("a", 1)]),
        ([("a", 1)], 3, 1, [("a", 3)]),  # more copies than slots: all still start
    ],
)
def test_placement_spreads_first_then_fills_slots(hosts, engines, per_node, expected):
    assert pehosts.place(hosts, engines, per_node) == expected


def test_host_names_match_short_or_qualified():
    assert pehosts.same_host("sge-cn1", "SGE-CN1.cluster.example.org")
    assert not pehosts.same_host("sge-cn1", "sge-cn10")


def test_the_remote_line_is_one_shell_line_that_splits_back_exactly(monkeypatch):
    monkeypatch.setenv("IPYTHONDIR", "/home/a b/.hubdash/servers/x/ipython")
    monkeypatch.setenv("SECRET_TOKEN", "never-forwarded")
    line = pehosts.remote_line(2, ["python3", "-m", "ipyparallel.engine", "--file=/x y/e.json"])
    words = shlex.split(line)
    assert words[0] == "env"
    assert "IPYTHONDIR=/home/a b/.hubdash/servers/x/ipython" in words
    assert not any("SECRET_TOKEN" in word for word in words)
    tail = words[words.index("local") :]
    assert tail == ["local", "--count", "2", "--", "python3", "-m", "ipyparallel.engine",
                    "--file=/x y/e.json"]  # fmt: skip


def test_qrsh_is_found_by_sge_root_and_architecture_when_not_on_path(tmp_path, monkeypatch):
    folder = tmp_path / "bin" / "lx-amd64"
    folder.mkdir(parents=True)
    (folder / "qrsh").write_text("#!/bin/sh\n")
    (folder / "qrsh").chmod(0o755)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setenv("SGE_ROOT", str(tmp_path))
    monkeypatch.setenv("SGE_ARCH", "lx-amd64")
    monkeypatch.setenv("SGE_BINARY_PATH", "/usr/sbin/lx-amd64")  # Debian's, where qrsh is not
    assert pehosts.qrsh_path() == str(folder / "qrsh")
    monkeypatch.delenv("SGE_ROOT")
    with pytest.raises(FileNotFoundError, match="qrsh"):
        pehosts.qrsh_path()


def test_spread_runs_this_hosts_copies_here_and_the_others_through_qrsh(tmp_path, monkeypatch):
    hostfile = tmp_path / "pe_hostfile"
    hostfile.write_text("sge-cn1 2 all.q@sge-cn1 UNDEFINED\nsge-cn2 2 all.q@sge-cn2 UNDEFINED\n")
    log = on_a_job_host(
        monkeypatch,
        tmp_path,
        pehosts,
        here="sge-cn2.example.org",
        hosts=("PE_HOSTFILE", hostfile),
        remote=("qrsh", 'exec /bin/bash -c "${@: -1}"'),  # as the remote shell would: the line
    )
    assert spread_copies(pehosts, tmp_path, 3, 2) == (0, "xxx")
    qrsh_calls = log.read_text().splitlines()
    assert len(qrsh_calls) == 1  # this host (sge-cn2) runs its 2 copies without qrsh
    assert qrsh_calls[0].startswith("-inherit -nostdin sge-cn1 env ")
    assert " local --count 1 -- " in qrsh_calls[0]


def test_without_a_pe_hostfile_every_copy_runs_here(tmp_path, monkeypatch):
    monkeypatch.delenv("PE_HOSTFILE", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")  # no qrsh needed
    assert spread_copies(pehosts, tmp_path, 2, 1) == (0, "xx")


def test_a_failing_copy_is_the_launchers_exit_code(tmp_path):
    assert pehosts.local(2, [sys.executable, "-c", "raise SystemExit(7)"]) == 7
    assert pehosts.main(["local", "--count", "1", "--", str(tmp_path / "missing")]) == 127
