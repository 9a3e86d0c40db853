"""The spawn form's HTML: offered queues, last choices, kept entries, extras; no scheduler query."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from html.parser import HTMLParser
from types import SimpleNamespace

import pytest
from tornado import web
from traitlets.config import Config

from hubdash.serverstate import RecentChoice, ServerState
from hubdash.spawner import formpage
from hubdash.spawner.formoptions import check_user_options
from hubdash.spawner.jobspawner import JobSpawner

TABLE = {
    "debug": {"max_walltime": "1:00:00", "default_walltime": "0:30:00", "max_nodes": 2},
    "batch": {"max_walltime": "24:00:00", "max_nodes": 2, "users": ["bob"]},
    "gpu": {"max_walltime": "4:00:00", "max_nodes": 2, "max_gpus": 2, "max_memory": "64G"},
}


class Page(HTMLParser):
    """Elements by id (tag, attributes, text) and the options of every select."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.by_id: dict[str, dict] = {}
        self.options: dict[str, list[dict]] = {}
        self._open: list[dict] = []
        self._select = ""
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        element = {"tag": tag, **{k: (v if v is not None else "") for k, v in attrs}, "text": ""}
        if "id" in element:
            self.by_id[element["id"]] = element
        if tag == "select":
            self._select = element.get("id", "")
            self.options[self._select] = []
        if tag == "option":
            self.options[self._select].append(element)
        if tag not in ("input", "br", "meta"):
            self._open.append(element)

    def handle_endtag(self, tag):
        if self._open:
            self._open.pop()

    def handle_data(self, data):
        for element in self._open:
            element["text"] += data

    def text(self, element_id: str) -> str:
        return " ".join(self.by_id[element_id]["text"].split())


def make_spawner(user="alice", user_options=None, others=None, server="", **settings) -> JobSpawner:
    config = Config()
    config.JobSpawner.queues = TABLE
    config.JobSpawner.scheduler_precheck = False  # no scheduler here to ask
    for key, value in settings.items():
        config.JobSpawner[key] = value
    orm_spawners = {
        name: SimpleNamespace(user_options=options, started=started, last_activity=None)
        for name, (options, started) in (others or {}).items()
    }
    spawner = JobSpawner(
        config=config,
        user=SimpleNamespace(name=user, groups=[], orm_spawners=orm_spawners),
        hub=SimpleNamespace(base_url="/hub/"),
        orm_spawner=SimpleNamespace(name=server, server=None, state=None) if server else None,
    )
    spawner.user_options = user_options or {}

    def no_scheduler():
        raise AssertionError("rendering the form asked the cluster")

    spawner._cluster = no_scheduler
    return spawner


def render(spawner) -> Page:
    return Page(formpage.render_options_form(spawner))


def test_only_the_queues_a_user_may_use_are_offered():
    assert [o["value"] for o in render(make_spawner("alice")).options["queue"]] == ["debug", "gpu"]
    bob = render(make_spawner("bob")).options["queue"]
    assert [o["value"] for o in bob] == ["debug", "batch", "gpu"]


def test_a_fresh_form_shows_the_first_queues_defaults_and_limits():
    page = render(make_spawner())
    assert page.by_id["walltime"]["value"] == "0:30:00"
    assert page.by_id["nodes"]["value"] == "1" and page.by_id["nodes"]["max"] == "2"
    assert "walltime up to 1:00:00" in page.text("queue-limits")
    limits = json.loads(page.by_id["hubdash-queue-data"]["text"])
    assert [q["name"] for q in limits] == ["debug", "gpu"]
    assert limits[1]["max_gpus"] == 2 and limits[1]["max_memory_text"] == "64G"


def test_the_servers_last_choices_are_pre_filled():
    last = {"queue": "gpu", "walltime": "2:00:00", "nodes": 2, "engines": 0}
    page = render(make_spawner(user_options=last))
    selected = [o["value"] for o in page.options["queue"] if "selected" in o]
    assert selected == ["gpu"]
    assert page.by_id["walltime"]["value"] == "2:00:00"
    assert page.by_id["nodes"]["value"] == "2"


