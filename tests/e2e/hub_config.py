"""The demo hub plus a service token the tests use to read server state through the REST API."""

import os
from runpy import run_path

from hubdash.spawner.hubsetup import setup_hub

c = get_config()  # noqa: F821
load_subconfig(os.path.join(os.environ["HUBDASH_ROOT"], "examples", "demo_config.py"))  # noqa: F821

# The tests' service token, added to what the demo configures (e.g. the dashboard service).
# Run from its file: this config is no package module (harness/hubapi.py says more).
hubapi = os.path.join(os.environ["HUBDASH_ROOT"], "harness", "hubapi.py")
run_path(hubapi)["add_api_service"](c, "hubdash-tests", os.environ["HUBDASH_TEST_TOKEN"])
c.JupyterHub.log_level = "DEBUG"
# One hub serves a whole session, whose tests start more named servers per user than the
# demo's limit (a stopped one still counts until deleted).
c.JupyterHub.named_server_limit_per_user = 0
# Jobs of this test session carry its tag, so the queue check after the session counts
# only them (other hubs may share the test cluster).
c.JobSpawner.job_name_prefix = os.environ["HUBDASH_JOB_PREFIX"]
# Queue access under test: batch is bob's alone (the form, opt- URLs and the API refuse alice).
slurm_queues = (
    c.JobSpawner.clusters["slurm"]["queues"]  # a hub of several clusters
    if "clusters" in c.JobSpawner
    else c.JobSpawner.queues
)
if "batch" in slurm_queues:  # the Slurm cluster's queues
    slurm_queues["batch"]["users"] = ["bob"]

# Options for the dashboard service: a test cannot reach into the service list from its
# extra config (a subconfig's list replaces the whole list).
dash_args = os.environ.get("HUBDASH_TEST_DASH_ARGS", "").split()
for service in c.JupyterHub.services:
    if service["name"] == "hubdash" and dash_args:
        service["command"] = [*service["command"], *dash_args]

# A test may add settings of its own (a short queue limit, a broken command ...).
if os.environ.get("HUBDASH_TEST_EXTRA_CONFIG"):
    load_subconfig(os.environ["HUBDASH_TEST_EXTRA_CONFIG"])  # noqa: F821

# The start-up check sees this file's settings too (the demo's call saw only its own file).
setup_hub(c)
