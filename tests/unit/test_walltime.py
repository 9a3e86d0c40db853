"""Walltime spellings at their edges, and the sentences a user reads for the wrong ones
(hubdash/walltime.py; the usual spellings are in test_options.py)."""

import pytest

from hubdash.walltime import WalltimeError, format_walltime, parse_walltime

NOT_A_DURATION = (
    "is not a duration: write minutes (90), H:MM:SS (1:30:00) or D-HH:MM:SS (1-00:00:00)"
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("0:00:01", 1),  # the shortest there is
        ("0:01", 1),
        ("0:59:59", 3599),  # 59 is the most a field holds
        ("59:59", 3599),
        ("1-0", 86400),
        ("0-1", 3600),  # D-H: hours after the day
        ("1-2:59:59", 86400 + 2 * 3600 + 59 * 60 + 59),
        ("  45  ", 2700),
        ("999999", 999999 * 60),  # six digits a field at most
    ],
)
def test_spellings_at_their_edges(text, seconds):
    assert parse_walltime(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "walltime is empty"),
        ("   ", "walltime is empty"),
        ("0", "walltime must be longer than zero"),
        ("0:00:00", "walltime must be longer than zero"),
        ("0-0", "walltime must be longer than zero"),
        ("0:60", "walltime '0:60' has more than 59 minutes or seconds in a field"),
        ("0:00:60", "walltime '0:00:60' has more than 59 minutes or seconds in a field"),
        ("60:00", "walltime '60:00' has more than 59 minutes or seconds in a field"),
        ("1:60:00", "walltime '1:60:00' has more than 59 minutes or seconds in a field"),
        ("1-2:60", "walltime '1-2:60' has more than 59 minutes or seconds in a field"),
        (" 1:60 ", "walltime '1:60' has more than 59 minutes or seconds in a field"),
    ],
)
def test_durations_out_of_range_are_refused_saying_why(text, message):
    with pytest.raises(WalltimeError) as refused:
        parse_walltime(text)
    assert str(refused.value) == message


@pytest.mark.parametrize(
    "text",
    [
        "1:2:3:4",
        "1-1:00:00:00",  # four fields after the day
        "1-x",
        "x-1",
        "1-",
        "-1",
        "1-2-3",
        "1-1:x",
        "1234567",  # seven digits
        "1:30:00s",
        "١٠",  # Arabic-Indic digits: int() reads them, no scheduler does
        "１:３０:００",  # full-width digits
    ],
)
def test_what_is_no_spelling_is_refused_with_the_spellings_we_take(text):
    with pytest.raises(WalltimeError) as refused:
        parse_walltime(text)
    assert str(refused.value) == f"walltime {text.strip()!r} {NOT_A_DURATION}"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("x" * 40, "x" * 40),  # 40 characters are shown whole
        ("x" * 41, "x" * 40 + "…"),
        (" " + "9" * 30 + "x" * 30 + " ", "9" * 30 + "x" * 10 + "…"),
    ],
)
def test_a_long_wrong_spelling_is_shown_cut_short(text, shown):
    with pytest.raises(WalltimeError) as refused:
        parse_walltime(text)
    assert str(refused.value) == f"walltime {shown!r} {NOT_A_DURATION}"


@pytest.mark.parametrize(
    ("seconds", "text"), [(1, "0:00:01"), (59, "0:00:59"), (3600, "1:00:00"), (86400, "24:00:00")]
)
def test_walltime_is_written_as_hours_minutes_seconds(seconds, text):
    assert format_walltime(seconds) == text
    assert parse_walltime(text) == seconds
