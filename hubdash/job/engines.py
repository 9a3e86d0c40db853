"""IPython-parallel inside the job: a controller on the server's node, engines on the job's nodes.

Runs on the compute nodes as the user; imports nothing of the hub (ipyparallel only where it
watches the engines). Its one report to the hub is the 0600 status file `engines.json`
(hubdash.job.contract: ENGINES_FILE, EngineReport).

How one job runs its engines:

- `prepare()` (in the launcher, before the server starts): a per-server IPython directory
  that mirrors the user's own (symlinks) except for its own `profile_default/security`, so
  `ipyparallel.Client()` with no arguments finds this server's controller, and two servers
  of one user never share connection files. The server gets it as IPYTHONDIR.
- `start_watcher()`: `python -m hubdash.job.engines run ...` in the background, a child of the
  server. It starts `ipcontroller` on this node's address, then the admin's launcher (srun,
  mpiexec, pbsdsh ...) with the engine's command appended, counts registered engines with a
  client and writes the count to `engines.json` whenever it changes. When the server goes
  (its parent), or on SIGTERM, it stops the controller and the launcher with everything they
  started: a job's processes must all end with the job, whatever the scheduler tracks.
- `python -m hubdash.job.engines slot --first N -- CMD`: for launchers that start one task per
  CPU slot (pbsdsh), only the first N slots run CMD.
"""

from __future__ import annotations

import argparse
import ctypes
import ipaddress
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from hubdash.job.contract import ENGINES_FILE, ENGINES_MODULE, EngineReport
from hubdash.job.files import write_private

IPYTHON_DIR = "ipython"  # in the server's state dir
CLIENT_FILE = "ipcontroller-client.json"
ENGINE_FILE = "ipcontroller-engine.json"

# Entries of the user's profile_default that stay per server: connection files, pid and log files.
_LOCAL_PROFILE_ENTRIES = {"security", "pid", "log"}
# Linked even before they exist, so what IPython creates there lands in the user's own profile.
_SHARED_PROFILE_ENTRIES = {"startup", "ipython_config.py", "ipython_kernel_config.py"}

CONTROLLER_TIMEOUT = 60.0  # seconds for ipcontroller to write its connection files
ENGINE_REGISTRATION_TIMEOUT = 30  # ipengine's own wait for the controller's answer
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL when stopping


def security_dir(ipython_dir: Path) -> Path:
    return ipython_dir / "profile_default" / "security"


def write_status(
    state_dir: Path,
    job_id: str,
    requested: int,
    up: int,
    state: str,
    message: str = "",
    controller: str = "",
) -> None:
    """Replace engines.json with the current count (readable by the owner only);
    ValueError for a state that is not one of the contract's."""
    report = EngineReport(requested, up, state, message, job_id, controller, time.time())
    write_private(state_dir / ENGINES_FILE, report.encode())


def build_ipython_dir(overlay: Path, real: Path) -> Path:
    """A fresh per-server IPython directory: the user's own entries linked, security local.

    Startup files, config, history and other profiles stay the user's own; only the
    connection files (and pid/log files) belong to this server.
    """
    real_profile = real / "profile_default"
    (real_profile / "startup").mkdir(mode=0o700, parents=True, exist_ok=True)
    if overlay.is_symlink() or overlay.is_file():
        overlay.unlink()
    elif overlay.exists():
        shutil.rmtree(overlay)  # only links and this server's own files live here
    overlay.mkdir(mode=0o700, parents=True)
    for entry in real.iterdir():
        if entry.name != "profile_default":
            (overlay / entry.name).symlink_to(entry)
    profile = overlay / "profile_default"
    profile.mkdir(mode=0o700)
    names = {entry.name for entry in real_profile.iterdir()} | _SHARED_PROFILE_ENTRIES
    for name in sorted(names - _LOCAL_PROFILE_ENTRIES):
        (profile / name).symlink_to(real_profile / name)
    security_dir(overlay).mkdir(mode=0o700)
    return overlay


def controller_address(hub_env: dict[str, str]) -> str:
    """This node's address as the job's other nodes reach it ('*' if none can be found).

    The host name's address first; where that is missing or loopback, the source address
    towards the hub's API, which every compute node reaches.
    """
    try:
        for *_, sockaddr in socket.getaddrinfo(
            socket.gethostname(), None, socket.AF_INET, socket.SOCK_STREAM
        ):
            if not ipaddress.ip_address(sockaddr[0]).is_loopback:
                return sockaddr[0]
    except OSError:
        pass
    target = urlsplit(hub_env.get("JUPYTERHUB_API_URL", "")).hostname
    if target:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.connect((target, 9))  # UDP: picks a route, sends nothing
                address = sock.getsockname()[0]
            if not ipaddress.ip_address(address).is_loopback:
                return address
        except (OSError, ValueError):
            pass
    return "*"


