"""Hostile input for the security tests, and the tally the end-of-run summary prints.

Every test that feeds the product something hostile records each value with `TALLY.record`;
tests/conftest.py prints "hostile inputs tried: N, refused or neutralised: M" after the run.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field


def marker_name() -> str:
    """A file name no test run has used: finding it later means a payload ran."""
    return f"hubdash-pwned-{secrets.token_hex(6)}"


def payloads(marker_path: str) -> list[str]:
    """Values that would create `marker_path` if any of them reached a shell as code."""
    touch = f"touch {marker_path}"
    return [
        f"debug; {touch}",
        f"debug && {touch}",
        f"debug | {touch}",
        f"$({touch})",
        f"`{touch}`",
        f"debug\n{touch}",
        f"debug\r\n{touch}",
        f"debug\n#SBATCH --wrap='{touch}'",
        f"debug\n#PBS -l walltime=1:00:00\n{touch}",
        f"debug'; {touch}; echo '",
        f'debug"; {touch}; echo "',
        f"-p debug --wrap='{touch}'",
        f"--wrap={touch}",
        f"debug\u2028{touch}",  # a Unicode line separator
        f"debug\x00; {touch}",
        f"${{IFS}}{touch}",
        f"debug > {marker_path}",
        # Without a space, a quote, $ or ; : what a blocklist of those would let through.
        f"debug|tee>{marker_path}",
        f"{{touch,{marker_path}}}",
        f"debug&&tee<>{marker_path}",
        f"(tee>{marker_path})",
        f"debug#>{marker_path}",
    ]


# Values that are odd rather than code: unicode, sizes, look-alikes, markup.
ODD_VALUES = [
    "",
    " ",
    "déboguer",
    "ｄｅｂｕｇ",  # fullwidth letters
    "debug\u200b",  # a zero-width space
    "١٠",  # Arabic-Indic digits
    "x" * 5000,
    "9" * 5000,
    "-1",
    "0",
    "1e9",
    "NaN",
    "<script>window.hubdashPwned = 1</script>",
    '"><img src=x onerror="window.hubdashPwned=1">',
    "{{7*7}}",
    "%s%s%s%n",
    "../../../../etc/passwd",
]


@dataclass
class Tally:
    """How many hostile inputs the run tried, and how many were refused or neutralised."""

    tried: int = 0
    stopped: int = 0
    let_through: list[str] = field(default_factory=list)

    def record(self, value: object, stopped: bool) -> None:
        self.tried += 1
        if stopped:
            self.stopped += 1
        else:
            self.let_through.append(repr(value)[:80])

    @contextmanager
    def trying(self, value: object) -> Iterator[None]:
        """Count `value` as stopped when the block finishes without an assertion failing."""
        try:
            yield
        except BaseException:
            self.record(value, stopped=False)
            raise
        self.record(value, stopped=True)


TALLY = Tally()
