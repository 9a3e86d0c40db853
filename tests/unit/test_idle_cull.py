"""Idle reclaim: the culler service as add_idle_culler configures it, and what a stop after
idling says (and does not say) of itself."""

from __future__ import annotations

import pytest
from traitlets.config import Config

from hubdash.serverstate import JobRecord, read_server_state
from hubdash.spawner.idlecull import CULLER_SCOPES, add_idle_culler, stopped_outcome

JOB = JobRecord("77", node_count=4, walltime_seconds=3600, started_at=1000.0)


def test_the_culler_runs_as_a_managed_service_with_only_the_scopes_it_needs():
    c = Config()
    c.JupyterHub.services = [{"name": "hubdash", "url": "http://127.0.0.1:10101"}]
    add_idle_culler(c, timeout=900, python="/venv/bin/python")
    hubdash, culler = c.JupyterHub.services
    assert hubdash["name"] == "hubdash"  # the admin's own services stay
    assert culler == {
        "name": "idle-culler",
        "command": [
            "/venv/bin/python",
            "-m",
            "jupyterhub_idle_culler",
            "--timeout=900",
            "--cull-every=90",
        ],
    }
    (role,) = c.JupyterHub.load_roles
    assert role == {"name": "idle-culler", "scopes": CULLER_SCOPES, "services": ["idle-culler"]}
    assert "admin:users" not in CULLER_SCOPES and "delete:servers" in CULLER_SCOPES
    assert c.JobSpawner.idle_culler_timeout == 900


def test_with_internal_tls_the_culler_uses_the_hubs_certificates():
    c = Config()
    c.JupyterHub.internal_ssl = True
    c.JupyterHub.internal_certs_location = "/srv/jupyterhub/internal-ssl"
    add_idle_culler(c, timeout=600)
    (culler,) = c.JupyterHub.services
    assert culler["command"][-2:] == [
        "--ssl-enabled=true",
        "--internal-certs-location=/srv/jupyterhub/internal-ssl",
    ]


def test_calling_it_again_replaces_the_culler_and_the_cadence_is_bounded():
    c = Config()
    add_idle_culler(c, timeout=60, every=10)
    add_idle_culler(c, timeout=86400)
    (culler,) = c.JupyterHub.services
    assert culler["command"][-2:] == ["--timeout=86400", "--cull-every=300"]
    assert len(c.JupyterHub.load_roles) == 1
    with pytest.raises(ValueError, match="timeout must be seconds above 0"):
        add_idle_culler(c, timeout=0)


@pytest.mark.parametrize(
    ("idle", "timeout", "idle_stop"),
    [(59.9, 60, False), (60.0, 60, True), (3600, 0, False), (None, 60, False)],
)
def test_only_a_stop_after_the_culler_timeout_is_an_idle_stop(idle, timeout, idle_stop):
    now = 2000.0
    outcome = stopped_outcome(JOB, None if idle is None else now - idle, timeout, now)
    assert (outcome.idle_seconds is not None) is idle_stop
    assert outcome.state == "cancelled" and outcome.job_id == "77" and outcome.ended_at == now
    if not idle_stop:
        assert outcome.message == "Job 77 was stopped from the hub."
        assert outcome.node_hours_returned is None


def test_the_node_hours_given_back_are_the_nodes_times_the_walltime_left():
    # 4 nodes, 1 h asked, started 1000 s before: 2600 s left, 4 × 2600 / 3600 = 2.89
    outcome = stopped_outcome(JOB, 1000.0, 600, 2000.0)
    assert outcome.node_hours_returned == 2.89
    assert outcome.message == (
        "Job 77 was stopped after 16 minutes idle; 2.89 node-hours of walltime given back."
    )
    past_its_end = stopped_outcome(JOB, 0.0, 600, 10_000.0)
    assert past_its_end.node_hours_returned == 0.0
    one_minute = stopped_outcome(JOB, 1940.0, 60, 2000.0)
    assert "after 1 minute idle" in one_minute.message


def test_an_idle_stop_is_saved_and_read_back():
    outcome = stopped_outcome(JOB, 1000.0, 600, 2000.0)
    from hubdash.serverstate import ServerState

    state = ServerState(last_outcome=outcome).to_state()
    assert state["last_outcome"]["node_hours_returned"] == 2.89
    assert read_server_state(state).last_outcome == outcome
