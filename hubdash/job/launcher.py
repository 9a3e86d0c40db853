"""Runs inside the batch job: picks a port, tells the hub where the server is, starts it.

Runs on a compute node as the user; imports nothing of the hub side so it starts fast.
"""

from __future__ import annotations

import argparse
import os
import shlex
import socket
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from hubdash.job.contract import (
    CONNECTION_FILE,
    ENV_FILE,
    LAUNCHER_MODULE,
    RELAY_ENV,
    ServerAddress,
    decode_env,
    hub_urls_at,
)
from hubdash.job.files import write_private

# The hub names the server's certificates relative to $HOME (see move_certs).
CERT_VARIABLES = ("JUPYTERHUB_SSL_KEYFILE", "JUPYTERHUB_SSL_CERTFILE", "JUPYTERHUB_SSL_CLIENT_CA")


def reserve_port() -> socket.socket:
    """A TCP port of this node, held for the server from now until it listens.

    A port looked up and let go is free for anyone until the server binds it, a second or
    more later: under a class starting at once another job's outgoing connection took one
    as its local port, and the server died with "Address already in use". The socket here
    stays bound, not listening, with SO_REUSEADDR, and is handed on to the server across
    exec: the kernel gives the port to no other bind and no outgoing connection, and the
    server binds it beside this socket (jupyterhub-singleuser, as every tornado server,
    binds with SO_REUSEADDR; a second listener is still refused).
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("0.0.0.0", 0))
    sock.set_inheritable(True)
    return sock


def server_environment(
    hub_env: dict[str, str], port: int, keep_path: bool = False
) -> dict[str, str]:
    """The job's own environment plus the hub's variables and this server's address.

    The server's command is found first beside this interpreter, unless `keep_path`: then
    the job script entered a software environment, whose PATH finds it.
    """
    env = dict(os.environ)
    env.update(hub_env)
    if not keep_path:
        bindir = os.path.dirname(sys.executable)
        env["PATH"] = bindir + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    prefix = hub_env.get("JUPYTERHUB_SERVICE_PREFIX", "/")
    # jupyterhub-singleuser binds to the host and port of this URL; https with internal TLS.
    scheme = urlsplit(hub_env.get("JUPYTERHUB_SERVICE_URL", "")).scheme or "http"
    env["JUPYTERHUB_SERVICE_URL"] = f"{scheme}://0.0.0.0:{port}{prefix}"
    env.pop(RELAY_ENV, None)
    for name in CERT_VARIABLES:
        # The hub put the certificates in the server's folder, named from $HOME.
        if env.get(name):
            env[name] = os.path.join(os.path.expanduser("~"), env[name])
    return env


def start_hub_relay(state_dir: Path) -> int:
    """Start the relay to the hub beside the server; returns its port on this node's loopback.

    The socket is bound here and handed over, so the port is known and held before the
    server is told about it.
    """
    from hubdash.job.hubrelay import listen_on_loopback

    listener = listen_on_loopback()
    port = listener.getsockname()[1]
    subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hubdash.job.hubrelay",
            "--state-dir",
            str(state_dir),
            "--fd",
            str(listener.fileno()),
            "--parent",
            str(os.getpid()),
        ],
        pass_fds=(listener.fileno(),),
        stdin=subprocess.DEVNULL,
    )
    listener.close()
    return port


def start_engines(state_dir: Path, args: argparse.Namespace, hub_env: dict[str, str]) -> dict:
    """Start the engines' watcher beside the server; returns the server's extra variables.

    The server starts even when the engines cannot: the status file tells the hub why.
    """
    from hubdash.job import engines  # only jobs with engines pay for it

    try:
        extra = engines.prepare(state_dir, args.job_id, args.engines, hub_env)
        launcher = shlex.split(args.engine_launcher)
        if not launcher:
            raise ValueError("no engine launcher was given")
        # The watcher gets the job's own environment, not the hub's token.
        engines.start_watcher(
            state_dir,
            args.job_id,
            args.engines,
            launcher,
            engines.controller_address(hub_env),
            {**os.environ, **extra},
            args.engine_python,
        )
    except (OSError, ValueError) as exc:
        print(f"hubdash: the parallel engines cannot start: {exc}", file=sys.stderr, flush=True)
        try:
            engines.write_status(state_dir, args.job_id, args.engines, 0, "failed", str(exc))
        except OSError:
            pass
        return {}
    return extra


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m {LAUNCHER_MODULE}")
    parser.add_argument("--state-dir", required=True, help="the server's folder, from $HOME")
    parser.add_argument("--job-id", default="unknown")
    parser.add_argument("--engines", type=int, default=0, help="IPython-parallel engines to start")
    parser.add_argument(
        "--engine-launcher", default="", help="shell-quoted command that starts the engines"
    )
    parser.add_argument(
        "--keep-path",
        action="store_true",
        help="the job entered a software environment: its PATH finds the server's command",
    )
    parser.add_argument("--engine-python", default="", help="the engines' interpreter")
    parser.add_argument("command", nargs="+", help="the single-user server's command")
    args = parser.parse_args(argv)

    state_dir = Path(args.state_dir).expanduser()
    env_path = state_dir / ENV_FILE
    try:
        hub_env = decode_env(env_path.read_bytes())
    except (OSError, ValueError) as exc:
        print(f"hubdash: cannot read the server's settings {env_path}: {exc}", file=sys.stderr)
        return 2
    held = reserve_port()  # kept open across exec: the server's process holds it to its end
    port = held.getsockname()[1]
    env = server_environment(hub_env, port, args.keep_path)
    if hub_env.get(RELAY_ENV):
        try:
            env.update(hub_urls_at(env, f"127.0.0.1:{start_hub_relay(state_dir)}"))
        except OSError as exc:
            print(f"hubdash: cannot start the relay to the hub: {exc}", file=sys.stderr)
            return 2
    if args.engines > 0:
        env.update(start_engines(state_dir, args, hub_env))
    host = socket.gethostname()
    address = ServerAddress(args.job_id, host, port, pid=os.getpid(), written=time.time())
    write_private(state_dir / CONNECTION_FILE, address.encode())
    # Timestamped, so the job's log shows when the server's own start-up began.
    stamp = datetime.now().isoformat(sep=" ", timespec="milliseconds")
    print(f"hubdash: {stamp} job {args.job_id} starts the server on {host}:{port}", flush=True)
    try:
        os.execvpe(args.command[0], args.command, env)
    except OSError as exc:
        print(f"hubdash: cannot start {args.command[0]!r}: {exc}", file=sys.stderr)
        return 127
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
