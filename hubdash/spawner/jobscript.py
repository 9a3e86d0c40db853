"""Rendering the batch job script from its jinja2 template.

Only validated values reach the template, and every one of them is shell-quoted there.
"""

from __future__ import annotations

import functools
import shlex
from dataclasses import dataclass

import jinja2

from hubdash.job.contract import LAUNCHER_MODULE
from hubdash.schedulers.base import JobRequest, SchedulerAdapter


@dataclass(frozen=True)
class JobScript:
    """What goes into one job script besides the scheduler's directives."""

    username: str
    server_name: str
    state_dir: str  # relative to the user's home
    python: str  # the interpreter on the compute nodes that runs the launcher (LAUNCHER_MODULE)
    command: list[str]  # the single-user server's argv
    prologue: tuple[str, ...] = ()  # admin-written shell lines (module load ...)
    engines: int = 0  # IPython-parallel engines; 0 starts nothing of ipyparallel
    engine_launcher: tuple[str, ...] = ()  # argv that starts them (see engineplan)
    environment_lines: tuple[str, ...] = ()  # enter the chosen environment (environments.py)
    engine_python: str = ""  # the environment's interpreter for the engines; "": python


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("hubdash.spawner", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,  # a shell script, not HTML: the quote filter does the quoting
    )
    env.filters["quote"] = lambda value: shlex.quote(str(value))
    return env


@functools.cache
def _job_template() -> jinja2.Template:
    """The job script's template, compiled at its first use rather than at import: compiling
    it took 4 % of the hub's event loop in a burst of 100 spawns (bench/class_burst.py)."""
    return _environment().get_template("job.sh.j2")


def render_job_script(adapter: SchedulerAdapter, request: JobRequest, job: JobScript) -> str:
    """The complete job script for one server, ready to submit."""
    if job.engines and not job.engine_launcher:
        raise ValueError(f"{job.engines} engines were asked for but no engine launcher is set")
    template = _job_template()
    return template.render(
        directives=adapter.directives(request),
        job_id_variable=adapter.job_id_variable,
        username=_comment_safe(job.username),
        server_name=_comment_safe(job.server_name),
        state_dir=job.state_dir,
        python=job.python,
        launcher_module=LAUNCHER_MODULE,
        command=job.command,
        prologue=job.prologue,
        environment_lines=job.environment_lines,
        engine_python=job.engine_python,
        engines=job.engines,
        # One argument in the script, split again by the launcher in the job.
        engine_launcher=shlex.join(job.engine_launcher),
    )


def _comment_safe(text: str) -> str:
    # Names land in a comment line: a newline there would start a script line.
    return "".join(ch if ch.isprintable() else "?" for ch in text)
