"""Driving JupyterLab in the browser: open a notebook and run a cell, as a user would."""

from __future__ import annotations

import time

from playwright.sync_api import Page, WebSocket, expect

KERNEL_CONNECT_SECONDS = 60
OUTPUT_SECONDS = 20


def run_cell(page: Page, lab_url: str, code: str, marker: str) -> str:
    """Open a new notebook in JupyterLab, wait until its kernel connection is up, run one
    cell once and wait for its output to show `marker`. A cell that gives no output in
    time fails the test, saying whether the kernel had answered at all.

    JupyterLab drops a run given before its kernel connection is up (the websocket then
    carries no execute_request), and its status indicator can read idle before that: the
    connection is up once the kernel's reply to JupyterLab's kernel_info_request has come
    over the kernel's websocket.
    """
    connected = _watch_kernel_connection(page)
    page.goto(f"{lab_url}?reset")
    page.locator(".jp-LauncherCard[data-category='Notebook']").first.click(timeout=60_000)
    editor = page.locator(".jp-Notebook .jp-Cell .cm-content").first
    editor.wait_for(timeout=60_000)
    deadline = time.monotonic() + KERNEL_CONNECT_SECONDS
    while not connected:
        assert time.monotonic() < deadline, (
            f"no kernel_info_reply over the kernel's websocket within {KERNEL_CONNECT_SECONDS} s"
        )
        page.wait_for_timeout(100)  # lets Playwright deliver the websocket's frames
    editor.click()
    page.keyboard.insert_text(code)
    page.keyboard.press("Control+Enter")
    output = page.locator(".jp-OutputArea-output").first
    expect(output).to_contain_text(marker, timeout=OUTPUT_SECONDS * 1000)
    return output.inner_text()


def _watch_kernel_connection(page: Page) -> list[str]:
    """A list that gets an entry once a kernel's websocket brings a kernel_info_reply."""
    seen: list[str] = []

    def on_socket(socket: WebSocket) -> None:
        if "/channels" not in socket.url:
            return

        def on_frame(payload: str | bytes) -> None:
            text = payload if isinstance(payload, str) else payload.decode("latin-1")
            if "kernel_info_reply" in text and not seen:
                seen.append(socket.url)

        socket.on("framereceived", on_frame)

    page.on("websocket", on_socket)
    return seen