def prepare(state_dir: Path, job_id: str, engines: int, hub_env: dict[str, str]) -> dict[str, str]:
    """Before the server starts: its IPython directory and a 'starting' status.

    Returns the variables the server (and the watcher) need: IPYTHONDIR.
    """
    real = Path(hub_env.get("IPYTHONDIR") or os.environ.get("IPYTHONDIR") or "~/.ipython")
    # Absolute: kernels and engines run in other folders.
    overlay = build_ipython_dir(state_dir.absolute() / IPYTHON_DIR, real.expanduser())
    write_status(state_dir, job_id, engines, 0, "starting", f"0 of {engines} engines up")
    return {"IPYTHONDIR": str(overlay)}


def start_watcher(
    state_dir: Path,
    job_id: str,
    engines: int,
    launcher: list[str],
    address: str,
    env: dict[str, str],
    engine_python: str = "",
) -> subprocess.Popen:
    """`python -m hubdash.job.engines run` in the background, a child of the (future) server.

    `engine_python` runs the engines (default: this interpreter), so that they import what
    the notebook's kernel imports in a software environment."""
    argv = [
        sys.executable,
        "-m",
        ENGINES_MODULE,
        "run",
        "--state-dir",
        str(state_dir.absolute()),
        "--job-id",
        job_id,
        "--engines",
        str(engines),
        "--address",
        address,
        "--launcher",
        shlex.join(launcher),
        "--server-pid",
        str(os.getpid()),  # the launcher's pid, which exec makes the server's
    ]
    if engine_python:
        argv += ["--engine-python", engine_python]
    return subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL)


def controller_command(ipython_dir: Path, address: str) -> list[str]:
    """ipcontroller on this node, its connection files in the server's own profile."""
    location = socket.gethostname() if address == "*" else address
    return [
        sys.executable,
        "-m",
        "ipyparallel.controller",
        f"--ip={address}",
        f"--location={location}",
        f"--profile-dir={ipython_dir / 'profile_default'}",
        "--log-level=WARN",
    ]


def engine_command(ipython_dir: Path, python: str = "") -> list[str]:
    """One engine; the launcher runs it once per engine across the nodes."""
    return [
        python or sys.executable,
        "-m",
        "ipyparallel.engine",
        f"--file={security_dir(ipython_dir) / ENGINE_FILE}",
        f"--timeout={ENGINE_REGISTRATION_TIMEOUT}",
        "--log-level=WARN",
    ]


def _die_with_parent() -> None:
    # Runs in the child before exec: SIGTERM when the watcher dies, even by SIGKILL.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM))  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass


def _start_group(argv: list[str]) -> subprocess.Popen:
    # Its own process group, so stopping reaches everything it started (schedulers, steps).
    return subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, start_new_session=True, preexec_fn=_die_with_parent
    )


def _stop_groups(processes: list[subprocess.Popen]) -> None:
    running = [p for p in processes if p.poll() is None]
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for process in running:
            try:
                os.killpg(process.pid, sig)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + STOP_GRACE
        while time.monotonic() < deadline and any(p.poll() is None for p in running):
            time.sleep(0.1)
    for process in processes:
        # The leader may be gone while others of its group linger.
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass


class _Stop(BaseException):
    """The job ends, or the server that started this watcher is gone.

    Not an Exception: library code that catches Exception must not swallow it.
    """


