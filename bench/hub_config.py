"""The hub the benchmarks measure hubdash with: the demo's configuration (examples/demo_config.py)
plus a service token for the benchmark, every test-cluster user, a `hold` queue and named servers.

Started by bench/hubs.py, which sets the HUBDASH_* variables read here and in the demo config.
"""

import os
from runpy import run_path

from spawner.hubsetup import setup_hub

c = get_config()  # noqa: F821
load_subconfig(os.path.join(os.environ["HUBDASH_ROOT"], "examples", "demo_config.py"))  # noqa: F821

run_path(os.path.join(os.environ["HUBDASH_ROOT"], "bench", "bench_access.py"))["add_bench_access"](
    c
)
c.JupyterHub.log_level = "DEBUG" if os.environ.get("HUBDASH_BENCH_DEBUG") else "INFO"

c.JobSpawner.job_name_prefix = os.environ["HUBDASH_BENCH_JOB_PREFIX"]
c.JobSpawner.queues["hold"] = {"description": "takes jobs, never starts them"}
if os.environ.get("HUBDASH_BENCH_TINY"):
    # A trivially small server (bench/tinyserver.py) where only the spawner's cost matters.
    c.JobSpawner.cmd = [
        c.JobSpawner.remote_python,
        os.path.join(os.environ["HUBDASH_ROOT"], "bench", "tinyserver.py"),
    ]

if os.environ.get("HUBDASH_BENCH_EXTRA_CONFIG"):
    load_subconfig(os.environ["HUBDASH_BENCH_EXTRA_CONFIG"])  # noqa: F821

setup_hub(c)
