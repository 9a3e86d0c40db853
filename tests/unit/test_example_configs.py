"""The site examples in examples/ are valid configurations of the spawner."""

from pathlib import Path

import pytest
from traitlets.config.loader import PyFileConfigLoader

from hubdash.spawner.jobspawner import JobSpawner

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.mark.parametrize(
    "name", ["slurm_site_config.py", "pbs_site_config.py", "sge_site_config.py"]
)
def test_site_example_passes_the_start_check_and_serves_queue_information(name):
    config = PyFileConfigLoader(name, str(EXAMPLES)).load_config()
    spawner = JobSpawner(config=config)
    spawner.check_config()
    assert spawner.queue_table and spawner.extra_fields.enabled
    routes = [route for route, _ in config.JupyterHub.extra_handlers]
    assert routes == [
        "/api/hubdash/queues",
        "/api/hubdash/estimate",
        "/api/hubdash/check",
        "/api/hubdash/clusters",
    ]


def test_two_cluster_example_passes_the_start_check_with_each_cluster_its_own():
    config = PyFileConfigLoader("two_cluster_site_config.py", str(EXAMPLES)).load_config()
    spawner = JobSpawner(config=config)
    spawner.check_config()
    assert list(spawner.cluster_choices) == ["cpu", "gpu"]
    assert spawner.cluster_choices["gpu"].groups == ("ml",)
    gpu = spawner.for_cluster("gpu")
    assert (gpu.scheduler, gpu.pbs_flavor, list(gpu.queue_table)) == ("pbs", "pbspro", ["gpuq"])
    assert "gpus" in gpu.extra_fields.enabled
    spawner.use_cluster("cpu")
    assert spawner.scheduler == "slurm" and "gpus" not in spawner.extra_fields.enabled
