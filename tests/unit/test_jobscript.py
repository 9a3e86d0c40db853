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


def run_in_bash(tmp_path, script: str) -> list[str]:
    """Run the script as a job would (bash, HOME set); the argv its `python` was started
    with, as the stand-in interpreter recorded it ($0 first)."""
    (tmp_path / "job.sh").write_text(script)
    env = {"HOME": str(tmp_path), "PATH": "/usr/bin:/bin", "ARGV_OUT": str(tmp_path / "argv")}
    done = subprocess.run(["bash", str(tmp_path / "job.sh")], env=env, capture_output=True)
    assert done.returncode == 0, done.stderr
    return (tmp_path / "argv").read_bytes().decode().split("\0")[:-1]


def test_python_and_state_dir_reach_the_launcher_as_one_word_each(tmp_path):
    # Both are admin settings (remote_python, state_root), checked at start; the template
    # quotes them all the same: a space or a shell character stays part of the one word.
    folder = tmp_path / "my env; touch pwned"
    folder.mkdir()
    python = folder / "python"
    python.write_text('#!/bin/bash\nprintf \'%s\\0\' "$0" "$@" > "$ARGV_OUT"\n')
    python.chmod(0o755)
    state_dir = "servers/a b'c;touch pwned $(touch pwned)"
    argv = run_in_bash(tmp_path, render(python=str(python), state_dir=state_dir))
    assert argv == [
        str(python), "-m", "hubdash.job.launcher", "--state-dir", state_dir,
        "--job-id", "unknown", "--", "jupyterhub-singleuser", "--debug",
    ]  # fmt: skip
    assert not (tmp_path / "pwned").exists()


def test_the_comment_names_user_and_server_with_unprintable_characters_replaced():
    lines = render(username="al\x1bice", server_name="x\nrm -rf ~ #").splitlines()
    assert "# Jupyter server for al?ice (x?rm -rf ~ #), submitted by hubdash." in lines
    assert "# Jupyter server for alice, submitted by hubdash." in render().splitlines()


def test_script_ends_with_the_launch_and_a_newline():
    # A last line without its newline is dropped by some readers of scripts.
    assert render().endswith(" -- jupyterhub-singleuser --debug\n")


def test_engines_reach_the_launcher_with_their_launcher_as_one_word(tmp_path):
    python = tmp_path / "python"
    python.write_text('#!/bin/bash\nprintf \'%s\\0\' "$0" "$@" > "$ARGV_OUT"\n')
    python.chmod(0o755)
    launcher = ("srun", "--ntasks=4", "my engine")
    argv = run_in_bash(tmp_path, render(python=str(python), engines=4, engine_launcher=launcher))
    assert argv[7:11] == ["--engines", "4", "--engine-launcher", shlex.join(launcher)]
