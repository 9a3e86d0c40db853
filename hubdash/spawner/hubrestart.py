"""What the hub does around its own restarts: tell a shutdown from a cancelled start, and once
the hub serves again, start the servers whose jobs are to be adopted, then sweep its orphans.

setup_hub(c) schedules `after_hub_start` when the hub reads its config; it waits until the
hub's REST API answers (JupyterHub has checked every server by then) and runs once. It
first moves the hub's start-up heap out of the garbage collector's way.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import time
from typing import Any
from urllib.parse import quote

from jupyterhub.utils import url_path_join

from hubdash.spawner.hubstate import hub_state_in
from hubdash.spawner.orphansweep import sweep_orphans

# Through the hub's own logger: its format, its level, its file.
log = logging.getLogger("JupyterHub.hubdash")

SERVING_TIMEOUT = 600.0  # seconds the hub may take from reading its config to serving
STARTS_AT_ONCE = 10  # restarts sent together: each one is a spawn like any other
TOKEN_SECONDS = 300  # the life of the token each restart is requested with


def hub_is_stopping() -> bool:
    """Whether JupyterHub is shutting down (SIGTERM, SIGINT): it then cancels every task,
    starts in progress too, which must then leave their jobs queued for the next hub."""
    try:
        tasks = asyncio.all_tasks()
    except RuntimeError:  # no running loop
        return False
    return any(
        getattr(task.get_coro(), "__qualname__", "").endswith(".shutdown_cancel_tasks")
        for task in tasks
    )


def schedule_after_start(app: Any) -> None:
    """Run after_hub_start(app) on the hub's loop (nothing outside a running hub)."""
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        return
    task = loop.create_task(after_hub_start(app))
    app._hubdash_after_start = task  # a task must be referenced to be kept


async def after_hub_start(app: Any) -> None:
    try:
        if not await _serving(app):
            log.error("The hub did not serve within %.0f s: no server restarted", SERVING_TIMEOUT)
            return
        # The start-up heap (every module, JupyterHub's app, SQLAlchemy's mappers: most of
        # the hub's objects) lives as long as the hub: out of the collector's way, a full
        # collection walks only what came later (under a class starting at once, full
        # collections had stalled the loop for 0.1-0.2 s).
        gc.freeze()
        await restart_adopting_servers(app)
        await sweep_orphans(app)
    except Exception:
        log.exception("The hub's after-start work failed")


async def _serving(app: Any) -> bool:
    from jupyterhub.httpclient import fetch

    deadline = time.monotonic() + SERVING_TIMEOUT
    while time.monotonic() < deadline:
        hub = getattr(app, "hub", None)
        if hub is not None and getattr(app, "http_server", None) is not None:
            try:
                response = await fetch(hub.api_url, raise_for_status=False)
                if response.status == 200:
                    return True
            except Exception as exc:  # noqa: BLE001 - not listening yet
                log.debug("Hub API not answering yet: %s", exc)
        await asyncio.sleep(0.2)
    return False


async def restart_adopting_servers(app: Any) -> None:
    """Start each server whose job is to be adopted, with its saved options, through the
    hub's own REST API (so every check and limit of a start applies), as its user."""
    state = hub_state_in(app.tornado_settings)
    wanted, state.resumes = sorted(state.resumes), set()
    if not wanted:
        return
    log.info("Starting %d server(s) again to take up their jobs", len(wanted))
    gate = asyncio.Semaphore(STARTS_AT_ONCE)

    async def one(user_name: str, server_name: str) -> None:
        async with gate:
            await _restart(app, user_name, server_name)

    await asyncio.gather(*(one(*pair) for pair in wanted))


async def _restart(app: Any, user_name: str, server_name: str) -> None:
    from jupyterhub import orm
    from jupyterhub.httpclient import fetch

    orm_user = orm.User.find(app.db, user_name)
    if orm_user is None:
        return
    user = app.users[orm_user]
    spawner = user.spawners[server_name]
    if getattr(spawner, "resume", None) is None or spawner.active:
        return  # taken up already (the user pressed Start first)
    label = f"{user_name}/{server_name}"
    token = orm_user.new_api_token(
        note=f"hubdash: start {label} again after a hub restart",
        expires_in=TOKEN_SECONDS,
        scopes=[f"servers!server={label}"],
    )
    url = url_path_join(
        app.hub.api_url, "users", quote(user_name, safe=""), "servers", quote(server_name, safe="")
    )
    body = {
        "display_name": spawner.orm_spawner.display_name or server_name,
        "user_options": spawner.orm_spawner.user_options or {},
    }
    try:
        response = await fetch(
            url,
            method="POST",
            json=body,
            headers={"Authorization": f"token {token}"},
            raise_for_status=False,
        )
        answer = (await response.text())[:500]
        status = response.status
    except Exception as exc:  # noqa: BLE001 - said to the user through the outcome
        status, answer = 0, str(exc)
    finally:
        found = orm.APIToken.find(app.db, token)
        if found is not None:
            app.db.delete(found)
            app.db.commit()
    if status in (201, 202):
        log.info("Started %s again to take up its job", label)
        return
    reason = f"HTTP {status}: {_reason(answer)}" if status else _reason(answer)
    log.error("Could not start %s again (%s)", label, reason)
    await spawner.give_up_resume(f"the hub could not start it again ({reason})")


def _reason(answer: str) -> str:
    """The message of a JupyterHub error answer (JSON), else its first line of text."""
    try:
        message = json.loads(answer).get("message")
    except (ValueError, AttributeError):
        message = None
    lines = answer.strip().splitlines()
    text = str(message or "").strip() or (lines[0] if lines else "")
    if not text or text.startswith("<"):
        return "no readable answer"
    return text[:300]
