"""The transport contract's shared pieces (hubdash.transport.base): the one place an argv
becomes shell text, the errors people read (a file too large, a command stopped), the bound
on command output, and the Forward its owner holds."""

from __future__ import annotations

import asyncio
import logging

import pytest

from hubdash.transport.base import (
    READ_CHUNK,
    FileTooLarge,
    Forward,
    HostKeyError,
    OutputTooLarge,
    ReadLimit,
    Transport,
    TransportError,
    command_line,
    not_regular,
    output_limit_error,
    output_text,
    read_capped,
    read_outputs,
    timeout_error,
)

# -- command_line ------------------------------------------------------------------------------


def test_a_plain_argv_is_joined_and_any_other_word_quoted():
    assert command_line(["squeue", "-h", "-j", "42"]) == "squeue -h -j 42"
    assert command_line(["echo", "a b", "$(id)", ""]) == "echo 'a b' '$(id)' ''"


@pytest.mark.parametrize(
    "argv", ["squeue -h", [], ("squeue", 42), ["echo", None], [b"echo"]], ids=repr
)
def test_anything_but_a_non_empty_list_of_strings_is_refused_naming_it(argv):
    with pytest.raises(TypeError) as caught:
        command_line(argv)
    assert str(caught.value) == f"argv must be a non-empty list of strings, not {argv!r}"


def test_a_nul_is_refused_naming_the_argument_cut_to_sixty_characters():
    value = "a\x00" + "b" * 100
    with pytest.raises(ValueError) as caught:
        command_line(["echo", "fine", value])
    shown = repr(value)[:60]
    assert str(caught.value) == (f"an argument holds a NUL character and cannot be sent: {shown}")


# -- the errors people read --------------------------------------------------------------------


def test_a_file_too_large_names_file_machine_size_and_limit():
    error = FileTooLarge("servers/s/job.log", 5000, 4096, where="login1")
    assert str(error) == (
        "servers/s/job.log on login1 is 5000 bytes, over the 4096-byte limit for a file."
    )
    assert (error.path, error.size, error.limit) == ("servers/s/job.log", 5000, 4096)
    assert isinstance(error, TransportError)


def test_a_read_limit_refuses_by_size_then_by_what_was_read():
    limit = ReadLimit("servers/s/engines.json", 100, "login1")
    assert limit.ask == 101  # one byte more shows a file that grew
    limit.check_size(100)
    with pytest.raises(FileTooLarge) as by_size:
        limit.check_size(101)
    assert str(by_size.value) == (
        "servers/s/engines.json on login1 is 101 bytes, over the 100-byte limit for a file."
    )
    assert limit.check_read(b"x" * 100) == b"x" * 100
    grown = ReadLimit("servers/s/engines.json", 100, "login1", what="an engine status file")
    with pytest.raises(FileTooLarge) as by_read:
        grown.check_read(b"x" * 101)
    assert str(by_read.value) == (
        "servers/s/engines.json on login1 is at least 101 bytes, over the 100-byte limit "
        "for an engine status file."
    )


def test_the_other_errors_name_what_and_where():
    assert str(not_regular("servers/s/job.log", "login1")) == (
        "servers/s/job.log on login1 is not a regular file; not read."
    )
    assert str(timeout_error("on login1", 2.5, "squeue -h")) == (
        "A command on login1 timed out after 2.5 s: squeue -h"
    )
    assert str(output_limit_error("on login1", "stderr", 1000, "qstat -f")) == (
        "A command on login1 printed more than 1000 bytes on stderr and was stopped: qstat -f"
    )
    error = HostKeyError("changed key", host="login1", port=2222, fingerprint="SHA256:x")
    assert (str(error), error.host, error.port, error.fingerprint) == (
        "changed key",
        "login1",
        2222,
        "SHA256:x",
    )


def test_output_is_text_whatever_it_came_as():
    assert output_text(b"caf\xc3\xa9 \xff") == "café \ufffd"
    assert output_text("as is") == "as is"
    assert output_text(None) == ""


