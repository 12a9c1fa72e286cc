"""A real headless Chromium for the web UI's tests: the system's (Debian's ``chromium``), driven by
Playwright for Python, never a downloaded browser. Screenshots go to ``tests/artifacts/ui/``
(git-ignored)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Locator, Page, expect, sync_playwright

from gpufleet.server.ui_assets import built_assets

ARTIFACTS = Path(__file__).resolve().parent.parent / "artifacts" / "ui"
# The flags a root-run, offline, GPU-less Chromium needs; the network ones keep it from calling home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium_path() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


def missing_reason() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if chromium_path() is None:
        return "no system Chromium: install Debian's chromium package (scripts/ensure-chromium.sh does it as root)"
    assets = built_assets()
    if not assets.available:
        return f"{assets.problem} (make ui)"
    return None


@contextmanager
def chromium() -> Iterator[Browser]:
    executable = chromium_path()
    assert executable is not None, missing_reason()
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=executable, args=CHROMIUM_ARGS, headless=True)
        try:
            yield browser
        finally:
            browser.close()


def screenshot(page: Page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def choose(page: Page, select: Locator, option: str) -> None:
    """Pick ``option`` in a Mantine Select (a combobox input with a listbox of options)."""
    select.click()
    page.get_by_role("option", name=option, exact=True).click()
    expect(select).to_have_value(option)
