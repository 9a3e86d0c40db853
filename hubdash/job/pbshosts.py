"""PBS Pro's engine launcher: one command started on the hosts of a job's $PBS_NODEFILE.

Runs inside the job (standard library only). PBS Pro's way to run something on another host
of a job is its task manager: `pbs_tmrsh HOST COMMAND...` (one task per call) asks the
job's MOM on that host to start COMMAND as a task of the job; it works only for hosts of
$PBS_NODEFILE, the task is counted and limited with the job, and it ends with the job. Plain
ssh to the nodes would escape the scheduler's accounting and clean-up. (OpenPBS's `pbsdsh`
starts one task per node file line too, but sets no PBS_VNODENUM to tell the tasks apart.)

- `python -m hubdash.job.pbshosts spread --engines N --per-node P -- CMD...`: places N
  copies of CMD on the job's hosts, P on each (the form's promise), in the node file's order;
  the copies for this host start here, each other host gets one `pbs_tmrsh` that runs
  `local` there. Stays until they all end.
- `python -m hubdash.job.pbshosts local --count K -- CMD...`: K copies of CMD on this host.

What OpenPBS 23.06 does (checked on the test bed): $PBS_NODEFILE has one line per MPI
process, host by host (`select=2:ncpus=2:mpiprocs=2` gives `cn1 cn1 cn2 cn2`); pbs_tmrsh
passes its arguments on as they are (no shell reads them); the task starts with the job's
environment from the MOM, not with the caller's, so the variables the engines need are
passed on with `env`. Ending pbs_tmrsh does not end its task: a stopped watcher leaves the
remote engines to the end of the job, which follows at once (the server is the job's
script), and the MOM then ends every task of the job.
"""

from __future__ import annotations

import os
import shutil
import socket
import sys
from pathlib import Path

from hubdash.job import hostspread
from hubdash.job.contract import PBS_HOSTS_MODULE
from hubdash.job.hostspread import (  # noqa: F401 - part of this launcher's interface
    RemoteStarter,
    forwarded_environment,
    local,
    place,
    same_host,
    spread_over,
)


def read_node_file(path: str) -> list[tuple[str, int]]:
    """Hosts and their lines (MPI processes), in the file's order, each host once."""
    lines: dict[str, int] = {}
    for line in Path(path).read_text().splitlines():
        host = line.strip()
        if host:
            lines[host] = lines.get(host, 0) + 1
    return list(lines.items())


def tmrsh_path() -> str:
    """pbs_tmrsh: on PATH, else in PBS_EXEC/bin as /etc/pbs.conf (or $PBS_CONF_FILE) says."""
    found = shutil.which("pbs_tmrsh")
    if found:
        return found
    conf = os.environ.get("PBS_CONF_FILE") or "/etc/pbs.conf"
    try:
        settings = dict(
            line.strip().split("=", 1)
            for line in Path(conf).read_text().splitlines()
            if "=" in line and not line.lstrip().startswith("#")
        )
    except OSError:
        settings = {}
    candidate = f"{settings.get('PBS_EXEC', '/opt/pbs')}/bin/pbs_tmrsh"
    if os.access(candidate, os.X_OK):
        return candidate
    raise FileNotFoundError(f"pbs_tmrsh is not on PATH, nor at {candidate}")


def remote_argv(tmrsh: str, host: str, count: int, command: list[str]) -> list[str]:
    """`pbs_tmrsh HOST env VAR=... python -m pbshosts local --count K -- CMD...`: pbs_tmrsh
    hands its words to the MOM as they are, so nothing is quoted."""
    env = forwarded_environment()
    here = [sys.executable, "-m", PBS_HOSTS_MODULE, "local", "--count", str(count), "--"]
    return [tmrsh, host, "env", *env, *here, *command]


def spread(engines: int, per_node: int, command: list[str]) -> int:
    node_file = os.environ.get("PBS_NODEFILE", "")
    hosts = read_node_file(node_file) if node_file else [(socket.gethostname(), max(engines, 1))]
    if not hosts:
        print(f"hubdash: {node_file} lists no hosts", file=sys.stderr)
        return 2

    def remote() -> RemoteStarter:
        tmrsh = tmrsh_path()
        return lambda host, count: remote_argv(tmrsh, host, count, command)

    return spread_over(hosts, engines, per_node, command, remote)


def main(argv: list[str] | None = None) -> int:
    return hostspread.main(argv, PBS_HOSTS_MODULE, "$PBS_NODEFILE", spread)


if __name__ == "__main__":
    sys.exit(main())
