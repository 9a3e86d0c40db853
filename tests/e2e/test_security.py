"""Trying to break it on a real hub and the test cluster: hostile options and server names
through every way in, a changed host key, settings that cannot work, secrets in `ps` and in
files, and one user reaching for another's servers.

Payloads would create marker files (/tmp and the users' homes are shared by the hub, the
login node and the compute nodes); after each test none may exist and no job may have
been submitted for a refused spawn.
"""

from __future__ import annotations

import json
import pwd
import secrets
import socket
import stat
import subprocess
import threading
from pathlib import Path
from urllib.parse import quote, urlencode

import pytest
import requests
from playwright.sync_api import Page

from ..conftest import JOB_PREFIX, cluster_jobs
from ..hostile import REFUSED, TALLY, marker_name, payloads
from .badconfig import hub_refused_at_start
from .conftest import PORT_BASE, log_in
from .hubprocess import Hub

DASH = "/services/hubdash/"
slurm_only = pytest.mark.parametrize("hub", ["slurm"], indirect=True)
HOST_KEYS = sorted(Path("/etc/hubdash-testcluster").glob("ssh_host_*_key.pub"))


def home(user: str) -> Path:
    return Path(pwd.getpwnam(user).pw_dir)


@pytest.fixture
def marker():
    """A marker name; after the test no file of that name may exist where a payload could
    have run (the shared /tmp, and the homes of the users whose jobs run)."""
    name = marker_name()
    places = [Path("/tmp"), home("alice"), home("bob")]
    yield name
    made = [str(place / name) for place in places if (place / name).exists()]
    assert not made, f"a payload ran: {made}"


def hostile_values(marker: str) -> list[str]:
    return (
        payloads(f"/tmp/{marker}")
        + payloads(f"~/{marker}")[:6]
        + [
            "<script>window.hubdashPwned = 1</script>",
            '"><img src=x onerror="window.hubdashPwned=1">',
            "x" * 5000,
        ]
    )


def live_jobs() -> set[str]:
    return {line.split()[0] for line in cluster_jobs(JOB_PREFIX)}


def all_jobs(users=("alice", "bob")) -> set[str]:
    """Every job of this session's hubs, finished ones too (slurmctld keeps them 300 s)."""
    return {line.split()[0] for line in cluster_jobs(JOB_PREFIX, users=users, states="all")}


# --- injection --------------------------------------------------------------------------------


def test_hostile_api_options_are_refused_and_submit_nothing(hub: Hub, marker):
    before = all_jobs()
    for field in ("queue", "walltime", "nodes", "engines", "account", None):
        for value in hostile_values(marker):
            options = {"queue": "debug", field: value} if field else {value[:200]: "1"}
            with TALLY.trying(value, REFUSED):
                answer = hub.spawn("alice", "hostile", **options)
                assert answer.status_code == 400, (field, value[:60], answer.text[:300])
                message = answer.json()["message"]
                assert (f"{field}: " if field else "unknown option") in message, message
    server = hub.server("alice", "hostile") or {}
    assert not server.get("pending") and not server.get("ready")
    assert all_jobs() <= before  # nothing new (old finished jobs may leave the list)


def test_hostile_server_names_are_refused_and_submit_nothing(hub: Hub, marker):
    before = all_jobs()
    # ("." and ".." are no names: HTTP clients resolve them as path segments.)
    for name in hostile_values(marker) + ["default/../x", "-rf", "A", "a" * 300, "a.b"]:
        with TALLY.trying(name, REFUSED):
            answer = hub.api(
                "POST",
                f"/users/alice/servers/{quote(name, safe='')}",
                json={"user_options": {"queue": "debug", "walltime": "5"}},
            )
            assert answer.status_code in (400, 404), (name[:60], answer.status_code)
    assert all_jobs() <= before  # nothing new (old finished jobs may leave the list)


