"""The hub reads the job's engines.json: parsing, which job it belongs to (the scheduler
adapter's rule), and the wait."""

import json

import pytest

from hubdash.schedulers.pbs import PBSAdapter
from hubdash.schedulers.slurm import SlurmAdapter
from hubdash.serverstate import JobRecord
from hubdash.spawner.enginestatus import EngineStatus, read_engine_status, watch_engines
from hubdash.spawner.jobspawner import JobSpawner
from hubdash.transport.base import TransportError

STATE_DIR = ".hubdash/servers/hub/default"
PATH = f"{STATE_DIR}/engines.json"
SAME_JOB = SlurmAdapter().same_job


def status(up: int, state: str = "starting", job_id: str = "7", requested: int = 4) -> bytes:
    return json.dumps(
        {"job_id": job_id, "requested": requested, "up": up, "state": state, "message": ""}
    ).encode()


class FileSequence:
    """A transport whose engines.json changes on every read (the last content then stays)."""

    def __init__(self, *contents):
        self.contents = list(contents)
        self.reads = 0

    async def read_file(self, path: str, *, max_bytes: int, what: str = "a file") -> bytes:
        assert path == PATH
        self.reads += 1
        content = self.contents[0] if len(self.contents) == 1 else self.contents.pop(0)
        if isinstance(content, Exception):
            raise content
        return content


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("[]", "not a JSON object"),
        ('{"requested": 4, "state": "running"}', "up=None"),
        ('{"requested": -1, "up": 0, "state": "running"}', "requested=-1"),
        ('{"requested": true, "up": 0, "state": "running"}', "requested=True"),
        ('{"requested": 4, "up": 0, "state": "dancing"}', "state 'dancing'"),
    ],
)
def test_status_that_is_not_one_is_refused(text, fragment):
    with pytest.raises(ValueError, match=fragment):
        EngineStatus.decode(text)


def test_half_written_status_is_refused():
    with pytest.raises(ValueError):
        EngineStatus.decode('{"requested": 4, "up"')


async def test_status_of_an_earlier_job_is_not_this_jobs():
    transport = FileSequence(status(4, job_id="6"))
    assert await read_engine_status(transport, STATE_DIR, "7", same_job=SAME_JOB) is None


async def test_pbs_job_sees_its_id_without_the_servers_name():
    found = await read_engine_status(
        FileSequence(status(2)), STATE_DIR, "7.pbs.example.org", same_job=PBSAdapter().same_job
    )
    assert found == EngineStatus.decode(status(2))
    assert isinstance(found, EngineStatus) and found.text().endswith("2 of 4 up")


@pytest.mark.parametrize(
    "error", [FileNotFoundError(2, "missing"), TransportError("connection lost"), b"{"]
)
async def test_missing_unreadable_or_garbled_status_reads_as_none(error):
    assert await read_engine_status(FileSequence(error), STATE_DIR, "7", same_job=SAME_JOB) is None


def watch(transport: FileSequence, timeout: float):
    return watch_engines(transport, STATE_DIR, "7", timeout, interval=0, same_job=SAME_JOB)


async def test_watch_reports_each_change_once_until_all_engines_are_up():
    transport = FileSequence(
        FileNotFoundError(2, "not yet"),
        status(0),
        status(0),
        status(3),
        status(4, "running"),
        status(4, "running"),
    )
    seen = [s.up async for s in watch(transport, 60)]
    assert seen == [0, 3, 4]
    assert transport.reads == 5  # stops at the first settled status


async def test_watch_ends_on_failure():
    transport = FileSequence(status(1), status(1, "failed"), status(2, "starting"))
    seen = [s.state async for s in watch(transport, 60)]
    assert seen == ["starting", "failed"]


async def test_watch_gives_up_after_its_timeout():
    transport = FileSequence(status(1))
    seen = [s.up async for s in watch(transport, 0)]
    assert seen == [1]


def test_progress_text_says_up_of_requested():
    assert EngineStatus(4, 2, "starting").text() == "Parallel engines starting: 2 of 4 up"
    assert EngineStatus(4, 4, "running").text() == "All 4 parallel engines are up"
    failed = EngineStatus(4, 1, "failed", message="the engine launcher srun exited with code 1")
    assert "1 of 4 up; the engine launcher srun exited" in failed.text()


def _spawner() -> JobSpawner:
    spawner = JobSpawner(engines_timeout=0)
    spawner.job = JobRecord(job_id="7", engines=4)
    spawner._progress.reset()
    return spawner


async def test_spawn_progress_carries_engines_up_and_requested():
    spawner = _spawner()
    spawner.status_interval = 0
    spawner.engines_timeout = 60
    await spawner._wait_for_engines(FileSequence(status(1), status(4, "running")))
    events = [e["hubdash"] for e in spawner._progress._events]
    assert [(e["phase"], e["engines_up"], e["engines_requested"]) for e in events] == [
        ("engines", 1, 4),
        ("engines", 4, 4),
    ]
    assert (spawner.job.engines_up, spawner.job.engines_state) == (4, "running")
    assert spawner.get_state()["job"]["engines_up"] == 4  # what the dashboard reads


async def test_spawn_goes_on_when_engines_are_late_and_says_so():
    spawner = _spawner()
    await spawner._wait_for_engines(FileSequence(FileNotFoundError(2, "not yet")))
    last = spawner._progress._events[-1]
    assert last["hubdash"]["engines_up"] == 0
    assert "0 of 4 parallel engines up after 0 s" in last["message"]


def test_bad_launcher_setting_stops_the_hub_with_the_settings_name():
    from traitlets import TraitError

    with pytest.raises(TraitError, match="JobSpawner.engine_launcher"):
        JobSpawner(engine_launcher="ssh")


@pytest.mark.parametrize(
    ("settings", "launcher"),
    [
        ({"scheduler": "slurm"}, "srun"),
        ({"scheduler": "pbs", "pbs_flavor": "slurm-torque"}, "srun"),
        ({"scheduler": "pbs", "pbs_flavor": "torque"}, "pbsdsh"),
    ],
)
def test_default_launcher_follows_the_scheduler(settings, launcher):
    assert JobSpawner(**settings).engine_launcher == launcher
