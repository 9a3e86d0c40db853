"""Paths on the cluster that the admin sets (remote_python), checked when the hub starts.

Pure checks of text, like those of state_root and scheduler_bin_dir: nothing here looks at
the cluster or runs anything.
"""

from __future__ import annotations

from typing import Any

from traitlets import TraitError, validate

from hubdash.spawner.environments import PLAIN_PATH
from hubdash.spawner.options import ConfigError


def check_remote_python(value: Any, setting: str = "JobSpawner.remote_python") -> str:
    """`value` when it names an interpreter as one plain word: an absolute path, a path
    relative to the user's home (where the job script starts), or a command on the compute
    node's PATH. Else a ConfigError naming `setting`.

    The job script quotes it all the same; this keeps a typo (a space, a quote, `~`) from
    reaching the cluster as a job that cannot start.

    >>> check_remote_python("/opt/hubdash/venv/bin/python"), check_remote_python("python3")
    ('/opt/hubdash/venv/bin/python', 'python3')
    >>> check_remote_python("/opt/my env/bin/python")
    Traceback (most recent call last):
    ...
    hubdash.spawner.options.ConfigError: JobSpawner.remote_python must be ...; got '/opt/my env...'
    """
    if not isinstance(value, str) or not PLAIN_PATH.fullmatch(value):
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise ConfigError(
            f"{setting} must be the interpreter's path or command name, of letters, digits "
            f"and _ . / + - (not starting with '-'), e.g. '/opt/hubdash/venv/bin/python'; "
            f"got {shown}"
        )
    return value


@validate("remote_python")
def validate_remote_python(settings: Any, proposal: dict) -> str:
    """JobSpawnerSettings' check of remote_python: `_validate_remote_python = <this>` in the
    class body wires it (also for each entry of JobSpawner.clusters)."""
    try:
        return check_remote_python(proposal["value"])
    except ConfigError as exc:
        raise TraitError(str(exc)) from None
