"""The job script: directives from the adapter, every value quoted, nothing else executable."""

import shlex
import subprocess

from hubdash.schedulers.base import JobRequest, SchedulerAdapter
from hubdash.spawner.jobscript import JobScript, render_job_script


class RecordingAdapter(SchedulerAdapter):
    name = "test"
    job_id_variable = "TEST_JOB_ID"

    def directives(self, request: JobRequest) -> list[str]:
        return [f"#TEST --name={request.job_name}", f"#TEST --queue={request.queue}"]


REQUEST = JobRequest(job_name="jupyterhub-alice-default", queue="debug", walltime_seconds=600)


def render(**overrides) -> str:
    job = dict(
        username="alice",
        server_name="",
        state_dir=".hubdash/servers/default",
        python="/opt/hubdash/venv/bin/python",
        command=["jupyterhub-singleuser", "--debug"],
    )
    job.update(overrides)
    return render_job_script(RecordingAdapter(), REQUEST, JobScript(**job))


def test_script_starts_with_shebang_then_directives():
    lines = render().splitlines()
    assert lines[0] == "#!/bin/bash"
    assert lines[1:3] == ["#TEST --name=jupyterhub-alice-default", "#TEST --queue=debug"]


def test_script_is_valid_bash():
    subprocess.run(["bash", "-n"], input=render(), text=True, check=True)


def test_hostile_server_name_stays_inside_a_comment():
    script = render(server_name="x\nrm -rf ~ #", state_dir=".hubdash/servers/x_rm")
    assert "\nrm -rf" not in script


def test_hostile_command_arguments_are_quoted():
    hostile = "$(touch /tmp/pwned); `id` 'quote\" \n#SBATCH --uid=0"
    script = render(command=["jupyterhub-singleuser", hostile])
    launch = script[script.index("exec ") :]
    words = shlex.split(launch.replace("\\\n", " "))
    assert words[-1] == hostile
    assert "\n#SBATCH --uid=0" not in script.split("exec ", 1)[0]


def test_job_id_comes_from_the_schedulers_variable():
    assert '--job-id "${TEST_JOB_ID:-unknown}"' in render()