def test_a_new_server_starts_from_the_users_latest_choices_elsewhere():
    others = {
        "": ({"queue": "debug", "walltime": "0:10:00", "nodes": 1}, datetime(2026, 1, 1)),
        "big": ({"queue": "gpu", "walltime": "3:00:00", "nodes": 2}, datetime(2026, 2, 1)),
        "never": (None, None),
    }
    page = render(make_spawner(others=others))
    assert page.by_id["walltime"]["value"] == "3:00:00"


def test_earlier_choices_that_break_todays_limits_fall_back_to_the_defaults_and_are_named():
    last = {"queue": "debug", "walltime": "9:00:00", "nodes": 2, "partition": "x"}
    page = render(make_spawner(user_options=last))
    assert page.by_id["walltime"]["value"] == "0:30:00"
    assert page.by_id["nodes"]["value"] == "2"
    assert page.text("hubdash-dropped").endswith(
        "queue 'debug' allows at most 1:00:00 of walltime; you asked for 9:00:00"
    )


def test_a_removed_queue_of_the_last_choices_is_named():
    page = render(make_spawner(user_options={"queue": "long", "walltime": "30"}))
    assert "there is no queue 'long'; choose one of: debug, gpu" in page.text("hubdash-dropped")


def test_last_choices_that_still_fit_are_filled_in_without_a_word():
    page = render(make_spawner(user_options={"queue": "debug", "walltime": "45"}))
    assert "hubdash-dropped" not in page.by_id


def test_a_refused_form_comes_back_with_its_entries_and_the_error_next_to_the_field():
    spawner = make_spawner()
    with pytest.raises(Exception) as caught:
        asyncio.run(
            spawner.options_from_form(
                {"queue": ["debug"], "walltime": ["2:00:00"], "nodes": ["2"], "engines": ["0"]}
            )
        )
    assert caught.value.status_code == 400
    assert "walltime" in caught.value.jupyterhub_message
    page = render(spawner)
    assert page.by_id["walltime"]["value"] == "2:00:00"
    assert page.by_id["nodes"]["value"] == "2"
    assert "is-invalid" in page.by_id["walltime"]["class"]
    assert page.text("walltime-feedback") == (
        "queue 'debug' allows at most 1:00:00 of walltime; you asked for 2:00:00"
    )
    # Shown once: the next page is a fresh form again.
    assert render(spawner).by_id["walltime"]["value"] == "0:30:00"


def test_a_refused_opt_url_shows_the_form_with_its_entries():
    spawner = make_spawner()
    with pytest.raises(Exception) as caught:
        asyncio.run(spawner.options_from_query({"queue": ["batch"], "walltime": ["45"]}))
    assert caught.value.status_code == 400
    page = render(spawner)
    assert "may not submit to queue 'batch'" in page.text("queue-feedback")
    assert page.by_id["walltime"]["value"] == "45"


def test_a_refused_form_reads_the_same_in_the_hubs_log_and_above_the_form():
    # JupyterHub logs str(error); a '%' the user typed stays one '%'.
    with pytest.raises(web.HTTPError) as caught:
        asyncio.run(make_spawner().options_from_form({"queue": ["50%"], "walltime": ["30"]}))
    refusal = "Please correct the form: queue: there is no queue '50%'; choose one of: debug, gpu"
    assert str(caught.value) == f"HTTP 400: Bad Request ({refusal})"
    assert caught.value.jupyterhub_message == f"The server was not started. {refusal}"


def test_refused_api_options_read_the_same_in_the_hubs_log_and_the_answer():
    with pytest.raises(web.HTTPError) as caught:
        asyncio.run(check_user_options(make_spawner(), {"queue": "50%"}))
    refusal = "Invalid options: queue: there is no queue '50%'; choose one of: debug, gpu"
    assert caught.value.status_code == 400
    assert str(caught.value) == f"HTTP 400: Bad Request ({refusal})"
    assert caught.value.jupyterhub_message == refusal


