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


def stop_hub(process: subprocess.Popen | None, sig: int = signal.SIGTERM) -> None:
    """Stop the hub and everything it started (proxy, services); their ports are free on
    return. `sig` SIGKILL stands for a hub that dies without cleaning up."""
    if process is None:
        return
    group = process.pid
    # Managed services run in process groups of their own: find them while the hub is still
    # their parent.
    groups = {group, *_child_groups(group)}
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
