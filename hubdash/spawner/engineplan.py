"""Where a job's IPython-parallel engines go and which command starts them across its nodes.

Pure: the packing arithmetic and the admin's launcher template; runs nothing, talks to no cluster.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass

from hubdash.job.contract import ENGINES_MODULE, PBS_HOSTS_MODULE, PE_HOSTS_MODULE

# Named launchers an admin can pick; the engine's own command is appended to each.
LAUNCHER_PRESETS: dict[str, tuple[str, ...]] = {
    # Slurm, and PBS on Slurm's wrappers. --overlap: the engines' step shares CPUs with the
    # notebook and with steps the user starts, instead of making them wait.
    "srun": (
        "srun",
        "--nodes={nodes}",
        "--ntasks={engines}",
        "--ntasks-per-node={per_node}",
        "--overlap",
        "--kill-on-bad-exit=0",
    ),
    # Open MPI's mpiexec (reads the PBS or Slurm allocation itself).
    "mpiexec": ("mpiexec", "-n", "{engines}", "--map-by", "ppr:{per_node}:node"),
    # Torque's pbsdsh runs once per allocated CPU slot; slots fill node by node, and the
    # slot filter lets only the first {engines} of them start an engine.
    "pbsdsh": (
        "pbsdsh",
        "--",
        "{python}",
        "-m",
        ENGINES_MODULE,
        "slot",
        "--first",
        "{engines}",
        "--",
    ),
    # Grid Engine: `qrsh -inherit` to each other host of $PE_HOSTFILE (one task per host,
    # which starts that host's engines), this host's engines started here; never plain ssh.
    "qrsh": (
        "{python}",
        "-m",
        PE_HOSTS_MODULE,
        "spread",
        "--engines",
        "{engines}",
        "--per-node",
        "{per_node}",
        "--",
    ),
    # PBS Pro / OpenPBS: `pbs_tmrsh` to each other host of $PBS_NODEFILE (a task of the job,
    # which starts that host's engines), this host's engines started here; never plain ssh.
    "pbs_tmrsh": (
        "{python}",
        "-m",
        PBS_HOSTS_MODULE,
        "spread",
        "--engines",
        "{engines}",
        "--per-node",
        "{per_node}",
        "--",
    ),
}

PLACEHOLDERS = ("engines", "nodes", "per_node", "python")


class LauncherError(ValueError):
    """An engine launcher setting that cannot work; the message names the setting."""


@dataclass(frozen=True)
class EngineLayout:
    """How many engines run, on how many nodes, at most how many on one node."""

    engines: int
    nodes: int  # nodes that run engines (the job may hold more)
    per_node: int


def plan_layout(engines: int, nodes: int, max_per_node: int) -> EngineLayout:
    """Spread `engines` evenly over the job's `nodes`, never more than `max_per_node` on one.

    Even spreading (not filling the first node) puts engines on every node the user asked for.

    >>> plan_layout(4, 2, 8)
    EngineLayout(engines=4, nodes=2, per_node=2)
    >>> plan_layout(128, 8, 16)
    EngineLayout(engines=128, nodes=8, per_node=16)
    >>> plan_layout(5, 4, 8)  # 2 + 2 + 1, the fourth node runs none
    EngineLayout(engines=5, nodes=3, per_node=2)
    >>> plan_layout(0, 2, 8)
    EngineLayout(engines=0, nodes=0, per_node=0)
    >>> plan_layout(17, 2, 8)
    Traceback (most recent call last):
    ...
    ValueError: 17 engines need 3 nodes at 8 per node; the job has 2
    """
    for name, value, minimum in (
        ("engines", engines, 0),
        ("nodes", nodes, 1),
        ("max_per_node", max_per_node, 1),
    ):
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise ValueError(f"{name} must be a whole number, at least {minimum}, not {value!r}")
    if engines == 0:
        return EngineLayout(0, 0, 0)
    per_node = -(-engines // nodes)
    if per_node > max_per_node:
        needed = -(-engines // max_per_node)
        raise ValueError(
            f"{engines} engines need {needed} nodes at {max_per_node} per node; the job has {nodes}"
        )
    return EngineLayout(engines, -(-engines // per_node), per_node)


def launcher_template(
    setting: str | Sequence[str], name: str = "JobSpawner.engine_launcher"
) -> tuple[str, ...]:
    """The launcher as a template list: a preset's, or the admin's own list, checked.

    >>> launcher_template("mpiexec")
    ('mpiexec', '-n', '{engines}', '--map-by', 'ppr:{per_node}:node')
    >>> launcher_template(["mpirun", "-np", "{engine}"])
    Traceback (most recent call last):
    ...
    hubdash.spawner.engineplan.LauncherError: JobSpawner.engine_launcher: unknown placeholder ...
    """
    if isinstance(setting, str):
        if setting not in LAUNCHER_PRESETS:
            raise LauncherError(
                f"{name} is {setting!r}; choose one of {', '.join(LAUNCHER_PRESETS)} "
                "or give a command as a list"
            )
        return LAUNCHER_PRESETS[setting]
    template = tuple(setting)
    if not template or not all(isinstance(item, str) and item for item in template):
        raise LauncherError(f"{name} must be a preset name or a non-empty list of words")
    shown = " ".join(template)
    for item in template:
        try:
            fields = [f for _, f, _, _ in string.Formatter().parse(item) if f is not None]
        except ValueError as exc:
            raise LauncherError(f"{name}: cannot read {item!r}: {exc}") from None
        for field in fields:
            if field not in PLACEHOLDERS:
                known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
                raise LauncherError(
                    f"{name}: unknown placeholder {{{field}}} in {shown!r}; known: {known}"
                )
    return template


def launcher_command(template: Sequence[str], layout: EngineLayout, python: str) -> list[str]:
    """The launcher's argv for this layout; the engine's command goes after it.

    Every placeholder becomes one word of the list: nothing is ever read by a shell.

    >>> launcher_command(launcher_template("srun"), plan_layout(4, 2, 8), "python3")
    ['srun', '--nodes=2', '--ntasks=4', '--ntasks-per-node=2', '--overlap', '--kill-on-bad-exit=0']
    """
    values = {
        "engines": layout.engines,
        "nodes": layout.nodes,
        "per_node": layout.per_node,
        "python": python,
    }
    return [item.format(**values) for item in template]
