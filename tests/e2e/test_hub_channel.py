"""The job's channel to the hub, tried as another user of the cluster would: the hub forward on
the login node answers nothing without a job certificate, and a port taken while the hub is
down changes nothing for the servers whose forward it was."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from ..conftest import LOGIN_HOST, cluster_jobs
from .kernel import run_code

pytestmark = pytest.mark.e2e

# What another user runs: bind the port (SO_REUSEADDR, in a loop until it is free), then
# print every byte any client sends, hex-encoded, one chunk a line.
SQUATTER = r"""
import socket, sys, threading, time
host, port, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + 30
while True:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        break
    except OSError:
        sock.close()
        if time.monotonic() > deadline:
            print("failed", flush=True)
            sys.exit(1)
        time.sleep(0.02)
sock.listen(16)
print("bound", flush=True)
lock = threading.Lock()
def serve(conn):
    conn.settimeout(5)
    try:
        while data := conn.recv(65536):
            with lock:
                print(data.hex(), flush=True)
    except OSError:
        pass
    conn.close()
sock.settimeout(0.5)
end = time.monotonic() + seconds
while time.monotonic() < end:
    try:
        conn, _ = sock.accept()
    except OSError:
        continue
    threading.Thread(target=serve, args=(conn,), daemon=True).start()
