"""Hostile input for the security tests, and the tally the end-of-run summary prints.

Every test that feeds the product something hostile tries each value in `TALLY.trying`
and says what became of it: refused (an error naming the field, a 400), neutralised (taken,
but quoted, escaped or replaced so that it is inert) or accepted (taken as it was: it is
plain, like "0" for engines). tests/conftest.py prints `TALLY.summary()` after the run.
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


REFUSED, NEUTRALISED, ACCEPTED = "refused", "neutralised", "accepted"
OUTCOMES = (REFUSED, NEUTRALISED, ACCEPTED)


@dataclass
class Trial:
    """What became of one value; the test says so before its `trying` block ends."""

    outcome: str | None = None

    def refused(self) -> None:
        self.outcome = REFUSED

    def neutralised(self) -> None:
        self.outcome = NEUTRALISED

    def accepted(self) -> None:
        self.outcome = ACCEPTED

    def taken(self, changed: bool) -> None:
        """Taken: neutralised if the product had to change it (quote, escape, replace),
        accepted if it went on as it was."""
        self.outcome = NEUTRALISED if changed else ACCEPTED


@dataclass
class Tally:
    """How many hostile inputs the run tried, and what became of each.

    Only refused and neutralised values were stopped; an accepted one was plain, and a
    value a test failed on was not stopped at all (listed in `let_through`).
    """

    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(OUTCOMES, 0))
    failed: int = 0
    let_through: list[str] = field(default_factory=list)

    @property
    def tried(self) -> int:
        return sum(self.counts.values()) + self.failed

    def record(self, value: object, outcome: str | None) -> None:
        """`outcome` is one of OUTCOMES, or None: the test failed on `value`."""
        if outcome is None:
            self.failed += 1
            self.let_through.append(repr(value)[:80])
        else:
            self.counts[outcome] += 1

    @contextmanager
    def trying(self, value: object, outcome: str | None = None) -> Iterator[Trial]:
        """Count `value` once the block finishes without an assertion failing, as `outcome`
        or as the block told the Trial it yields; a block that tells nothing is an error."""
        trial = Trial(outcome)
        try:
            yield trial
        except BaseException:
            self.record(value, None)
            raise
        if trial.outcome not in OUTCOMES:
            raise AssertionError(
                f"the test did not say whether {repr(value)[:60]} was refused, neutralised "
                "or accepted (TALLY.trying(value, REFUSED), or trial.refused() ...)"
            )
        self.record(value, trial.outcome)

    def summary(self) -> str:
        """The end-of-run line: every value tried, by what became of it."""
        counts = self.counts
        return (
            f"hostile inputs tried: {self.tried}; refused: {counts[REFUSED]}, "
            f"neutralised: {counts[NEUTRALISED]}, accepted as plain: {counts[ACCEPTED]}, "
            f"not stopped (a test failed): {self.failed}"
        )


TALLY = Tally()
