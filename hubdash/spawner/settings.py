"""JobSpawner's settings: every admin choice as a traitlet with its help and its check.

Only declarations and validation live here; what the settings do is jobspawner.py's.
"""

from __future__ import annotations

import re
from typing import Any

from traitlets import (
    Bool,
    Dict,
    Float,
    Integer,
    List,
    TraitError,
    Unicode,
    Union,
    default,
    validate,
)

from hubdash.schedulers import SCHEDULERS
from hubdash.spawner.clusterpaths import validate_remote_python
from hubdash.spawner.clustersettings import ClusterSettings
from hubdash.spawner.engineplan import LauncherError, launcher_template
from hubdash.spawner.envsettings import EnvironmentSettings
from hubdash.spawner.extrasettings import ExtraSettings
from hubdash.spawner.hubdatabase import HubDatabaseSettings
from hubdash.spawner.idlecull import IdleSettings
from hubdash.spawner.options import ConfigError, parse_queue_table
from hubdash.spawner.pbssettings import PBSSettings
from hubdash.spawner.restartsettings import RestartSettings
from hubdash.spawner.sgesettings import GridEngineSettings


class JobSpawnerSettings(
    ClusterSettings,
    RestartSettings,
    HubDatabaseSettings,
    IdleSettings,
    EnvironmentSettings,
    ExtraSettings,
    GridEngineSettings,
    PBSSettings,
):
    """The settings of JobSpawner (`c.JobSpawner.<name>` in jupyterhub_config.py).

    A mixin: JobSpawner(JobSpawnerSettings, Spawner); defaults it gives for the hub's
    own Spawner settings (start_timeout, env_keep ...) take effect there.
    """

    # --- where the cluster is and how to reach it -------------------------------------------

    scheduler = Unicode(
        "slurm",
        help="""The cluster's batch system: 'slurm' (sbatch/squeue/scancel), 'pbs'
        (qsub/qstat/qdel; Torque, PBS Pro/OpenPBS, or Slurm's Torque wrappers) or 'sge'
        (Grid Engine: Son of Grid Engine 8.1, Sun Grid Engine 6.2; see sge_* settings).""",
    ).tag(config=True)

    # pbs_flavor and pbs_resource_spelling: pbssettings.py.

    transport = Unicode(
        "ssh",
        help="""How the hub reaches the cluster: 'ssh' to the login node as each user
        (asyncssh), or 'local' when the hub runs on the login node itself and runs
        commands through `local_command_prefix`.""",
    ).tag(config=True)

    login_host = Unicode(
        "",
        help="""The login node that jobs are submitted from, e.g. 'login.hpc.example.org'
        or an address. Required with transport = 'ssh'.""",
    ).tag(config=True)

    login_port = Integer(22, help="SSH port of the login node.").tag(config=True)

    known_hosts = Unicode(
        "/etc/hubdash/known_hosts",
        help="""An OpenSSH known_hosts file holding the login node's host key(s). Keys are
        always checked: an unknown or changed key stops the spawn with a message naming
        the host and the key's fingerprint.""",
    ).tag(config=True)

    ssh_key_path = Unicode(
        "/etc/hubdash/keys/{username}",
        help="""Path of each user's private SSH key on the hub; '{username}' is replaced by
        the hub user's name. Keep these files readable by the hub's account only.""",
    ).tag(config=True)

    ssh_cert_path = Unicode(
        "",
        help="""Optional path of each user's SSH certificate ('{username}' is replaced), for
        sites that sign short-lived user certificates. Empty: plain keys.""",
    ).tag(config=True)

    remote_username = Unicode(
        "{username}",
        help="""The cluster account a hub user logs in as; '{username}' is replaced by the
        hub user's name, e.g. '{username}' or 'hpc_{username}'.""",
    ).tag(config=True)

    local_command_prefix = List(
        Unicode(),
        ["sudo", "-n", "-u", "{username}", "--"],
        help="""With transport = 'local': the command prefix that runs a command as the
        user; items may hold '{username}'.""",
    ).tag(config=True)

    max_sessions = Integer(
        8,
        help="""At most this many SSH channels at once on one user's connection. Keep it
        below the login sshd's MaxSessions (OpenSSH default 10).""",
    ).tag(config=True)

    ssh_max_concurrent_connects = Integer(
        4,
        help="""At most this many SSH connections being set up at once to the login node,
        for all users together (the hub keeps one connection per user and reuses it). The
        forward keeper (forward_keeper = 'process') holds a second connection per user, with
        half this budget (at least 1), so up to 1.5 times this many are set up at once from
        the hub's machine. sshd starts refusing unauthenticated connections beyond its
        MaxStartups (OpenSSH default 10:30:100, i.e. from 10 on), and a busy sshd counts a
        login as done some time after it is: keep 1.5 times this well below that first
        number, with room for users' own logins. 4: a class of 100 starting at once had
        no connection refused (bench/README.md, section 8).""",
    ).tag(config=True)

    ssh_connects_per_second = Float(
        10.0,
        help="""At most this many new SSH connections a second to the login node, for all
        users together (and as many again from the forward keeper), so a burst of spawns
        reaches sshd spread out, e.g. 10. It paces a class starting at once: 100 users'
        connections take 10 s at 10 a second.""",
    ).tag(config=True)

    ssh_key_from_auth_state = Unicode(
        "",
        help="""Take each user's private SSH key from the authenticator's auth_state
        instead of ssh_key_path: the name of the auth_state entry holding the key's
        OpenSSH or PEM text, e.g. 'ssh_private_key'. Needs
        Authenticator.enable_auth_state. The key stays in memory; it is never written
        to disk. Empty: use ssh_key_path.""",
    ).tag(config=True)

    ssh_cert_from_auth_state = Unicode(
        "",
        help="""With ssh_key_from_auth_state: the auth_state entry holding the user's SSH
        certificate (OpenSSH text), e.g. 'ssh_certificate', for sites that sign
        short-lived certificates at login. Empty: a plain key.""",
    ).tag(config=True)

    ssh_idle_timeout = Float(
        600.0,
        help="""Seconds after which a user's SSH connection to the login node is closed when
        nothing uses it: no server of theirs (its forwards), no command, no file transfer.
        Their sshd process on the login node ends with it; the next command connects
        again. Keep it well above monitor_interval: the job monitor's status queries run
        over the connection of a user with a queued or running job. 0: never close.""",
    ).tag(config=True)

    @validate("ssh_idle_timeout")
    def _validate_ssh_idle_timeout(self, proposal: dict) -> float:
        if proposal["value"] < 0:
            raise TraitError(
                "JobSpawner.ssh_idle_timeout must be 0 (never) or more seconds, "
                f"not {proposal['value']!r}"
            )
        return proposal["value"]

    @validate("ssh_max_concurrent_connects", "ssh_connects_per_second")
    def _validate_connect_limits(self, proposal: dict) -> Any:
        if proposal["value"] <= 0:
            raise TraitError(
                f"JobSpawner.{proposal['trait'].name} must be above 0, not {proposal['value']!r}"
            )
        return proposal["value"]

    scheduler_bin_dir = Unicode(
        "",
        help="""Folder on the login node holding the scheduler's commands (sbatch, squeue,
        qsub, qstat ...), e.g. '/opt/slurm/bin', for sites where they are not on the
        login shell's PATH. Empty: found on PATH.""",
    ).tag(config=True)

    @validate("scheduler_bin_dir")
    def _validate_scheduler_bin_dir(self, proposal: dict) -> str:
        value = proposal["value"]
        if value and not re.match(r"^/[A-Za-z0-9_./+-]*$", value):
            raise TraitError(
                "JobSpawner.scheduler_bin_dir must be an absolute path of letters, digits "
                f"and _ . / + - ; got {value!r}"
            )
        return value

    command_timeout = Float(
        30.0,
        help="""Seconds a scheduler command (sbatch, squeue, qstat ...) may take before it
        counts as failed.""",
    ).tag(config=True)

    # --- the job monitor (one per cluster; see spawner/monitor.py) ---------------------------

    monitor_interval = Float(
        30.0,
        help="""Seconds between the job monitor's status lookups of a job that waits in the
        queue or whose server is up, e.g. 30. A queued job's start is seen from its
        connection file appearing, not from these lookups.""",
    ).tag(config=True)

    monitor_starting_interval = Float(
        5.0,
        help="""Seconds between status lookups of a job that runs while its server starts
        (so that a job dying then is seen at once), e.g. 5.""",
    ).tag(config=True)

    monitor_detail_interval = Float(
        60.0,
        help="""Seconds between scans for the queue position of pending jobs, per queue.
        On Slurm each scan reads every pending job of that partition (about 2 ms of
        slurmctld time per 1,000 queued jobs). 0: never ask for positions.""",
    ).tag(config=True)

    monitor_unknown_grace = Float(
        300.0,
        help="""Seconds of failing status queries (scheduler busy, login node down) before
        a job shows as 'unknown'. The job keeps its last known state all along: only a
        definitive answer from the scheduler ends a server.""",
    ).tag(config=True)

    monitor_max_lookups_per_minute = Integer(
        60,
        help="""Status lookups a minute for all jobs of the cluster together; a lookup is
        one scheduler command, about one job or about all jobs of one user. With more
        jobs than that allows, each is looked up less often and the scheduler's load
        stays flat. On Slurm a lookup costs slurmctld about 0.14 ms.""",
    ).tag(config=True)

    @validate(
        "monitor_interval",
        "monitor_starting_interval",
        "monitor_unknown_grace",
        "monitor_max_lookups_per_minute",
    )
    def _validate_monitor_positive(self, proposal: dict) -> Any:
        if proposal["value"] <= 0:
            raise TraitError(
                f"JobSpawner.{proposal['trait'].name} must be above 0, not {proposal['value']!r}"
            )
        return proposal["value"]

    @validate("monitor_detail_interval")
    def _validate_monitor_detail_interval(self, proposal: dict) -> float:
        if proposal["value"] < 0:
            raise TraitError(
                f"JobSpawner.monitor_detail_interval must be 0 (never) or more seconds, "
                f"not {proposal['value']!r}"
            )
        return proposal["value"]

    # --- how the server reaches the hub --------------------------------------------------------

    forward_hub_api = Bool(
        True,
        help="""Open a remote forward on the login node to the hub's API, for clusters whose
        compute nodes cannot reach the hub. The login sshd needs 'GatewayPorts
        clientspecified'. Set False where compute nodes reach `hub_connect_url` directly.""",
    ).tag(config=True)

    tunnel_spare_connections = Integer(
        1,
        min=0,
        max=16,
        help="""Connections to the notebook server kept open through the tunnel ahead of
        the browser, so a new browser connection does not wait for an SSH channel to open
        (about 0.5 ms each). Opened only once the server has answered; one is replaced as
        it is used. 0 opens every channel on demand, as `ssh -L` does.""",
    ).tag(config=True)

    hub_address_for_jobs = Unicode(
        "",
        help="""The login node's address as the compute nodes see it, used with
        forward_hub_api: jobs reach the hub forward there. Empty: login_host.""",
    ).tag(config=True)

    hub_forward_listen_address = Unicode(
        "",
        help="""Where the hub forward listens on the login node (sshd needs 'GatewayPorts
        clientspecified'). Empty: hub_address_for_jobs (or login_host), the one address
        compute nodes use, so the forward is not on the login node's public face.
        '0.0.0.0' listens on every interface and is logged as a warning at hub start.""",
    ).tag(config=True)

    # --- the job ----------------------------------------------------------------------------

    queues = Dict(
        {"debug": {"max_walltime": "1:00:00", "max_nodes": 1}},
        help="""The queues (partitions) the form offers, in order, each with its limits:
        {'debug': {'description': 'Quick tests', 'max_walltime': '1:00:00',
        'default_walltime': '0:30:00', 'max_nodes': 2, 'default_nodes': 1,
        'max_engines': 16, 'default_engines': 0, 'engines_per_node': 8,
        'users': [], 'groups': []}}. 'users'/'groups' restrict a queue to those users or
        group members; both empty means everyone. With extra fields on (form_extras):
        'max_memory'/'default_memory' per node ('256G', '4096M' or MB as a number),
        'max_gpus'/'default_gpus' per node (queues without 'max_gpus' have none), and
        'accounts', the accounts that may be charged in this queue.""",
    ).tag(config=True)

    queue_info_ttl = Float(
        30.0,
        help="""Seconds the form's live queue figures (free nodes, pending jobs) and start
        estimates are reused before the scheduler is asked again. Every user's form shares
        the figures of one cluster; estimates are kept per user and choice.""",
    ).tag(config=True)

    @validate("queue_info_ttl")
    def _validate_queue_info_ttl(self, proposal: dict) -> float:
        if proposal["value"] < 1:
            raise TraitError(
                f"JobSpawner.queue_info_ttl is {proposal['value']!r}; use at least 1 second "
                "so that page loads do not each query the scheduler"
            )
        return proposal["value"]

    remote_python = Unicode(
        "python3",
        help="""The Python interpreter on the compute nodes that has hubdash, jupyterhub and
        jupyter-server installed, e.g. '/opt/hubdash/venv/bin/python': a path (absolute, or
        relative to the user's home) or a command on the nodes' PATH, of letters, digits and
        _ . / + - (not starting with '-').""",
    ).tag(config=True)
    _validate_remote_python = validate_remote_python

    job_prologue = List(
        Unicode(),
        help="""Shell lines placed in the job script before the server starts, written by
        the admin (e.g. 'module load python/3.11'). Never built from user input.""",
    ).tag(config=True)

    job_name_prefix = Unicode(
        "jupyterhub",
        help="""Start of every job name; the name is
        '<prefix>-<hub_id>-<cluster user>-<server>', the same for every start of one
        server, so admins and users can find it in squeue or qstat.""",
    ).tag(config=True)

    @validate("job_name_prefix")
    def _validate_job_name_prefix(self, proposal: dict) -> str:
        if not re.match(r"^[A-Za-z][A-Za-z0-9_.-]{0,31}$", proposal["value"]):
            raise TraitError(
                "JobSpawner.job_name_prefix may hold only letters, digits and _ . - "
                f"(starting with a letter, at most 32): {proposal['value']!r}"
            )
        return proposal["value"]

    state_root = Unicode(
        ".hubdash/servers",
        help="""Folder, relative to the user's home on the cluster, holding a folder per
        hub (hub_id) with one sub-folder per server (job script, 0600 settings file,
        connection file, job log).""",
    ).tag(config=True)

    @validate("state_root")
    def _validate_state_root(self, proposal: dict) -> str:
        value = proposal["value"]
        parts = value.rstrip("/").split("/")
        # It reaches directives and scheduler arguments, which take no shell characters.
        if not re.fullmatch(r"[A-Za-z0-9_.+-]+(/[A-Za-z0-9_.+-]+)*/?", value) or ".." in parts:
            raise TraitError(
                "JobSpawner.state_root must be a path relative to the user's home, of "
                f"letters, digits and _ . + - separated by '/', without '..'; got {value!r}"
            )
        return value

    queue_timeout = Integer(
        4 * 3600,
        help="""Seconds a job may wait in the queue before the spawn gives up and cancels
        it. Independent of the server's own start-up time (startup_timeout).""",
    ).tag(config=True)

    startup_timeout = Integer(
        300,
        help="""Seconds from the job starting to its server telling the hub where it listens.""",
    ).tag(config=True)

    engine_launcher = Union(
        [Unicode(), List(Unicode())],
        help="""How a job starts its IPython-parallel engines across its nodes: 'srun' (Slurm,
        and PBS on Slurm's wrappers), 'pbsdsh' (Torque), 'pbs_tmrsh' (PBS Pro, OpenPBS),
        'qrsh' (Grid Engine), 'mpiexec' (Open MPI), or your own
        command as a list, to which the engine's command is appended, e.g.
        ['mpiexec', '-n', '{engines}', '-ppn', '{per_node}'] for MPICH or Intel MPI.
        Placeholders: {engines} (total), {nodes} (nodes that run engines), {per_node}
        (engines per node, at most the queue's engines_per_node), {python} (remote_python).
        Default: 'srun' with scheduler 'slurm' or pbs_flavor 'slurm-torque', 'qrsh' (Grid
        Engine's `qrsh -inherit` to each host of $PE_HOSTFILE) with 'sge', 'pbs_tmrsh'
        (PBS Pro's `pbs_tmrsh` to each host of $PBS_NODEFILE) with 'pbspro', else 'pbsdsh'.
        See docs/engines.md.""",
    ).tag(config=True)

    @default("engine_launcher")
    def _default_engine_launcher(self) -> str:
        if self.scheduler == "sge":
            return "qrsh"
        if self.scheduler == "pbs" and self.pbs_flavor == "pbspro":
            return "pbs_tmrsh"
        on_slurm = self.scheduler == "slurm" or self.pbs_flavor == "slurm-torque"
        return "srun" if on_slurm else "pbsdsh"

    @validate("engine_launcher")
    def _validate_engine_launcher(self, proposal: dict) -> Any:
        try:
            launcher_template(proposal["value"])
        except LauncherError as exc:
            raise TraitError(str(exc)) from None
        return proposal["value"]

    engines_timeout = Float(
        120.0,
        help="""Seconds a start waits for its parallel engines after the server runs. Then
        the user gets the notebook anyway (engines that come later still join); the
        progress page says how many were up.""",
    ).tag(config=True)

    status_interval = Float(
        2.0,
        help="""Seconds between looks at files the job writes on the cluster (engine
        status) and at the job monitor's view while a started job's server comes up.
        Scheduler queries are the monitor's (monitor_* settings).""",
    ).tag(config=True)

    # JupyterHub's own start timeout would cut long queue waits short: the spawner keeps
    # its own limits (queue_timeout + startup_timeout) and cancels the job itself.
    @default("start_timeout")
    def _default_start_timeout(self) -> int:
        return self.queue_timeout + self.startup_timeout + int(self.engines_timeout) + 120

    # The hub's own PATH or virtualenv mean nothing on a compute node.
    @default("env_keep")
    def _default_env_keep(self) -> list[str]:
        return ["LANG", "LC_ALL"]

    @validate("scheduler")
    def _validate_scheduler(self, proposal: dict) -> str:
        if proposal["value"] not in SCHEDULERS:
            raise TraitError(
                f"JobSpawner.scheduler is {proposal['value']!r}; choose one of {SCHEDULERS}"
            )
        return proposal["value"]

    @validate("transport")
    def _validate_transport(self, proposal: dict) -> str:
        if proposal["value"] not in ("ssh", "local"):
            raise TraitError(
                f"JobSpawner.transport is {proposal['value']!r}; choose 'ssh' or 'local'"
            )
        return proposal["value"]

    @validate("queues")
    def _validate_queues(self, proposal: dict) -> dict:
        try:
            parse_queue_table(proposal["value"])
        except ConfigError as exc:
            raise TraitError(str(exc)) from None
        return proposal["value"]
