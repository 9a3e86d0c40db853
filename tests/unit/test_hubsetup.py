"""setup_hub: the form's queue API routes, and spawner settings checked as the hub reads them."""

import logging

import pytest
from jupyterhub.app import JupyterHub
from traitlets import TraitError
from traitlets.config import Config

from hubdash.spawner import hubsetup
from hubdash.spawner.jobspawner import JobSpawner
from hubdash.spawner.queueapi import (
    CheckHandler,
    ClustersHandler,
    EstimateHandler,
    QueuesHandler,
)


class AdminHandler:
    pass


def test_routes_are_added_once_next_to_the_admins_own():
    c = Config()
    c.JupyterHub.extra_handlers = [("/api/site", AdminHandler)]
    hubsetup.setup_hub(c)
    hubsetup.setup_hub(c)
    assert c.JupyterHub.extra_handlers == [
        ("/api/site", AdminHandler),
        ("/api/hubdash/queues", QueuesHandler),
        ("/api/hubdash/estimate", EstimateHandler),
        ("/api/hubdash/check", CheckHandler),
        ("/api/hubdash/clusters", ClustersHandler),
    ]


def test_routes_survive_a_config_that_appends_to_the_default():
    c = Config()
    c.JupyterHub.extra_handlers.append(("/api/site", AdminHandler))
    hubsetup.setup_hub(c)
    assert [route for route, _ in c.JupyterHub.extra_handlers] == [
        "/api/site",
        "/api/hubdash/queues",
        "/api/hubdash/estimate",
        "/api/hubdash/check",
        "/api/hubdash/clusters",
    ]


def hub_reading(c: Config) -> JupyterHub:
    """A hub that reads `c` the way JupyterHub applies a config file it has just run."""
    if "login_host" not in c.JobSpawner:
        c.JobSpawner.login_host = "login.example.org"  # a cluster the checks can accept
    app = JupyterHub()
    hubsetup._check_when_configured(app, c)
    app.update_config(c)
    return app


def test_a_bad_setting_fails_as_the_hub_reads_its_config():
    c = Config()
    c.JupyterHub.spawner_class = JobSpawner
    c.JobSpawner.queues = {"debug": {"max_walltime": "soon"}}
    with pytest.raises(TraitError, match=r"JobSpawner.queues\['debug'\]\['max_walltime'\]"):
        hub_reading(c)


def test_good_settings_pass_and_other_spawners_are_not_checked():
    c = Config()
    c.JupyterHub.spawner_class = JobSpawner
    c.JobSpawner.queues = {"debug": {"max_walltime": "1:00:00"}}
    c.JobSpawner.form_extras = ["account"]
    assert hub_reading(c).spawner_class is JobSpawner
    other = Config()
    other.JobSpawner.queues = {"debug": {"max_walltime": "soon"}}  # unused: not the spawner
    hub_reading(other)


@pytest.mark.parametrize(
    "settings, warned",
    [
        ({"internal_ssl": True}, []),
        ({"internal_ssl": False}, ["without c.JupyterHub.internal_ssl"]),
        (
            {"internal_ssl": True, "hub_forward_listen_address": "0.0.0.0"},
            ["every interface of the login node"],
        ),
        ({"internal_ssl": False, "forward_hub_api": False}, []),
    ],
)
def test_an_exposed_channel_to_the_hub_is_warned_about_once_at_start(settings, warned):
    c = Config()
    c.JupyterHub.spawner_class = JobSpawner
    settings = dict(settings)  # a copy: the parameters hold for a second run in one process
    c.JupyterHub.internal_ssl = settings.pop("internal_ssl")
    c.JobSpawner.login_host = "login.example.org"
    for name, value in settings.items():
        setattr(c.JobSpawner, name, value)
    messages = [m for m in warnings_at_start(c) if "cleanup_servers" not in m]
    assert len(messages) == len(warned), messages
    for message, expected in zip(messages, warned, strict=True):
        assert expected in message


def warnings_at_start(c: Config) -> list[str]:
    """What the hub warns about as it reads `c` (setup_hub's checks)."""
    app = JupyterHub()
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    app.log.addHandler(handler)
    try:
        hubsetup._check_when_configured(app, c)
        app.update_config(c)
    finally:
        app.log.removeHandler(handler)
    return [r.getMessage() for r in records if "extra_handlers is deprecated" not in r.getMessage()]


def test_setup_hub_keeps_servers_across_hub_stops_unless_the_admin_says_otherwise():
    c = Config()
    c.JupyterHub.spawner_class = JobSpawner
    c.JobSpawner.login_host = "login.example.org"
    c.JupyterHub.internal_ssl = True
    hubsetup.setup_hub(c)
    assert c.JupyterHub.cleanup_servers is False
    assert warnings_at_start(c) == []
    told = Config(c)
    told.JupyterHub.cleanup_servers = True
    hubsetup.setup_hub(told)
    assert told.JupyterHub.cleanup_servers is True  # the admin's word stands ...
    (warning,) = warnings_at_start(told)
    assert "cancels every batch job" in warning  # ... with a warning of what it does
