"""Driving JupyterLab in the browser: open a notebook and run a cell, as a user would."""

from __future__ import annotations

from playwright.sync_api import Page, expect


def run_cell(page: Page, lab_url: str, code: str, marker: str) -> str:
    """Open a new notebook in JupyterLab, run one cell until its output shows `marker`."""
    page.goto(f"{lab_url}?reset")
    page.locator(".jp-LauncherCard[data-category='Notebook']").first.click(timeout=60_000)
    editor = page.locator(".jp-Notebook .jp-Cell .cm-content").first
    editor.wait_for(timeout=60_000)
    expect(page.locator(".jp-Notebook-ExecutionIndicator[data-status='idle']")).to_be_attached(
        timeout=60_000
    )
    editor.click()
    page.keyboard.insert_text(code)
    output = page.locator(".jp-OutputArea-output").first
    # JupyterLab ignores a run given before its kernel connection is up (the kernel's
    # websocket then carries no execute_request at all: the browser drops it, not the
    # tunnel); the indicator above can read idle before that. The cell is safe to rerun.
    for _attempt in range(6):
        editor.click()
        page.keyboard.press("Control+Enter")
        try:
            expect(output).to_contain_text(marker, timeout=20_000)
            break
        except AssertionError:
            continue
    expect(output).to_contain_text(marker, timeout=10_000)
    return output.inner_text()
