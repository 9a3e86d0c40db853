"""What the engine launchers' tests (test_pehosts.py, test_pbshosts.py) share: a job host
with a stand-in for the scheduler's remote command, and the launcher's `spread` run with
copies that each add an 'x' to a file (hubdash.job.hostspread is what both launchers share).
"""

from __future__ import annotations

import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[2]


def on_a_job_host(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    launcher: ModuleType,
    here: str,
    hosts: tuple[str, Path],
    remote: tuple[str, str],
) -> Path:
    """This process as the job's script on host `here`: the hosts file in its variable
    (`hosts`: variable, file), and on PATH a stand-in for the scheduler's remote command
    (`remote`: its name, and the bash that runs the command here after logging its
    arguments). Returns the stand-in's log, one line a call."""
    variable, hosts_file = hosts
    name, then = remote
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / f"{name}.log"
    script = bin_dir / name
    script.write_text(f'#!/bin/bash\necho "$@" >> {log}\n{then}\n')
    script.chmod(0o755)
    monkeypatch.setenv(variable, str(hosts_file))
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # for `local` on the "other" host
    monkeypatch.setattr(launcher.socket, "gethostname", lambda: here)
    return log


def spread_copies(launcher: ModuleType, tmp_path: Path, engines: int, per_node: int):
    """`launcher.spread(engines, per_node, COPY)`: (its exit code, the x's its copies wrote)."""
    out = tmp_path / "copies"
    copy = [sys.executable, "-c", f"open({str(out)!r}, 'a').write('x')"]
    code = launcher.spread(engines, per_node, copy)
    return code, out.read_text() if out.exists() else ""