@pytest.mark.timeout(600)  # about 80 page loads and form posts, each with a hostile value
@slurm_only
def test_hostile_opt_urls_and_form_posts_get_the_form_back_with_the_refusal(
    page: Page, hub: Hub, marker
):
    before = all_jobs()
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    log_in(page, hub, "alice")
    values = hostile_values(marker)
    for field in ("queue", "walltime", "nodes"):
        for value in values[::2]:  # every other one: page loads are slow
            query = urlencode({"opt-queue": "debug", f"opt-{field}": value})
            with TALLY.trying(value, REFUSED):
                response = page.goto(f"{hub.url}/hub/spawn/alice/hostile?{query}")
                assert response.status == 400, (field, value[:60], response.status)
                assert "Please correct the form" in page.content()
                assert page.evaluate("window.hubdashPwned") is None
    page.goto(f"{hub.url}/hub/spawn/alice/hostile")
    action = page.locator("#spawn_form").get_attribute("action")  # carries the _xsrf token
    for field in ("queue", "walltime", "nodes", "engines"):
        for value in values[1::2]:
            form = {"queue": "debug", "walltime": "10", "nodes": "1", "engines": "0"}
            form[field] = value
            with TALLY.trying(value, REFUSED):
                response = page.request.post(f"{hub.url}{action}", multipart=form)
                assert response.status == 400, (field, value[:60], response.status)
                text = response.text()
                assert "Please correct the form" in text
                assert "<script>window.hubdashPwned" not in text
                assert '<img src=x onerror="window.hubdashPwned' not in text
    assert dialogs == []
    assert all_jobs() <= before  # nothing new (old finished jobs may leave the list)


# --- host keys --------------------------------------------------------------------------------


def fingerprint(public_key: Path) -> str:
    out = subprocess.run(
        ["ssh-keygen", "-l", "-E", "sha256", "-f", str(public_key)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return out.split()[1]


def spawn_error(hub: Hub, user: str, name: str, **options) -> str:
    """The message a spawn that must fail ends with: the API's answer, or the last event."""
    answer = hub.spawn(user, name, **options)
    if answer.status_code >= 400:
        return answer.json()["message"]
    assert answer.status_code in (201, 202), answer.text
    events = hub.progress_events(user, name, timeout=180)
    assert events[-1].get("failed"), events[-1]
    return events[-1]["message"]


def test_changed_login_host_key_stops_the_spawn_before_anything_is_sent(make_hub, tmp_path):
    impostor = tmp_path / "impostor"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(impostor)], check=True)
    known_hosts = tmp_path / "known_hosts"
    key = impostor.with_suffix(".pub").read_text().split()[:2]
    known_hosts.write_text(f"10.213.0.2 {' '.join(key)}\n")
    hub = make_hub(f"c.JobSpawner.known_hosts = {str(known_hosts)!r}\n")
    name = f"hostkey-{secrets.token_hex(3)}"
    before = all_jobs(("alice",))
    message = spawn_error(hub, "alice", name, queue="debug", walltime="5")
    assert "10.213.0.2" in message and "has changed" in message, message
    assert any(fingerprint(pub) in message for pub in HOST_KEYS), message
    assert fingerprint(impostor.with_suffix(".pub")) not in message
    # Nothing reached the host: no job, no settings file, no folder for the server. (Earlier
    # tests' finished jobs may leave slurmctld's memory meanwhile: only new ones count.)
    assert all_jobs(("alice",)) <= before
    assert not hub.folder("alice", name).exists()


# --- settings that cannot work ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        ('c.JobSpawner.queues = {"debug": "1:00:00"}', "JobSpawner.queues['debug'] must be a dict"),
        (
            'c.JobSpawner.queues = {"debug; id": {"max_walltime": "1:00:00"}}',
            "JobSpawner.queues['debug; id']: a queue name may hold only",
        ),
        ('c.JobSpawner.state_root = "../shared"', "JobSpawner.state_root must be a path"),
    ],
)
def test_malformed_settings_stop_the_hub_at_start_naming_them(setting, named, tmp_path):
    hub = hub_refused_at_start(setting, PORT_BASE + 900, tmp_path)
    assert named in hub.log_path.read_text()


