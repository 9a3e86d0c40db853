"""python -m hubdash.keeper --socket PATH: the forward keeper process (daemon.py).

The hub starts it by itself when none answers on its socket (JobSpawner.forward_keeper);
a site may instead run it as a service of its own, as the hub's user, with the same socket.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from hubdash.keeper.daemon import run
from hubdash.keeper.wire import check_socket_path, private_folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m hubdash.keeper",
        description="Hold a JupyterHub's notebook forwards across hub restarts.",
    )
    parser.add_argument(
        "--socket", required=True, help="the Unix socket the hub asks on (in a 0700 folder)"
    )
    parser.add_argument(
        "--idle-exit",
        type=float,
        default=600.0,
        help="seconds with no forward and no hub connected after which the process ends",
    )
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="[%(levelname)1.1s %(asctime)s hubdash-keeper] %(message)s",
        stream=sys.stderr,
    )
    try:
        check_socket_path(args.socket)
        private_folder(Path(args.socket).parent)
    except ValueError as exc:
        print(f"hubdash.keeper: {exc}", file=sys.stderr)
        return 2
    return run(args.socket, args.idle_exit)


if __name__ == "__main__":
    sys.exit(main())
