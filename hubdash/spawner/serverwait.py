"""Waiting for a submitted job's server: queued, started, listening where the job says (on one of
its own nodes), engines up, answering through the tunnel. Part of JobSpawner."""

from __future__ import annotations

import asyncio
import ipaddress
import time

from hubdash.cluster.cluster import Cluster
from hubdash.job.contract import (
    CONNECTION_FILE,
    CONNECTION_FILE_LIMIT,
    JOB_LOG,
    ServerAddress,
)
from hubdash.schedulers.base import (
    JobInfo,
    JobState,
)
from hubdash.spawner.enginestatus import EngineStatus, read_engine_status, watch_engines
from hubdash.spawner.spawnerror import SpawnError
from hubdash.spawner.tunnel import Tunnel
from hubdash.transport.base import FileTooLarge, Transport, TransportError
from hubdash.walltime import format_walltime

SERVER_PORTS = range(1024, 65536)  # unprivileged: a job cannot listen below 1024
# Between probes of a starting server through its tunnel. A probe of a server not yet
# listening costs one refused connection on the node; every 0.5 s added 0.25 s p50 to
# ready (bench/README.md, spawn overhead).
ANSWER_PROBE_INTERVAL = 0.1


class ServerWait:
    """JobSpawner's wait for its server (a mixin: it uses the spawner's cluster, state and log)."""

    async def _wait_for_server_address(
        self, cluster: Cluster, transport: Transport
    ) -> tuple[str, int]:
        """Wait for the job to start and its server to say where it listens.

        Queue details come from the cluster's monitor (its own slow, shared queries);
        the start itself is learned from the job's connection file appearing, watched
        over the SSH connection that is already open, which costs the scheduler nothing.
        """
        loop = asyncio.get_running_loop()
        queue_deadline = loop.time() + self.queue_timeout
        startup_deadline: float | None = None
        seen_version = -1
        log_seen = False
        path = f"{self.state_dir}/{CONNECTION_FILE}"
        while True:
            view = cluster.monitor.get(self.job_id)
            if view is not None and view.version != seen_version:
                seen_version = view.version
                info = view.info or JobInfo(self.job_id, JobState.PENDING)
                if info.state.is_finished:
                    raise await self._job_ended_error(transport, info)
                if info.state is JobState.RUNNING and startup_deadline is None:
                    startup_deadline = loop.time() + self.startup_timeout
                    await self._note_running(info.nodes)
                elif info.state is JobState.PENDING:
                    await self._note_pending(info)
            address = await self._read_connection_file(cluster, transport, path)
            if address is not None:
                if startup_deadline is None:
                    await self._note_running([address[0]])
                return address
            if not log_seen and await self._exists(transport, f"{self.state_dir}/{JOB_LOG}"):
                # The scheduler opened the job's output file: the job has started. Ask
                # now rather than at the queued pace, so a job that dies at once is seen.
                log_seen = True
                await cluster.monitor.refresh(self.job_id, timeout=self.command_timeout)
                continue
            now = loop.time()
            if startup_deadline is None and now > queue_deadline:
                raise SpawnError(
                    f"Job {self.job_id} waited in the queue longer than the limit of "
                    f"{format_walltime(self.queue_timeout)} (H:MM:SS) and was cancelled."
                )
            if startup_deadline is not None and now > startup_deadline:
                raise SpawnError(
                    f"Job {self.job_id} runs, but its server did not start within "
                    f"{self.startup_timeout} s and the job was cancelled.",
                    await self._log_tail(transport),
                )
            # Wakes at once when the monitor learns something, else looks again in a second.
            await cluster.monitor.wait_for_change(self.job_id, timeout=1.0, since=seen_version)

    async def _note_pending(self, info: JobInfo) -> None:
        self.job.reason = info.reason
        self.job.position = info.position
        self.job.estimated_start = (
            info.estimated_start.isoformat() if info.estimated_start else None
        )
        reason = f" ({info.reason})" if info.reason else ""
        where = f", position {info.position}" if info.position else ""
        await self._emit(
            "pending",
            f"Job {self.job_id} is queued in {info.queue or self.job.queue}{reason}{where}",
            state="pending",
            reason=info.reason,
            position=info.position,
            estimated_start=self.job.estimated_start,
        )

    async def _note_running(self, nodes: list[str]) -> None:
        self.job.state = JobState.RUNNING.value
        self.job.started_at = time.time()
        self.job.nodes = list(nodes)
        self.job.node = nodes[0] if nodes else ""
        self.job.reason, self.job.position = "", None
        self._save_state()
        await self._emit(
            "running",
            f"Job {self.job_id} is running on {', '.join(nodes) or 'its node'}",
            state="running",
            node=self.job.node,
            nodes=list(nodes),
        )

    async def _exists(self, transport: Transport, path: str) -> bool:
        try:
            return await transport.exists(path)
        except TransportError as exc:
            self.log.debug("Could not look for %s yet: %s", path, exc)
            return False

    async def _read_connection_file(
        self, cluster: Cluster, transport: Transport, path: str
    ) -> tuple[str, int] | None:
        """Where this job's server listens, once its connection file says so: the
        scheduler's name of one of the job's nodes, and a port. None while there is no file
        of this job; SpawnError when it names anything else (see _checked_address)."""
        if not await self._exists(transport, path):  # one stat; a read opens a session
            return None
        try:
            raw = await transport.read_file(
                path, max_bytes=CONNECTION_FILE_LIMIT, what="a connection file"
            )
            address = ServerAddress.decode(raw)
        except FileNotFoundError:
            return None
        except FileTooLarge as exc:
            raise SpawnError(
                f"The connection file of job {self.job_id} is too large to read: {exc}",
                await self._log_tail(transport),
            ) from None
        except (ValueError, TransportError) as exc:
            self.log.debug("Connection file of %s not readable yet: %s", self._log_name, exc)
            return None
        if not cluster.adapter.same_job(address.job_id, self.job_id):
            return None  # an earlier job's: ours has not written it yet
        return await self._checked_address(cluster, address.host, address.port)

    async def _checked_address(
        self, cluster: Cluster, host: object, port: object
    ) -> tuple[str, int] | None:
        """The tunnel's destination from what the job wrote, only if it is the job's own.

        The file is the user's to write: taken as it is, it would point the hub's tunnel
        (and the user's browser session) at the login node, another user's node or a
        privileged port. The node must be one the scheduler allocated to this job, and the
        tunnel goes to the scheduler's name of it, never to the file's.
        """
        where = f"{host}:{port}"[:200]
        refusing = "refusing to tunnel there."
        if isinstance(port, bool) or not isinstance(port, int) or port not in SERVER_PORTS:
            raise SpawnError(
                f"Job {self.job_id} says its server listens on {where}, but {port!r:.40} is "
                f"not an unprivileged port (1024-65535); {refusing}"
            )
        nodes = await self._job_nodes(cluster)
        if not nodes:
            # The scheduler cannot tell yet (a failing or slow status command, a job not yet
            # seen running): no answer is no route; look again, within the start's limits.
            self.log.info(
                "Job %s wrote where its server listens; waiting for the scheduler to name "
                "its nodes before tunnelling there",
                self.job_id,
            )
            return None
        node = _job_node(host, nodes) if isinstance(host, str) else None
        if node is None:
            known = ", ".join(nodes)
            raise SpawnError(
                f"Job {self.job_id} says its server listens on {where}, which is not one of "
                f"the job's nodes ({known}); {refusing}"
            )
        return node, port

    async def _job_nodes(self, cluster: Cluster) -> list[str]:
        """The job's nodes as the scheduler reports them; looked up once more if the
        monitor has none yet (a job that started between two of its rounds)."""
        view = cluster.monitor.get(self.job_id)
        if view is None or view.info is None or not view.info.nodes:
            view = await cluster.monitor.refresh(self.job_id, timeout=self.command_timeout)
        return list(view.info.nodes) if view is not None and view.info is not None else []

    async def _wait_for_answer(
        self, cluster: Cluster, transport: Transport, tunnel: Tunnel
    ) -> None:
        """Until the server answers HTTP through the tunnel, watching that its job lives.

        JupyterHub would wait too, but only we can tell a server that died (and say why,
        with its output) from one that is slow to start.
        """
        deadline = time.monotonic() + self.startup_timeout
        checked = time.monotonic()
        while await tunnel.probe(timeout=2) is None:
            if time.monotonic() - checked > self.status_interval:
                # The server is not up yet: ask whether its job still lives (one cheap
                # lookup every status_interval, for the few seconds a server takes).
                checked = time.monotonic()
                view = await cluster.monitor.refresh(self.job_id, timeout=self.command_timeout)
                if view is not None and view.finished and view.info is not None:
                    raise await self._job_ended_error(transport, view.info)
            if time.monotonic() > deadline:
                raise SpawnError(
                    f"Job {self.job_id} runs, but its server did not answer within "
                    f"{self.startup_timeout} s and the job was cancelled.",
                    await self._log_tail(transport),
                )
            await asyncio.sleep(ANSWER_PROBE_INTERVAL)

    async def _wait_for_engines(self, transport: Transport) -> None:
        """Report the engines as they register, until all are up or engines_timeout passes."""
        status = None
        async for status in watch_engines(
            transport,
            self.state_dir,
            self.job_id,
            self.engines_timeout,
            self.status_interval / 2,
            requested=self.job.engines,
            same_job=self.cluster_config.adapter().same_job,
        ):
            self._note_engines(status)
            await self._emit("engines", status.text(), state="running", **status.details())
        if status is None or not status.settled:
            up = status.up if status else 0
            await self._emit(
                "engines",
                f"{up} of {self.job.engines} parallel engines up after "
                f"{self.engines_timeout:.0f} s; opening the notebook, the others may still join",
                state="running",
                engines_up=up,
                engines_requested=self.job.engines,
                engines_state=status.state if status else "starting",
            )

    def _note_engines(self, status: EngineStatus) -> None:
        self.job.engines_up, self.job.engines_state = status.up, status.state

    async def _refresh_engines(self, transport: Transport) -> None:
        """The engine count for the dashboard (get_state), read again while the job runs."""
        status = await read_engine_status(
            transport,
            self.state_dir,
            self.job_id,
            requested=self.job.engines,
            same_job=self.cluster_config.adapter().same_job,
        )
        if status is not None:
            self._note_engines(status)


def _job_node(host: str, nodes: list[str]) -> str | None:
    """The scheduler's name of the node `host` names, if it is one of `nodes`: the same
    name, or the same first DNS label (a node's FQDN and its short name). None for any
    other name or for an address.

    >>> _job_node("cn1", ["cn1", "cn2"]), _job_node("CN2.cluster.example.org", ["cn1", "cn2"])
    ('cn1', 'cn2')
    >>> _job_node("cn1", ["cn1.cluster.example.org"])
    'cn1.cluster.example.org'
    >>> _job_node("10.213.0.2", ["cn1"]), _job_node("login", ["cn1"]), _job_node("", ["cn1"])
    (None, None, None)
    """
    wanted = _first_label(host)
    if not wanted:
        return None
    for node in nodes:
        if _first_label(node) == wanted:
            return node
    return None


def _first_label(name: str) -> str:
    name = name.strip().rstrip(".").lower()
    try:
        ipaddress.ip_address(name)
        return name  # an address is whole, never "10" of 10.213.0.2
    except ValueError:
        return name.split(".", 1)[0]
