"""`python -m hubdash.spawner.render`: print the exact job script the hub would submit for
a user and spawn options, from the hub's own config file. Connects to nothing, submits nothing.

    python -m hubdash.spawner.render --config /etc/jupyterhub/jupyterhub_config.py \\
        --user alice queue=debug walltime=0:30:00 nodes=1 engines=0

Options are the spawn form's fields as name=value; they go through the same validation
as the form, the REST API and `opt-` URLs, so a refusal here is what the user would see.
On a hub of several clusters, `cluster=<name>` picks one (default: the user's first).
"""

from __future__ import annotations

import argparse
import os
import sys
from types import SimpleNamespace

from traitlets import TraitError
from traitlets.config import Config, PyFileConfigLoader
from traitlets.config.loader import ConfigFileNotFound

from hubdash.spawner.jobspawner import JobSpawner
from hubdash.spawner.options import ConfigError, OptionsError


def load_config(path: str) -> Config:
    """A jupyterhub_config.py read as JupyterHub reads it (get_config, load_subconfig)."""
    directory, name = os.path.split(os.path.abspath(path))
    try:
        return PyFileConfigLoader(name, path=directory).load_config()
    except ConfigFileNotFound:
        raise FileNotFoundError(f"there is no config file {path}") from None


def render(
    config: Config,
    username: str,
    options: dict[str, str],
    server_name: str = "",
    groups: tuple[str, ...] = (),
) -> str:
    """The job script for this user and these form options, under `config`."""
    user = SimpleNamespace(name=username, groups=[SimpleNamespace(name=g) for g in groups])
    # Spawner.name comes from its database row: a stand-in row with no server.
    row = SimpleNamespace(name=server_name, display_name=server_name, server=None, state=None)
    spawner = JobSpawner(config=config, user=user, orm_spawner=row)
    return spawner.job_script(options)


def _parse_options(items: list[str]) -> dict[str, str]:
    options: dict[str, str] = {}
    for item in items:
        name, equals, value = item.partition("=")
        if not equals or not name:
            raise ValueError(f"spawn options go as name=value, e.g. queue=debug; got {item!r}")
        options[name] = value
    return options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hubdash.spawner.render",
        description="Print the job script the hub would submit. Connects to nothing.",
    )
    parser.add_argument("--config", "-f", required=True, help="the hub's jupyterhub_config.py")
    parser.add_argument("--user", "-u", required=True, help="the hub user's name")
    parser.add_argument("--server", default="", help="a named server's name (default: none)")
    parser.add_argument(
        "--group", action="append", default=[], help="a group of the user (repeatable)"
    )
    parser.add_argument("options", nargs="*", help="spawn options as name=value")
    args = parser.parse_args(argv)
    try:
        options = _parse_options(args.options)
        config = load_config(args.config)
        script = render(config, args.user, options, args.server, tuple(args.group))
    except OptionsError as exc:
        for name, message in exc.errors.items():
            print(f"{name}: {message}", file=sys.stderr)
        return 2
    except (ValueError, TraitError, ConfigError, OSError, SyntaxError) as exc:
        print(f"cannot render: {exc}", file=sys.stderr)
        return 2
    sys.stdout.write(script)
    return 0


if __name__ == "__main__":
    sys.exit(main())
