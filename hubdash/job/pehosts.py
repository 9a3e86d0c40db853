"""Grid Engine's engine launcher: one command started on the hosts of a parallel job.

Runs inside the job (standard library only). Grid Engine's way to run something on another
host of a job is `qrsh -inherit HOST COMMAND`, one task per call, which the execution host
accepts only for hosts in the job's $PE_HOSTFILE and counts against the job's slots there
(with the parallel environment's `control_slaves TRUE`); the task ends with the job. Plain
ssh to the nodes would escape the scheduler's accounting and clean-up.

- `python -m hubdash.job.pehosts spread --engines N --per-node P -- CMD...`: places N copies
  of CMD on the job's hosts, at most P on a host while others have free slots, never more
  than a host's slots while another has room; the copies for this host start here, each
  other host gets one `qrsh -inherit` that runs `local` there. Stays until they all end.
- `python -m hubdash.job.pehosts local --count K -- CMD...`: K copies of CMD on this host.

$PE_HOSTFILE lines: `host slots queue processor-range` (`sge-cn1 2 all.q@sge-cn1 UNDEFINED`).
A job without one (a single slot) runs all copies here.
"""

from __future__ import annotations

import os
import shlex
import shutil
import socket
import sys
from pathlib import Path

from hubdash.job import hostspread
from hubdash.job.contract import PE_HOSTS_MODULE
from hubdash.job.hostspread import (  # noqa: F401 - part of this launcher's interface
    FORWARDED_VARIABLES,
    RemoteStarter,
    forwarded_environment,
    local,
    place,
    same_host,
    spread_over,
)


def read_pe_hostfile(path: str) -> list[tuple[str, int]]:
    """Hosts and their slots, in the file's order; a host listed twice (two queues) once."""
    slots: dict[str, int] = {}
    for line in Path(path).read_text().splitlines():
        words = line.split()
        if len(words) >= 2 and words[1].isdigit():
            slots[words[0]] = slots.get(words[0], 0) + int(words[1])
    return list(slots.items())


def qrsh_path() -> str:
    """qrsh: on PATH, else where $SGE_ROOT and the architecture say (a job's PATH may lack it)."""
    found = shutil.which("qrsh")
    if found:
        return found
    root, arch = os.environ.get("SGE_ROOT", ""), os.environ.get("SGE_ARCH", "")
    for folder in (
        f"{root}/bin/{arch}" if root and arch else "",
        os.environ.get("SGE_BINARY_PATH"),
    ):
        if folder and os.access(f"{folder}/qrsh", os.X_OK):
            return f"{folder}/qrsh"
    raise FileNotFoundError("qrsh is not on PATH, nor in $SGE_ROOT/bin/$SGE_ARCH")


def remote_line(count: int, command: list[str]) -> str:
    """The shell line `qrsh -inherit` runs on another host (it joins its arguments into one
    line for the remote shell, so the line is quoted word by word here)."""
    env = forwarded_environment()
    here = [sys.executable, "-m", PE_HOSTS_MODULE, "local", "--count", str(count), "--"]
    return shlex.join(["env", *env, *here, *command])


def spread(engines: int, per_node: int, command: list[str]) -> int:
    hostfile = os.environ.get("PE_HOSTFILE", "")
    hosts = read_pe_hostfile(hostfile) if hostfile else [(socket.gethostname(), max(engines, 1))]
    if not hosts:
        print(f"hubdash: {hostfile} lists no hosts", file=sys.stderr)
        return 2

    def remote() -> RemoteStarter:
        qrsh = qrsh_path()
        return lambda host, count: [qrsh, "-inherit", "-nostdin", host, remote_line(count, command)]

    return spread_over(hosts, engines, per_node, command, remote)


def main(argv: list[str] | None = None) -> int:
    return hostspread.main(argv, PE_HOSTS_MODULE, "$PE_HOSTFILE", spread)


if __name__ == "__main__":
    sys.exit(main())