class Watcher:
    """Runs the controller and the engines of one job and reports how many are up."""

    def __init__(
        self,
        state_dir: Path,
        job_id: str,
        requested: int,
        launcher: list[str],
        address: str,
        server_pid: int,
        engine_python: str = "",
    ):
        self.state_dir = state_dir
        self.job_id = job_id
        self.requested = requested
        self.launcher = launcher
        self.address = address
        self.ipython_dir = state_dir / IPYTHON_DIR
        self.processes: list[subprocess.Popen] = []
        self.server_pid = server_pid
        self.engine_python = engine_python
        self.last: tuple[int, str, str] | None = None

    def report(self, up: int, state: str, message: str) -> None:
        if (up, state, message) != self.last:
            self.last = (up, state, message)
            write_status(
                self.state_dir, self.job_id, self.requested, up, state, message, self.address
            )

    def check_alive(self) -> None:
        if os.getppid() != self.server_pid:
            raise _Stop("the server has stopped")

    def run(self) -> int:
        def stop(signum: int, _frame) -> None:
            raise _Stop(f"signal {signum}")

        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, stop)
        client = None
        up = 0
        try:
            controller = self._start_controller()
            engine = engine_command(self.ipython_dir, self.engine_python)
            engines = _start_group([*self.launcher, *engine])
            self.processes.append(engines)
            client = self._connect(controller)
            while True:
                self.check_alive()
                up = len(client.ids)
                if up >= self.requested:
                    self.report(up, "running", f"all {self.requested} engines up")
                elif engines.poll() is not None:
                    self.report(
                        up,
                        "failed",
                        f"the engine launcher {self.launcher[0]} exited with code "
                        f"{engines.returncode}; {up} of {self.requested} engines up",
                    )
                else:
                    self.report(up, "starting", f"{up} of {self.requested} engines up")
                if controller.poll() is not None:
                    raise RuntimeError(f"the controller exited with code {controller.returncode}")
                time.sleep(0.5 if up < self.requested else 2.0)
        except _Stop:
            self.report(up, "stopped", "the engines stopped with the server")
            return 0
        except Exception as exc:  # noqa: BLE001 - the server lives on without engines
            print(f"hubdash: the parallel engines failed: {exc}", file=sys.stderr, flush=True)
            self.report(up, "failed", str(exc))
            # Stay until the server goes: the engines that did start may still serve it.
            try:
                while True:
                    self.check_alive()
                    time.sleep(1.0)
            except _Stop:
                return 1
        finally:
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)
            _stop_groups(self.processes)
            if client is not None:
                client.close()

    def _start_controller(self) -> subprocess.Popen:
        security = security_dir(self.ipython_dir)
        for name in (CLIENT_FILE, ENGINE_FILE):
            (security / name).unlink(missing_ok=True)
        controller = _start_group(controller_command(self.ipython_dir, self.address))
        self.processes.append(controller)
        deadline = time.monotonic() + CONTROLLER_TIMEOUT
        while not all((security / name).exists() for name in (CLIENT_FILE, ENGINE_FILE)):
            self.check_alive()
            if controller.poll() is not None:
                raise RuntimeError(
                    f"the controller exited with code {controller.returncode} before it "
                    "wrote its connection files"
                )
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the controller wrote no connection files within {CONTROLLER_TIMEOUT:.0f} s"
                )
            time.sleep(0.2)
        return controller

    def _connect(self, controller: subprocess.Popen):
        import ipyparallel  # only here: the hub side never needs it

        path = str(security_dir(self.ipython_dir) / CLIENT_FILE)
        while True:
            self.check_alive()
            try:
                return ipyparallel.Client(path, timeout=10)
            except (OSError, TimeoutError) as exc:
                if controller.poll() is not None:
                    raise RuntimeError(
                        f"the controller exited with code {controller.returncode}"
                    ) from exc
                time.sleep(1.0)


def slot_main(first: int, command: list[str]) -> int:
    """Run `command` only in the first `first` CPU slots of a pbsdsh launch."""
    index = os.environ.get("PBS_VNODENUM", "")
    if not index.isdigit():
        print(
            "hubdash: PBS_VNODENUM is not set: start this with Torque's pbsdsh "
            "(OpenPBS's pbsdsh sets none: use the engine launcher 'pbs_tmrsh')",
            file=sys.stderr,
        )
        return 2
    if int(index) >= first:
        return 0
    os.execvp(command[0], command)
    return 127  # not reached


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {ENGINES_MODULE}")
    commands = parser.add_subparsers(dest="action", required=True)
    run = commands.add_parser("run", help="start the controller and engines, report their count")
    run.add_argument("--state-dir", required=True)
    run.add_argument("--job-id", default="unknown")
    run.add_argument("--engines", type=int, required=True)
    run.add_argument("--address", required=True, help="where the controller listens")
    run.add_argument("--launcher", required=True, help="shell-quoted launcher command")
    run.add_argument("--server-pid", type=int, default=0, help="stop when it is gone")
    run.add_argument("--engine-python", default="", help="the engines' interpreter")
    slot = commands.add_parser("slot", help="run a command only in the first N CPU slots")
    slot.add_argument("--first", type=int, required=True)
    slot.add_argument("command", nargs="+")
    args = parser.parse_args(argv)
    if args.action == "slot":
        return slot_main(args.first, args.command)
    state_dir = Path(args.state_dir).expanduser().absolute()
    watcher = Watcher(
        state_dir,
        args.job_id,
        args.engines,
        shlex.split(args.launcher),
        args.address,
        args.server_pid or os.getppid(),
        args.engine_python,
    )
    try:
        return watcher.run()
    except _Stop:  # arrived while it was already reporting a failure
        return 1


if __name__ == "__main__":
    sys.exit(main())
