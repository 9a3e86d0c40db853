"""A spawner setting that cannot work stops JupyterHub at start, naming the setting."""

from __future__ import annotations

import pytest

from .badconfig import hub_refused_at_start
from .conftest import PORT_BASE

# Ports no other hub of this session uses; the hub should not get as far as binding them.
PORT = PORT_BASE + 110


@pytest.mark.parametrize(
    ("setting", "named"),
    [
        (
            'c.JobSpawner.queues = {"debug": {"max_walltime": "soon"}}',
            "JobSpawner.queues['debug']['max_walltime']: walltime 'soon' is not a duration",
        ),
        ('c.JobSpawner.form_extras = ["disk"]', "JobSpawner.form_extras has 'disk'"),
        ("c.JobSpawner.queue_info_ttl = 0", "JobSpawner.queue_info_ttl is 0"),
    ],
)
def test_hub_refuses_to_start_with_a_bad_setting_and_names_it(
    setting, named, tmp_path, test_cluster
):
    hub = hub_refused_at_start(setting, PORT, tmp_path)
    assert hub.process.returncode == 1
    log = hub.log_path.read_text()
    assert "Bad config encountered during initialization" in log
    assert named in log
    assert "JupyterHub is now running" not in log
