"""Software environments a server may start in: the admin's table, the choice, and the job
script lines that enter one (Lmod modules, a venv or conda prefix, lines of the admin's own).

Pure: checks text and builds shell lines; nothing here looks at the cluster. options.py calls
`choose_environment` from its one validation; jobrequest.py places `entry_lines` in the job.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

ENVIRONMENT_KEYS = {
    "description": str,
    "modules": list,
    "prefix": str,
    "python": str,
    "lines": list,
    "default": bool,
}
# An environment's name reaches the form, the dashboard and a job-script comment.
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.+-]{0,63}")
# What a shell reads as one plain word, and a file name every cluster has: the alphabet
# state_root and scheduler_bin_dir keep to. No leading '-': exec would take it for an option.
PLAIN_PATH = re.compile(r"[A-Za-z0-9_./+][A-Za-z0-9_./+-]*")
# Lmod and Environment Modules names: 'python/3.11', 'gcc/12.2.0-abc', 'py-numpy@1.26'.
_MODULE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+/@:=-]{0,127}")


class EnvironmentConfigError(ValueError):
    """An environment setting that cannot work; the message names the setting."""


class EnvironmentChoiceError(ValueError):
    """A user's environment choice that breaks a rule; the message is for the user."""


@dataclass(frozen=True)
class Environment:
    """One software environment as the admin declares it."""

    name: str
    description: str = ""
    modules: tuple[str, ...] = ()  # loaded in order with `module load`
    prefix: str = ""  # a venv or conda prefix; its bin/ goes first on PATH
    python: str = ""  # the environment's interpreter, for the engines; see engine_python
    lines: tuple[str, ...] = ()  # the admin's own shell lines, after modules and prefix
    default: bool = False

    def engine_python(self) -> str:
        """The interpreter that runs the engines, so that they import what the notebook
        imports: 'python', else '<prefix>/bin/python'; '' for the launcher's own."""
        if self.python:
            return self.python
        if self.prefix:
            return f"{self.prefix.rstrip('/')}/bin/python"
        return ""

    def summary(self) -> str:
        """What it holds, in one line for the form."""
        parts = [self.description] if self.description else []
        if self.modules:
            parts.append("modules " + ", ".join(self.modules))
        if self.prefix:
            parts.append(self.prefix)
        return "; ".join(parts)


def parse_environments(
    table: Mapping[str, Any], setting: str = "JobSpawner.environments"
) -> dict[str, Environment]:
    """The admin's environment table, checked; EnvironmentConfigError names the bad entry.

    >>> envs = parse_environments({"base": {"modules": ["python/3.11"], "default": True}})
    >>> envs["base"].modules, envs["base"].default
    (('python/3.11',), True)
    >>> parse_environments({"a": {"default": True}, "b": {"default": True}})
    Traceback (most recent call last):
    ...
    hubdash.spawner.environments.EnvironmentConfigError: JobSpawner.environments: only one ...
    """
    environments: dict[str, Environment] = {}
    for name, entry in table.items():
        where = f"{setting}[{name!r}]"
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise EnvironmentConfigError(
                f"{where}: an environment name may hold only letters, digits and _ . + - "
                "(at most 64 characters)"
            )
        if not isinstance(entry, Mapping):
            raise EnvironmentConfigError(
                f"{where} must be a dict (description, modules, prefix, python, lines, "
                f"default), not {type(entry).__name__}"
            )
        unknown = set(entry) - set(ENVIRONMENT_KEYS)
        if unknown:
            raise EnvironmentConfigError(
                f"{where} has unknown key(s) {sorted(map(str, unknown))}; "
                f"known keys: {sorted(ENVIRONMENT_KEYS)}"
            )
        values: dict[str, Any] = {}
        for key, kind in ENVIRONMENT_KEYS.items():
            if key not in entry:
                continue
            value = entry[key]
            if kind is list:
                if isinstance(value, str) or not isinstance(value, Iterable):
                    raise EnvironmentConfigError(f"{where}['{key}'] must be a list of text")
                value = tuple(value)
                if not all(isinstance(v, str) for v in value):
                    raise EnvironmentConfigError(f"{where}['{key}'] must be a list of text")
            elif not isinstance(value, kind):
                raise EnvironmentConfigError(
                    f"{where}['{key}'] must be {kind.__name__}, not {value!r}"[:200]
                )
            values[key] = value
        for module in values.get("modules", ()):
            if not _MODULE.fullmatch(module):
                raise EnvironmentConfigError(
                    f"{where}['modules']: {module!r} is not a module name "
                    "(letters, digits and _ . + / @ : = -)"
                )
        for key in ("prefix", "python"):
            if values.get(key) and not PLAIN_PATH.fullmatch(values[key]):
                raise EnvironmentConfigError(
                    f"{where}['{key}'] must be a path of letters, digits and _ . / + - "
                    f"(not starting with '-'); got {values[key]!r}"[:240]
                )
        for line in values.get("lines", ()):
            if "\n" in line or "\r" in line:
                raise EnvironmentConfigError(f"{where}['lines']: one shell line per entry")
        environments[name] = Environment(name=name, **values)
    defaults = [env.name for env in environments.values() if env.default]
    if len(defaults) > 1:
        raise EnvironmentConfigError(
            f"{setting}: only one environment may be the default; "
            f"{', '.join(defaults)} all say default: True"
        )
    return environments