def test_the_form_checks_extras_against_the_users_own_accounts():
    spawner = make_spawner(form_extras=["account"], accounts={"alice": ["proj1"]})
    sent = {"queue": ["debug"], "walltime": ["30"], "account": ["proj1"]}
    assert asyncio.run(spawner.options_from_form(sent))["account"] == "proj1"


def test_a_refused_form_fills_only_the_form_of_its_own_server():
    refused = {"queue": ["debug"], "walltime": ["2:00:00"], "nodes": ["2"], "engines": ["0"]}
    gpu = make_spawner(server="gpu")
    with pytest.raises(web.HTTPError):
        asyncio.run(gpu.options_from_form(refused))
    # The user's other servers, and another user's server of that name, get a fresh form.
    for other in (make_spawner(), make_spawner(server="big"), make_spawner("bob", server="gpu")):
        page = render(other)
        assert page.by_id["walltime"]["value"] == "0:30:00"
        assert "is-invalid" not in page.by_id["walltime"]["class"]
    page = render(gpu)
    assert page.by_id["walltime"]["value"] == "2:00:00"
    assert "is-invalid" in page.by_id["walltime"]["class"]


def test_extras_show_their_fields_with_the_queues_choices():
    spawner = make_spawner(
        form_extras=["account", "memory", "gpus"], accounts={"alice": ["proj1", "proj2"]}
    )
    page = render(spawner)
    accounts = [o["value"] for o in page.options["account-select"]]
    assert accounts == ["", "proj1", "proj2"]
    assert "hidden" in page.by_id["account-text"] and "disabled" in page.by_id["account-text"]
    assert "hidden" in page.by_id["gpus-group"]  # debug has no GPUs
    assert page.by_id["memory"]["name"] == "memory"


def test_typed_accounts_get_a_text_field():
    page = render(make_spawner(form_extras=["account"]))
    assert "hidden" not in page.by_id["account-text"]
    assert "hidden" in page.by_id["account-select"]


def test_the_page_points_its_script_at_the_hubs_queue_api():
    page = render(make_spawner())
    form = page.by_id["hubdash-form"]
    assert form["data-queues-url"] == "/hub/api/hubdash/queues"
    assert form["data-estimate-url"] == "/hub/api/hubdash/estimate"
    assert form["data-check-url"] == "/hub/api/hubdash/check"
    assert page.by_id["hubdash-queue-status"]["data-state"] == "loading"


class Presets(HTMLParser):
    """The preset buttons: their text and the options each fills in."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.buttons: list[dict] = []
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        if "hubdash-preset" in (attributes.get("class") or ""):
            self.buttons.append({"options": json.loads(attributes["data-options"]), "text": ""})

    def handle_data(self, data):
        if self.buttons and not self.buttons[-1]["text"]:
            self.buttons[-1]["text"] = data.strip()


def test_the_form_offers_the_users_recent_choices_as_presets_newest_first():
    def state(walltime: str, at: float) -> dict:
        recent = [RecentChoice({"queue": "debug", "walltime": walltime, "nodes": 1}, at)]
        return ServerState(recent_choices=recent).to_state()

    spawner = make_spawner()
    spawner.user.orm_spawners = {
        "": SimpleNamespace(state=state("0:10:00", 1.0), user_options=None, started=None),
        "b": SimpleNamespace(state=state("0:20:00", 2.0), user_options=None, started=None),
    }
    html = formpage.render_options_form(spawner)
    buttons = Presets(html).buttons
    assert [b["text"] for b in buttons] == [
        "debug · 0:20:00 · 1 node(s)",
        "debug · 0:10:00 · 1 node(s)",
    ]
    assert buttons[0]["options"] == {"queue": "debug", "walltime": "0:20:00", "nodes": "1"}


def test_a_user_without_earlier_starts_gets_no_presets():
    assert "hubdash-presets" not in render(make_spawner()).by_id