@pytest.fixture
def silent_login_node():
    """A TCP port that takes connections and never answers, like a hung login node."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []
    stop = threading.Event()

    def accept() -> None:
        listener.settimeout(0.5)
        while not stop.is_set():
            try:
                held.append(listener.accept()[0])
            except TimeoutError:
                continue

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    stop.set()
    thread.join()
    for conn in held:
        conn.close()
    listener.close()


@pytest.fixture
def unusable(tmp_path, silent_login_node):
    """Settings the hub starts with but no spawn can use, and what the error must name."""
    return {
        "missing key file": (
            'c.JobSpawner.ssh_key_path = "/nonexistent/hubdash-keys/{username}"',
            ["SSH private key /nonexistent/hubdash-keys/alice", "No such file"],
        ),
        "known_hosts is a folder": (
            f"c.JobSpawner.known_hosts = {str(tmp_path)!r}",
            [f"known_hosts file {tmp_path} for 10.213.0.2", "Is a directory"],
        ),
        "login host that does not answer": (
            f'c.JobSpawner.login_host = "127.0.0.1"\nc.JobSpawner.login_port = {silent_login_node}',
            [f"127.0.0.1 port {silent_login_node}", "no SSH answer within"],
        ),
    }


@pytest.mark.parametrize(
    "case", ["missing key file", "known_hosts is a folder", "login host that does not answer"]
)
def test_unusable_access_settings_fail_the_spawn_naming_the_file_or_host(case, unusable, make_hub):
    setting, named = unusable[case]
    hub = make_hub(setting + "\n")
    message = spawn_error(hub, "alice", "", queue="debug", walltime="5")
    for part in named:
        assert part in message, message


# --- secrets ------------------------------------------------------------------------------------


def environ(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    pairs = (item.decode(errors="replace").partition("=") for item in raw if b"=" in item)
    return {key: value for key, _, value in pairs}


def descendants(pid: int) -> list[int]:
    """The process and all processes it started, from the kernel's parent links."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo.extend(children.get(current, []))
    return found


def hub_secrets(hub: Hub) -> dict[str, str]:
    """The hub's own secrets, as its processes hold them: the proxy's auth token and the
    dashboard service's API token (a service's OAuth client secret is its token)."""
    found = {"test service token": hub.token}
    assert hub.process is not None
    for pid in descendants(hub.process.pid):
        try:
            env = environ(pid)
        except OSError:
            continue
        if env.get("JUPYTERHUB_SERVICE_NAME") == "hubdash":
            found["dashboard token"] = env["JUPYTERHUB_API_TOKEN"]
        if env.get("CONFIGPROXY_AUTH_TOKEN"):
            found["proxy token"] = env["CONFIGPROXY_AUTH_TOKEN"]
    return found


def command_lines() -> dict[int, bytes]:
    """Every process's command line, on the hub, the login node and the compute nodes alike
    (they share this machine's process table)."""
    lines = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                lines[int(entry.name)] = (entry / "cmdline").read_bytes()
            except OSError:
                continue
    return lines


