"""Walltime spellings users type, read into seconds.

Pure text handling: no knowledge of queues or limits.
"""

from __future__ import annotations

import re

# ASCII digits only: str.isdigit and \d also take "١٠" and "１０", which no scheduler reads.
_NUMBER = re.compile(r"^[0-9]{1,6}$")


class WalltimeError(ValueError):
    """A walltime that is not in any spelling we accept."""


def parse_walltime(text: str) -> int:
    """Seconds for a walltime in the usual batch-system spellings.

    Plain minutes, ``MM:SS``, ``H:MM:SS``, ``D-H``, ``D-H:MM`` and ``D-H:MM:SS``,
    as Slurm reads them; the same spellings work for PBS once normalised.

    >>> parse_walltime("90")
    5400
    >>> parse_walltime("1:30:00")
    5400
    >>> parse_walltime("10:00")
    600
    >>> parse_walltime("1-00:00:00")
    86400
    >>> parse_walltime("2-12")
    216000
    >>> parse_walltime("1-2:30")
    95400
    """
    value = text.strip()
    if not value:
        raise WalltimeError("walltime is empty")
    days = 0
    if "-" in value:
        day_part, _, value = value.partition("-")
        if not _NUMBER.match(day_part) or not value:
            raise WalltimeError(_spelling_error(text))
        days = int(day_part)
        parts = value.split(":")
        if len(parts) > 3 or not all(_NUMBER.match(p) for p in parts):
            raise WalltimeError(_spelling_error(text))
        hours, minutes, seconds = ([int(p) for p in parts] + [0, 0])[:3]
    else:
        parts = value.split(":")
        if len(parts) > 3 or not all(_NUMBER.match(p) for p in parts):
            raise WalltimeError(_spelling_error(text))
        numbers = [int(p) for p in parts]
        if len(numbers) == 1:
            hours, minutes, seconds = 0, numbers[0], 0
        elif len(numbers) == 2:
            hours, (minutes, seconds) = 0, numbers
        else:
            hours, minutes, seconds = numbers
    if len(parts) > 1 and (minutes > 59 or seconds > 59):
        raise WalltimeError(
            f"walltime {text.strip()!r} has more than 59 minutes or seconds in a field"
        )
    total = ((days * 24 + hours) * 60 + minutes) * 60 + seconds
    if total <= 0:
        raise WalltimeError("walltime must be longer than zero")
    return total


def format_walltime(seconds: int) -> str:
    """Walltime as H:MM:SS, the spelling every scheduler accepts.

    >>> format_walltime(5400)
    '1:30:00'
    >>> format_walltime(90061)
    '25:01:01'
    """
    hours, rest = divmod(int(seconds), 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}"


def _spelling_error(text: str) -> str:
    shown = text.strip()
    if len(shown) > 40:
        shown = shown[:40] + "…"
    return (
        f"walltime {shown!r} is not a duration: write minutes (90), "
        "H:MM:SS (1:30:00) or D-HH:MM:SS (1-00:00:00)"
    )
