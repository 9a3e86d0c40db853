"""Recorded and documented scheduler output in tests/unit/data, and how each was recorded.

scripts/record-scheduler-samples lists each recorded sample's command line and exit code in
data/SAMPLES.md; job ids change with every recording, so tests take them from there.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

DATA = Path(__file__).parent / "data"
# A row of SAMPLES.md: | `file name` | `command line` | exit code |
_SAMPLES_ROW = re.compile(r"^\| `([^`]+)` \| `(.*)` \| (\d+) \|$")


def sample(name: str) -> str:
    return (DATA / name).read_text()


def recorded(name: str, index: str = "SAMPLES.md") -> tuple[list[str], int]:
    """The command line and exit code that produced a recorded sample, from its index
    (SAMPLES.md, or SAMPLES-pbs.md for OpenPBS's)."""
    for line in sample(index).splitlines():
        match = _SAMPLES_ROW.match(line)
        if match and match.group(1) == name:
            return shlex.split(match.group(2).replace("\\|", "|")), int(match.group(3))
    raise LookupError(f"{name} is not in {index}")