# -- the bound on command output ---------------------------------------------------------------


def stream(*chunks: bytes):
    """A stream's read(n) giving `chunks`, then its end; the sizes asked recorded."""
    left, asked = list(chunks), []

    async def read(n: int) -> bytes:
        asked.append(n)
        await asyncio.sleep(0)
        return left.pop(0) if left else b""

    read.asked = asked
    return read


async def test_output_within_the_limit_is_read_whole_in_chunks():
    read = stream(b"a" * 60, b"b" * 40)
    assert await read_capped(read, 100, "stdout") == b"a" * 60 + b"b" * 40
    assert read.asked == [READ_CHUNK] * 3


async def test_output_past_the_limit_stops_the_read_naming_its_stream():
    read = stream(b"a" * 60, b"b" * 41, b"c")
    with pytest.raises(OutputTooLarge) as caught:
        await read_capped(read, 100, "stderr")
    assert caught.value.stream == "stderr" and caught.value.args == ("stderr",)
    assert len(read.asked) == 2  # nothing read after the chunk that passed it


async def test_both_streams_are_read_and_the_first_past_the_limit_stops_both():
    assert await read_outputs(stream(b"out"), stream(b"err"), 10) == (b"out", b"err")
    trickle = stream(*[b"x"] * 1000)  # a byte at a time: past 10 at its 11th read
    with pytest.raises(OutputTooLarge) as caught:
        await read_outputs(trickle, stream(b"e" * 11), 10)
    assert caught.value.stream == "stderr"
    assert len(trickle.asked) < 5  # stopped with stderr, not read on


# -- Forward -----------------------------------------------------------------------------------


async def test_a_forward_is_open_until_closed_and_says_so():
    forward = Forward("127.0.0.1", 40000)
    assert (forward.listen_host, forward.listen_port, forward.is_open) == ("127.0.0.1", 40000, True)
    assert not forward.may_move and forward.on_reopen is None
    assert not forward.reopened.is_set()
    assert repr(forward) == "<Forward 127.0.0.1:40000 open>"
    await forward.close()
    assert not forward.is_open
    assert repr(forward) == "<Forward 127.0.0.1:40000 closed>"


async def test_a_reopened_forward_tells_its_owner_and_a_failing_owner_is_logged(caplog):
    forward = Forward("127.0.0.1", 40000)
    told = []
    forward.on_reopen = told.append
    forward._announce_reopen()
    assert forward.reopened.is_set() and told == [forward]

    def broken(_forward):
        raise RuntimeError("owner gone")

    forward.on_reopen = broken
    with caplog.at_level(logging.ERROR, logger="hubdash.transport.base"):
        forward._announce_reopen()  # not raised: the transport goes on
    [record] = caplog.records
    assert record.getMessage() == "on_reopen callback of forward on port 40000 failed"
    assert record.exc_info[1].args == ("owner gone",)


# -- Transport.exists --------------------------------------------------------------------------


class TailOnly(Transport):
    """A transport whose only working part is read_tail, over `files`."""

    def __init__(self, files: dict[str, bytes]) -> None:
        self.files, self.tails = files, []

    async def read_tail(self, path: str, *, max_bytes: int) -> bytes:
        self.tails.append((path, max_bytes))
        if path not in self.files:
            raise FileNotFoundError(path)
        return self.files[path][-max_bytes:]

    run = read_file = write_file = remove = close = None  # type: ignore[assignment]
    open_local_forward = open_remote_forward = None  # type: ignore[assignment]


async def test_exists_by_default_reads_one_byte_of_the_file():
    transport = TailOnly({"servers/s/job.log": b"a long log"})
    assert await transport.exists("servers/s/job.log") is True
    assert await transport.exists("servers/s/connection.json") is False
    assert transport.tails == [("servers/s/job.log", 1), ("servers/s/connection.json", 1)]