"""

# A client on a compute node: plain HTTP, then TLS without a certificate, to the forward.
PROBE = r"""
import json, socket, ssl, sys
host, port = sys.argv[1], int(sys.argv[2])
request = f"GET /hub/login HTTP/1.1\r\nHost: {host}:{port}\r\nConnection: close\r\n\r\n".encode()
def exchange(wrap):
    out = b""
    try:
        with socket.create_connection((host, port), timeout=5) as raw:
            conn = wrap(raw)
            conn.sendall(request)
            while data := conn.recv(65536):
                out += data
    except (OSError, ssl.SSLError) as exc:
        return out.decode(errors="replace") + f"<{type(exc).__name__}: {exc}>"
    return out.decode(errors="replace")
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.check_hostname = False
context.verify_mode = ssl.CERT_NONE
print(json.dumps({
    "plain": exchange(lambda s: s),
    "tls_without_certificate": exchange(lambda s: context.wrap_socket(s)),
}))
"""

# The same client with the job's own certificate: the hub answers (the check above can fail).
PROBE_WITH_CERT = r"""
import socket, ssl, sys
host, port, certs = sys.argv[1], int(sys.argv[2]), sys.argv[3]
context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
context.check_hostname = False
context.load_verify_locations(certs + "/trusted-ca.crt")
context.load_cert_chain(certs + "/server.crt", certs + "/server.key")
with socket.create_connection((host, port), timeout=5) as raw:
    with context.wrap_socket(raw) as conn:
        conn.sendall(b"GET /hub/api/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        print(conn.recv(200).decode(errors="replace"))
"""


def as_user_in(namespace: str, user: str, *argv: str, **kwargs) -> subprocess.CompletedProcess:
    """Run argv as `user` in a test-cluster node's network namespace."""
    return subprocess.run(
        [
            "nsenter",
            f"--net=/var/run/netns/{namespace}",
            "setpriv",
            f"--reuid={user}",
            f"--regid={user}",
            "--init-groups",
            *argv,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        **kwargs,
    )


@pytest.mark.timeout(360)  # a spawn (120 s) and two probes from compute nodes (60 s each)
def test_the_hub_forward_answers_no_one_without_a_job_certificate(make_hub):
    hub = make_hub("")
    hub.spawn("alice", "chan", queue="debug", walltime="10")
    state = hub.wait_ready("alice", "chan")["state"]["job"]
    port = state["hub_forward_port"]

    # Only on the address compute nodes use, not on every interface of the login node.
    listening = subprocess.run(
        ["nsenter", "--net=/var/run/netns/login", "ss", "-Hltn", f"sport = :{port}"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert f"{LOGIN_HOST}:{port}" in listening, listening
    assert f"0.0.0.0:{port}" not in listening and f"*:{port}" not in listening

    # Another user on a compute node: no JupyterHub page in plain HTTP, no TLS without a
    # certificate of the hub's.
    probe = as_user_in("cn2", "erin", "/usr/bin/python3", "-c", PROBE, LOGIN_HOST, str(port))
    assert probe.returncode == 0, probe.stderr
    answers = json.loads(probe.stdout)
    for kind, text in answers.items():
        assert "JupyterHub" not in text and "HTTP/1.1 200" not in text, (kind, text[:300])
        assert "HTTP/" not in text, (kind, text[:300])
    assert "SSL" in answers["tls_without_certificate"], answers

    # The job's own certificate does get the hub's answer: the probe above was at the hub.
    certs = hub.folder("alice", "chan") / "certs"
    holder = as_user_in(
        "cn1",
        "alice",
        "/usr/bin/python3",
        "-c",
        PROBE_WITH_CERT,
        LOGIN_HOST,
        str(port),
        str(certs),
    )
    assert holder.stdout.startswith("HTTP/1.1 "), (holder.stdout, holder.stderr)
    hub.stop("alice", "chan")


def _start_squatter(port: int) -> subprocess.Popen:
    process = subprocess.Popen(
        [
            "nsenter",
            "--net=/var/run/netns/login",
            "setpriv",
            "--reuid=erin",
            "--regid=erin",
            "--init-groups",
            "/usr/bin/python3",
            "-c",
            SQUATTER,
            LOGIN_HOST,
            str(port),
            "120",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    first = process.stdout.readline().strip()
    assert first == "bound", f"the squatter could not bind port {port}: {first!r}"
    return process


def _received(process: subprocess.Popen) -> bytes:
    process.send_signal(signal.SIGTERM)
    out, _ = process.communicate(timeout=10)
    return b"".join(bytes.fromhex(line) for line in out.split() if line)


# two spawns (120 s each), a hub killed and restarted, each notebook run again
@pytest.mark.timeout(660)
def test_ports_taken_while_the_hub_is_down_change_nothing_for_its_servers(
    make_hub, tmp_path_factory
):
    data_dir = tmp_path_factory.mktemp("squatted-hub")
    hub = make_hub("", data_dir=data_dir)
    servers = [("alice", "sq1"), ("bob", "sq2")]
    for user, name in servers:
        hub.spawn(user, name, queue="debug", walltime="10")
    before = {server: hub.wait_ready(*server)["state"]["job"] for server in servers}
    tokens = {
        server: json.loads((hub.folder(*server) / "env.json").read_text())["JUPYTERHUB_API_TOKEN"]
        for server in servers
    }

    hub.terminate(signal.SIGKILL)
    # Another user of the login node takes each server's hub port as soon as sshd frees it.
    squatters = {s: _start_squatter(before[s]["hub_forward_port"]) for s in servers}
    try:
        # Meanwhile a server checks a token with "the hub", which is now the squatter.
        internal = data_dir / "internal-ssl" / "hub-internal"
        for (user, name), state in before.items():
            subprocess.run(
                [
                    "nsenter",
                    "--net=/var/run/netns/login",
                    "curl",
                    "-s",
                    "-k",
                    "-m",
                    "8",
                    "--cert",
                    str(internal / "hub-internal.crt"),
                    "--key",
                    str(internal / "hub-internal.key"),
                    "-H",
                    f"Authorization: token {hub.token}",
                    f"https://{state['node']}:{state['remote_port']}/user/{user}/{name}/api/status",
                ],
                capture_output=True,
                timeout=30,
            )

        restarted = time.monotonic()
        again = make_hub("", data_dir=data_dir)
        for (user, name), state in before.items():
            url = f"{again.url}/user/{user}/{name}/"

            def answers(url=url):
                """the server answers through the restarted hub"""
                reply = requests.get(
                    f"{url}api/status",
                    headers={"Authorization": f"token {again.token}"},
                    timeout=5,
                )
                return reply.status_code == 200

            again.wait_for(answers, timeout=20)
            # A token the server never saw: it asks the hub, through the moved forward.
            out = run_code(url, again.token, "import os; print('JOB', os.environ['SLURM_JOB_ID'])")
            assert out.strip() == f"JOB {state['job_id']}"
        elapsed = time.monotonic() - restarted
        assert elapsed < 20, f"the notebooks ran a cell again {elapsed:.1f} s after the restart"
    finally:
        received = {s: _received(p) for s, p in squatters.items()}

    for server, state in before.items():
        after = again.server(*server)["state"]["job"]
        assert after["job_id"] == state["job_id"]
        assert after["hub_forward_port"] != state["hub_forward_port"]  # it moved
    live = {line.split()[0] for line in cluster_jobs()}
    assert {state["job_id"] for state in before.values()} <= live, "a job was cancelled"
    everything = b"".join(received.values())
    assert everything, "no server tried the old port: the test showed nothing"
    for server, token in tokens.items():
        assert token.encode() not in everything, f"{server}'s token reached the squatter"
    assert b"Authorization" not in everything and b"GET /" not in everything
    for server in servers:
        again.stop(*server)


# A server command that, for the server named "big", fills its folder as a hostile user
# (or a runaway job) would: 2 GB of output, 20 GB sparse connection and engine files, then
# it fails. Every other server starts as usual.
BIG_JOB = r"""
c.JobSpawner.hub_id = "e2e_big"
c.JobSpawner.cmd = ["/bin/sh", "-c", '''
if [ "$JUPYTERHUB_SERVER_NAME" = big ]; then
    folder="$HOME/.hubdash/servers/e2e_big/big"
    yes "filler line of a job that talks too much" | head -c 2G
    echo
    echo "LAST WORDS OF THE BIG JOB"
    truncate -s 20G "$folder/connection.json" "$folder/engines.json"
    exit 1
fi
exec /opt/hubdash/venv/bin/jupyterhub-singleuser "$@"
''', "sh"]
"""


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


# a spawn (120 s), then a job that writes 2 GB and 20 GB sparse files and fails (240 s)
@pytest.mark.timeout(540)
def test_huge_files_and_output_in_a_users_folder_cost_the_hub_no_memory(make_hub):
    hub = make_hub(BIG_JOB)
    hub.spawn("bob", "steady", queue="debug", walltime="10")
    steady = hub.wait_ready("bob", "steady")
    bob_url = f"{hub.url}/user/bob/steady/api/status"
    rss_before = rss_kib(hub.process.pid)
    folder = Path("/home/alice/.hubdash/servers/e2e_big/big")  # BIG_JOB's hub_id
    try:
        hub.spawn("alice", "big", queue="debug", walltime="10")
        failed = None
        deadline = time.monotonic() + 240
        while failed is None:
            assert time.monotonic() < deadline, "alice's start neither failed nor ended"
            # bob's notebook answers all along
            reply = requests.get(
                bob_url, headers={"Authorization": f"token {hub.token}"}, timeout=10
            )
            assert reply.status_code == 200, reply.status_code
            server = hub.server("alice", "big") or {}
            if not server.get("pending") and not server.get("ready"):
                outcome = hub.api("GET", "/users/alice").json()["servers"].get("big") or {}
                failed = (outcome.get("state") or {}).get("last_outcome") or outcome
                break
            time.sleep(1)
        grown = rss_kib(hub.process.pid) - rss_before
        assert grown < 50 * 1024, f"the hub's memory grew by {grown} KiB"
        events = hub.progress_events("alice", "big", timeout=30)
        text = json.dumps(events) + json.dumps(failed)
        assert "LAST WORDS OF THE BIG JOB" in text, text[-2000:]
        assert rss_kib(hub.process.pid) - rss_before < 50 * 1024
    finally:
        for name in ("job.log", "connection.json", "engines.json"):
            (folder / name).unlink(missing_ok=True)
    assert steady["state"]["job"]["job_id"] in {line.split()[0] for line in cluster_jobs()}
    hub.stop("bob", "steady")
