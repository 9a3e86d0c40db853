"""Running code in a notebook server's kernel over its REST API and websocket, as JupyterLab
does, without a browser: for tests that must time a cell precisely."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid

import requests
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect


def run_code(server_url: str, token: str, code: str, timeout: float = 20) -> str:
    """Start a kernel on the server (its URL through the hub's proxy), run `code`, return
    its stdout; the kernel is shut down afterwards. Raises on any failure."""
    headers = {"Authorization": f"token {token}"}
    answer = requests.post(f"{server_url}api/kernels", headers=headers, json={}, timeout=timeout)
    answer.raise_for_status()
    kernel = answer.json()["id"]
    try:
        return _in_thread(_execute(server_url, token, kernel, code, timeout))
    finally:
        requests.delete(f"{server_url}api/kernels/{kernel}", headers=headers, timeout=timeout)


def _in_thread(coro) -> str:
    # Playwright's sync API may hold this thread's event loop: run ours in a thread.
    result: dict = {}

    def run() -> None:
        try:
            result["value"] = asyncio.run(coro)
        except BaseException as exc:  # handed back to the caller
            result["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if "error" in result:
        raise result["error"]
    return result["value"]


async def _execute(server_url: str, token: str, kernel: str, code: str, timeout: float) -> str:
    ws_url = server_url.replace("http", "ws", 1) + f"api/kernels/{kernel}/channels"
    request = HTTPRequest(ws_url, headers={"Authorization": f"token {token}"})
    async with asyncio.timeout(timeout):
        ws = await websocket_connect(request)
        msg_id = uuid.uuid4().hex
        ws.write_message(json.dumps(_execute_request(msg_id, code)))
        out = []
        while True:
            raw = await ws.read_message()
            if raw is None:
                raise ConnectionError("the kernel's websocket closed")
            msg = json.loads(raw)
            if msg.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind = msg["header"]["msg_type"]
            if kind == "stream":
                out.append(msg["content"]["text"])
            elif kind == "error":
                raise RuntimeError("\n".join(msg["content"]["traceback"]))
            elif kind == "status" and msg["content"]["execution_state"] == "idle":
                ws.close()
                return "".join(out)


def _execute_request(msg_id: str, code: str) -> dict:
    return {
        "header": {
            "msg_id": msg_id,
            "msg_type": "execute_request",
            "username": "test",
            "session": uuid.uuid4().hex,
            "version": "5.3",
        },
        "parent_header": {},
        "metadata": {},
        "channel": "shell",
        "buffers": [],
        "content": {
            "code": code,
            "silent": False,
            "store_history": False,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        },
    }