@pytest.mark.timeout(360)  # a spawn (180 s), every process's command line read, the job gone (60 s)
def test_no_secret_in_any_command_line_and_secret_files_are_the_users_alone(hub: Hub):
    name = "secrets"
    hub.spawn("alice", name, queue="debug", walltime="10")
    try:
        server = hub.wait_ready("alice", name, timeout=180)
        job_id = server["state"]["job"]["job_id"]
        folder = hub.folder("alice", name)
        env = json.loads((folder / "env.json").read_text())
        found = {"server token": env["JUPYTERHUB_API_TOKEN"], **hub_secrets(hub)}
        assert {"server token", "dashboard token", "proxy token"} <= set(found), set(found)
        assert all(len(value) >= 16 for value in found.values())

        for pid, line in command_lines().items():
            for what, value in found.items():
                assert value.encode() not in line, f"{what} in the command line of pid {pid}"
        details = subprocess.run(
            ["scontrol", "-dd", "show", "job", job_id.split(".")[0]],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert not [what for what, value in found.items() if value in details]

        alice = pwd.getpwnam("alice").pw_uid
        for path in (home("alice") / ".hubdash", folder.parent.parent, folder.parent, folder):
            assert stat.S_IMODE(path.stat().st_mode) & 0o077 == 0, oct(path.stat().st_mode)
        holding = [p for p in folder.rglob("*") if p.is_file() and secret_in(p, found)]
        assert holding == [folder / "env.json"], holding
        for path in holding:
            info = path.stat()
            assert (stat.S_IMODE(info.st_mode), info.st_uid) == (0o600, alice), path
        # The server's internal-TLS key and certificates: the user's alone, and the key's
        # text nowhere else (not in the job script, env.json or any command line).
        certs = sorted((folder / "certs").iterdir())
        assert [p.name for p in certs] == ["server.crt", "server.key", "trusted-ca.crt"]
        for path in [folder / "certs", *certs]:
            info = path.stat()
            mode = 0o700 if path.is_dir() else 0o600
            assert (stat.S_IMODE(info.st_mode), info.st_uid) == (mode, alice), path
        key_line = (folder / "certs" / "server.key").read_text().splitlines()[1]
        assert not [p for p in folder.glob("*") if p.is_file() and key_line in p.read_text()]
        assert not [pid for pid, line in command_lines().items() if key_line.encode() in line]
    finally:
        hub.stop("alice", name)
    hub.wait_for(lambda: job_id not in live_jobs(), timeout=60)


def secret_in(path: Path, found: dict[str, str]) -> bool:
    data = path.read_bytes()
    return any(value.encode() in data for value in found.values())


# --- isolation ----------------------------------------------------------------------------------


def token_of(hub: Hub, user: str) -> str:
    """A token of the user's own, got the way a script would: with their password."""
    answer = requests.post(
        f"{hub.url}/hub/api/users/{user}/tokens",
        json={"auth": {"username": user, "password": user}, "note": "hubdash isolation test"},
        timeout=30,
    )
    assert answer.status_code in (200, 201), answer.text
    return answer.json()["token"]


def job_owner(job_id: str) -> str:
    return subprocess.run(
        ["squeue", "-h", "-j", job_id.split(".")[0], "-o", "%u"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


# two spawns (180 s each), eleven requests and a browser page as bob, both jobs gone
@pytest.mark.timeout(600)
@slurm_only
def test_bob_cannot_read_stop_or_reach_alices_server_and_each_runs_as_himself(hub: Hub, page: Page):
    hub.spawn("alice", "private", queue="debug", walltime="10")
    hub.spawn("bob", "own", queue="batch", walltime="10")
    try:
        alice_server = hub.wait_ready("alice", "private", timeout=180)
        bob_server = hub.wait_ready("bob", "own", timeout=180)
        bob = {"Authorization": f"token {token_of(hub, 'bob')}"}

        def as_bob(method: str, path: str, **kwargs) -> requests.Response:
            return requests.request(method, hub.url + path, headers=bob, timeout=30, **kwargs)

        attempts = [
            ("GET", "/hub/api/users/alice"),
            ("GET", "/hub/api/users/alice/servers/private/progress"),
            ("DELETE", "/hub/api/users/alice/servers/private"),
            ("POST", "/hub/api/users/alice/servers/other"),
            ("POST", "/hub/api/users/alice/tokens"),
            ("GET", f"{alice_server['url']}api/status"),
            ("GET", f"{alice_server['url']}api/contents"),
            ("GET", f"{DASH}status/alice/private"),
            ("GET", f"{DASH}api/users/alice/servers/private"),
            ("GET", f"{DASH}api/users/alice/servers/private/events"),
            ("POST", f"{DASH}api/users/alice/servers/private/stop"),
        ]
        for method, path in attempts:
            with TALLY.trying(f"bob: {method} {path}", REFUSED):
                answer = as_bob(method, path, allow_redirects=False)
                assert answer.status_code in (403, 404), (method, path, answer.status_code)
        # The 403s are about whose servers: bob's own answer him, with the same token.
        assert as_bob("GET", f"{bob_server['url']}api/status").status_code == 200
        assert as_bob("GET", "/hub/api/users/bob").status_code == 200
        assert as_bob("GET", f"{DASH}api/users/bob/servers/own").status_code == 200

        # In the browser, logged in as bob: alice's JupyterLab does not open.
        log_in(page, hub, "bob")
        response = page.goto(f"{hub.url}{alice_server['url']}lab")
        assert response.status == 403 or "/user/alice/" not in page.url, (response.status, page.url)
        assert page.locator(".jp-LabShell").count() == 0

        # Alice's server lived through all of it, and each job runs as its own user.
        assert (hub.server("alice", "private") or {}).get("ready")
        assert job_owner(alice_server["state"]["job"]["job_id"]) == "alice"
        assert job_owner(bob_server["state"]["job"]["job_id"]) == "bob"
        for user, name in (("alice", "private"), ("bob", "own")):
            env_file = hub.folder(user, name) / "env.json"
            assert env_file.stat().st_uid == pwd.getpwnam(user).pw_uid
    finally:
        hub.stop("alice", "private")
        hub.stop("bob", "own")
    jobs = {alice_server["state"]["job"]["job_id"], bob_server["state"]["job"]["job_id"]}
    hub.wait_for(lambda: not jobs & live_jobs(), timeout=60)