def check_queue_environments(
    queue_name: str,
    offered: tuple[str, ...],
    environments: Mapping[str, Environment],
    setting: str = "JobSpawner.queues",
) -> None:
    """A queue's 'environments' must name declared environments."""
    missing = [name for name in offered if name not in environments]
    if missing:
        known = ", ".join(environments) or "(none: JobSpawner.environments is empty)"
        raise EnvironmentConfigError(
            f"{setting}[{queue_name!r}]['environments'] names {', '.join(map(repr, missing))}, "
            f"which JobSpawner.environments does not declare; declared: {known}"
        )


def offered_environments(
    environments: Mapping[str, Environment], queue_offers: tuple[str, ...]
) -> dict[str, Environment]:
    """The environments a queue offers, in the admin's order: its own list, else all."""
    if not queue_offers:
        return dict(environments)
    return {name: env for name, env in environments.items() if name in queue_offers}


def default_environment(offered: Mapping[str, Environment]) -> str:
    """The one marked default when the queue offers it, else the first offered ('' for none).

    >>> envs = parse_environments({"a": {}, "b": {"default": True}})
    >>> default_environment(envs), default_environment(offered_environments(envs, ("a",)))
    ('b', 'a')
    """
    for env in offered.values():
        if env.default:
            return env.name
    return next(iter(offered), "")


def choose_environment(value: Any, queue_name: str, offered: Mapping[str, Environment]) -> str:
    """The environment a spawn starts in: the user's choice when the queue offers it, the
    default when none was made; EnvironmentChoiceError otherwise."""
    text = "" if value is None else str(value).strip()
    if not text:
        chosen = default_environment(offered)
        if not chosen:
            raise EnvironmentChoiceError(f"queue {queue_name!r} offers no environment")
        return chosen
    if text not in offered:
        shown = text if len(text) <= 40 else text[:40] + "…"
        raise EnvironmentChoiceError(
            f"environment {shown!r} is not offered in queue {queue_name!r}; choose one of: "
            + (", ".join(offered) or "(none)")
        )
    return text


def entry_lines(env: Environment, module_init: str, server_command: str) -> list[str]:
    """Job-script lines that enter `env` and fail the job at once, saying why, when it is
    broken: a module that will not load, or no `server_command` once inside.

    Every value is shell-quoted; the admin's own `lines` go in as written.
    """
    q = shlex.quote
    name = env.name

    def fail(message: str, shell_words: str = "") -> str:
        # `shell_words` are expanded when the line runs ("$PATH"); the message is not.
        said = q(f"hubdash: environment {name}: {message}") + (
            f" {shell_words}" if shell_words else ""
        )
        return f"{{ echo {said} >&2; exit 1; }}"

    lines = [f"echo {q(f'hubdash: entering environment {name}')}"]
    if env.modules:
        # A batch job's shell is no login shell: `module` exists only where the site exports it.
        lines.append(
            f"type module >/dev/null 2>&1 || . {q(module_init)} || "
            + fail(f"cannot set up modules from {module_init}")
        )
        for module in env.modules:
            lines.append(
                f"module load {q(module)} || " + fail(f"module {module} could not be loaded")
            )
    if env.prefix:
        prefix = env.prefix.rstrip("/") or "/"
        lines.append(
            f"[ -d {q(prefix)} ] || "
            + fail(f"its prefix {prefix} is not a folder on", '"$(hostname)"')
        )
        lines.append(f'export PATH={q(prefix + "/bin")}:"$PATH"')
    lines.extend(env.lines)
    lines.append(
        f"command -v {q(server_command)} >/dev/null || "
        + fail(f"it has no {server_command} on PATH:", '"$PATH"')
    )
    return lines
