"""A real JupyterHub process, started and stopped for a test or a benchmark: in a process group
of its own, its output appended to a log file, stopped together with what it started (the
proxy, managed services), so that the next hub finds its ports free."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import requests


def launch_hub(
    argv: Sequence[str], env: Mapping[str, str], cwd: Path, log_path: Path
) -> subprocess.Popen:
    """Start the hub command `argv`; it answers later (see wait_for_health)."""
    log = open(log_path, "ab")  # noqa: SIM115 - lives as long as the process
    return subprocess.Popen(
        list(argv),
        cwd=cwd,
        env=dict(env),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


def wait_for_health(
    process: subprocess.Popen, url: str, log_path: Path, timeout: float = 60
) -> None:
    """Return once the hub at `url` answers /hub/health; RuntimeError naming the log when it
    exits first or does not answer within `timeout` seconds (the process is left running)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the hub exited at start; see {log_path}")
        with contextlib.suppress(requests.RequestException):
            if requests.get(f"{url}/hub/health", timeout=2).status_code == 200:
                return
        time.sleep(0.3)
    raise RuntimeError(f"the hub did not answer within {timeout:g} s; see {log_path}")


# What a hub restart keeps: the proxy and the forward keeper (hubdash/keeper) outlive the hub.
KEPT_ACROSS_RESTARTS = ("configurable-http-proxy", "hubdash.keeper")


def stop_hub(
    process: subprocess.Popen | None, sig: int = signal.SIGTERM, *, keep_sessions: bool = False
) -> None:
    """Stop the hub and everything it started (proxy, services); their ports are free on
    return. `sig` SIGKILL stands for a hub that dies without cleaning up. With
    `keep_sessions`, as for a restart, the proxy and the forward keeper are left running."""
    if process is None:
        return
    group = process.pid
    # Managed services run in process groups of their own: find them while the hub is still
    # their parent.
    children = _child_groups(group)
    if keep_sessions:
        children = {g for g in children if not _is_kept(g)}
    groups = {group, *children}
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
            process.wait(timeout=10)
    # The proxy and managed services may outlive the hub by a little: a next hub on the same
    # ports must not find them there.
    for other in groups - {group}:
        if _group_alive(other):
            os.killpg(other, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while any(_group_alive(g) for g in groups):
        if time.monotonic() > deadline:
            for g in groups:
                if _group_alive(g):
                    os.killpg(g, signal.SIGKILL)
            deadline = time.monotonic() + 10
        time.sleep(0.1)


def stop_processes(pid_files: Sequence[Path]) -> None:
    """SIGTERM, then SIGKILL after 10 s, the processes whose pids these files hold first (a
    proxy or forward keeper a restarted hub left, no longer any hub's child)."""
    pids = []
    for path in pid_files:
        with contextlib.suppress(OSError, ValueError, IndexError):
            pids.append(int(path.read_text().split()[0]))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    while pids and time.monotonic() < deadline:
        pids = [pid for pid in pids if _alive(pid)]
        time.sleep(0.1)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie child of ours is gone for this purpose.
    with contextlib.suppress(OSError):
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return False


def _is_kept(group: int) -> bool:
    """Whether the leader of this process group is a proxy or a forward keeper."""
    try:
        argv = Path(f"/proc/{group}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return any(name in argv for name in KEPT_ACROSS_RESTARTS)


def _child_groups(pid: int) -> set[int]:
    """Process groups of the direct children of `pid`."""
    groups = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # fields: state, ppid, pgrp, ...
            groups.add(int(fields[2]))
    return groups


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
