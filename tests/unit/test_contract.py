"""The hub-job contract: what one side writes, the other reads back the same; what the user
may have written instead is refused or handed over as written, for the hub to check."""

import json

import pytest

from hubdash.job.contract import (
    ENGINE_STATES,
    EngineReport,
    HubRoute,
    ServerAddress,
    decode_env,
    encode_env,
    hub_urls_at,
)


@pytest.mark.parametrize(
    "record",
    [
        ServerAddress("123.srv", "cn1", 41234, pid=77, written=1700000000.5),
        HubRoute("10.213.0.2", 4567),
        *(EngineReport(4, 2, state, "2 of 4 up", "7", "10.0.0.5", 1.0) for state in ENGINE_STATES),
    ],
)
def test_what_one_side_writes_the_other_reads_back(record):
    assert type(record).decode(record.encode()) == record


def test_the_environment_goes_through_whole():
    env = {"JUPYTERHUB_API_TOKEN": "t", "JUPYTERHUB_SERVICE_PREFIX": "/user/ä/"}
    assert decode_env(encode_env(env)) == env


@pytest.mark.parametrize("text", ["[]", '"x"', '{"A": null}', '{"A": ["b"]}', "{"])
def test_an_environment_of_anything_but_names_and_text_is_refused(text):
    with pytest.raises(ValueError):
        decode_env(text)


@pytest.mark.parametrize("port", ["8081", True, None, -1, 1.5])
def test_the_servers_address_is_handed_over_as_written_for_the_hub_to_check(port):
    raw = json.dumps({"job_id": 7, "host": ["cn1"], "port": port, "pid": "x"})
    address = ServerAddress.decode(raw)
    assert (address.job_id, address.host, address.port, address.pid) == ("7", ["cn1"], port, 0)


@pytest.mark.parametrize("text", ["[]", "{}", '{"host": "cn1"}', '{"port": 8081}', "{", b"\xff"])
def test_a_connection_file_without_a_host_and_a_port_is_none(text):
    with pytest.raises(ValueError):
        ServerAddress.decode(text)


@pytest.mark.parametrize(
    "text", ["[]", '{"host": "login"}', '{"host": "", "port": 1}', '{"host": "l", "port": 65536}']
)
def test_a_route_that_is_no_usable_address_is_refused(text):
    with pytest.raises(ValueError):
        HubRoute.decode(text)


def test_an_engine_report_in_no_known_state_is_never_made():
    with pytest.raises(ValueError, match="not one of"):
        EngineReport(4, 0, "almost")


def test_hub_urls_keep_their_scheme_and_path_and_only_they_move():
    env = {
        "JUPYTERHUB_API_URL": "https://hub.example.org:8081/hub/api",
        "JUPYTERHUB_ACTIVITY_URL": "",
        "JUPYTERHUB_SERVICE_URL": "https://127.0.0.1:0/user/alice/",
    }
    assert hub_urls_at(env, "login1:4567") == {"JUPYTERHUB_API_URL": "https://login1:4567/hub/api"}
