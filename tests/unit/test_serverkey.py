"""Server keys: one folder and job name per server name, and a name for every key."""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from hubdash.spawner.serverkey import HASHED_KEY_LENGTHS, MAX_KEY, server_key

# Any text a hub may hold, lone surrogates too, and names long enough to be hashed.
any_name = st.one_of(
    st.text(st.characters(exclude_categories=()), max_size=80),
    st.text(st.sampled_from("aZ9_.-~ /é"), max_size=80),
)
PLAIN = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
# What PBS Pro's qsub takes in -N (after a first letter, which the job name prefix gives).
PBS_PRO_NAME_PART = re.compile(r"[A-Za-z0-9_+-]+")


def name_of(key: str) -> str | None:
    """The name a plain or escaped key stands for; None for a hashed key (only one way)."""
    if key == "default":
        return ""
    if not key.startswith("_"):
        return key
    if len(key) > MAX_KEY:
        return None
    data, rest = bytearray(), key[1:]
    while rest:
        if rest[0] == "_":
            data.append(int(rest[1:3], 16))
            rest = rest[3:]
        else:
            data.extend(rest[0].encode())
            rest = rest[1:]
    return data.decode("utf-8", "surrogatepass")


@settings(max_examples=500, deadline=None)
@example("a~b")
@example("a_b-941528e5")
@example("\ud800")
@given(any_name)
def test_a_key_reads_back_to_its_name_or_is_hashed(name):
    key = server_key(name)
    assert PBS_PRO_NAME_PART.fullmatch(key) and key[0] != "-", key
    assert name_of(key) in (name, None)
    if name_of(key) is None:
        assert len(key) in HASHED_KEY_LENGTHS
        assert key.startswith("_")
    else:
        assert len(key) <= MAX_KEY


@settings(max_examples=300, deadline=None)
@given(any_name)
def test_a_key_taken_as_a_server_name_gets_another_key(name):
    # A key is a name too: "a~b" was kept as "a_b-941528e5", itself a name kept as it was.
    key = server_key(name)
    if key != name:
        assert server_key(key) != key


@pytest.mark.parametrize(
    ("name", "key"),
    [
        ("", "default"),
        ("default", "_default"),
        ("gpu-2", "gpu-2"),
        ("my_server", "my_server"),
        ("_x", "__5fx"),
        ("a~b", "_a_7eb"),
        ("a_b-941528e5", "a_b-941528e5"),
        ("a.b", "_a_2eb"),
        (".", "__2e"),
        ("..", "__2e_2e"),
        ("-rf", "_-rf"),
        ("a/b", "_a_2fb"),
        ("a\nb", "_a_0ab"),
        ("x" * 64, "x" * 64),
    ],
)
def test_keys_of_look_alike_names(name, key):
    assert server_key(name) == key


def test_long_names_are_cut_and_hashed_apart():
    keys = {server_key("x" * n) for n in range(60, 120)} | {server_key("x" * 64 + "é")}
    assert len(keys) == 61
    hashed = server_key("x" * 65)
    assert hashed.startswith("_" + "x" * 48 + "-") and len(hashed) == 82
    assert server_key("é" * 30)[:-33] == "_" + "_c3_a9" * 8  # cut at an escape's edge
