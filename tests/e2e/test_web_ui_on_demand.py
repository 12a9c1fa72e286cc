"""An on-demand deployment in the web UI, in a real headless Chromium against a real ``gpufleet start``
with no worker: deployed from the form's "On demand / autoscale" choice, its first /v1 request seen
on the model page live (the "load" event, read again on the model's watch event, and the pending
instance, no reload), its "loading 1" badge (no reload either), then turned back into fixed replicas from the edit form.

No worker can run it, so the instance the first request asks for stays pending and the request
answers 503 once its queue timeout (1 s here) runs out: enough to see every scaling signal without
an engine. Screenshots go to ``tests/artifacts/ui``."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from testkit.synthetic import preset, write_model
from tests.support.browser import choose, chromium, missing_reason, screenshot
from tests.support.processes import GpufleetProcess, ports

pytestmark = pytest.mark.e2e

PASSWORD = "on-demand-admin-password"  # a bootstrap password: no forced change at the first sign-in
QUEUE_TIMEOUT_S = 1
NO_EVENTS = "No events yet: loads, unloads, scaling and evictions appear here."


@dataclass
class Site:
    url: str
    model_path: Path

    def api(self) -> httpx.Client:
        """An admin client with a session token (the gateway takes it as well as an API key)."""
        login = httpx.post(
            f"{self.url}/api/auth/login", json={"username": "admin", "password": PASSWORD}, trust_env=False
        )
        assert login.status_code == 200, login.text
        token = login.json()["access_token"]
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {token}"}, trust_env=False)


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    """A server without a worker (nothing ever runs), allowed to read the generated tiny model."""
    why = missing_reason()
    if why:
        pytest.skip(why)
    models = tmp_path / "models"
    write_model(models / "tiny.gguf", preset("llama-tiny"))
    (server_port,) = ports(1)
    process = GpufleetProcess(
        [
            *("--host", "127.0.0.1", "--port", str(server_port), "--disable-worker"),
            *("--data-dir", str(tmp_path / "data"), "--bootstrap-password", PASSWORD),
            *("--allowed-model-dirs", str(models)),
        ],
        tmp_path / "server.log",
    ).start()
    url = f"http://127.0.0.1:{server_port}"
    try:
        process.wait_http(f"{url}/healthz")
        yield Site(url, models / "tiny.gguf")
    finally:
        process.kill()


def test_an_on_demand_model_loads_on_its_first_request_and_goes_back_to_fixed(site: Site) -> None:
    with chromium() as browser:
        page = browser.new_page(base_url=site.url, viewport={"width": 1400, "height": 1000})
        sign_in(page)
        model_id = deploy_on_demand(page, site.model_path)
        with site.api() as admin:
            model = admin.get(f"/api/models/{model_id}").json()
            # What the form sent: bounds 0–1, unloaded after 30 s idle, a request waits 1 s at most.
            assert (model["min_replicas"], model["max_replicas"], model["replicas"]) == (0, 1, 0), model
            assert (model["idle_timeout"], model["queue_timeout"]) == (30, QUEUE_TIMEOUT_S), model

            # Before any request: on demand, bounds 0–1, no load yet.
            expect(page.get_by_text("on demand", exact=True)).to_be_visible()
            expect(page.get_by_text("0–1", exact=True)).to_be_visible()  # an en dash
            expect(page.get_by_role("heading", name="Events")).to_be_visible()
            expect(page.get_by_text(NO_EVENTS)).to_be_visible()
            expect(page.get_by_text("loading 1", exact=True)).to_have_count(0)
            screenshot(page, "30-on-demand-deployed")

            # The first request raises the replicas 0→1; with no worker it waits its queue timeout.
            started = time.monotonic()
            answer = admin.post(
                "/v1/chat/completions",
                json={"model": "tiny", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4},
                timeout=60,
            )
            waited = time.monotonic() - started
            assert answer.status_code == 503, answer.text
            # It waited its 1 s queue timeout (not refused at once, nor the default 120 s): about 1.02 s.
            assert QUEUE_TIMEOUT_S - 0.1 <= waited < 30, waited

        # No reload: the model's watch event makes the events list read again, and the instance the
        # request asked for arrives with its own watch event, pending (no worker can take it).
        events = page.get_by_role("table", name="Model events")
        expect(events.get_by_text("load", exact=True)).to_be_visible(timeout=15_000)
        expect(page.get_by_text(NO_EVENTS)).to_have_count(0)
        instance = page.get_by_role("row").filter(has_text="not placed")
        expect(instance.get_by_text("pending", exact=True)).to_be_visible(timeout=15_000)
        screenshot(page, "31-on-demand-loaded")

        # "loading 1" counts the live instances (the pending one arrived with its watch event): no reload.
        expect(page.get_by_text("loading 1", exact=True)).to_be_visible(timeout=15_000)
        expect(page.get_by_text("on demand", exact=True)).to_be_visible()
        page.reload()  # clears the deploy's toasts, which may cover the Edit button
        expect(page.get_by_text("loading 1", exact=True)).to_be_visible(timeout=15_000)
        screenshot(page, "32-on-demand-loading")

        # Back to fixed replicas.
        page.get_by_role("button", name="Edit", exact=True).click()
        dialog = page.get_by_role("dialog")
        dialog.get_by_label("Fixed replicas").check()
        expect(dialog.get_by_label("Min replicas", exact=True)).to_have_count(0)
        dialog.get_by_role("button", name="Save changes").click()
        expect(dialog).to_be_hidden()
        expect(page.get_by_text("on demand", exact=True)).to_have_count(0, timeout=15_000)
        expect(page.get_by_text("0–1", exact=True)).to_have_count(0)
        expect(page.get_by_role("button", name="Save replicas")).to_be_visible()  # fixed: the person's number
        screenshot(page, "33-on-demand-back-to-fixed")
        with site.api() as admin:
            model = admin.get(f"/api/models/{model_id}").json()
            assert (model["min_replicas"], model["max_replicas"], model["idle_timeout"]) == (None, None, None), model


def sign_in(page: Page) -> None:
    page.goto("/models")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("button", name="Deploy model")).to_be_visible()


def deploy_on_demand(page: Page, model_path: Path) -> int:
    """Deploy ``tiny`` from the form as on demand (0–1, idle 30 s, queue 1 s); returns its id."""
    page.get_by_role("button", name="Deploy model").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Name", exact=True).fill("tiny")
    choose(page, dialog.get_by_role("combobox", name="Source", exact=True), "Local path")
    dialog.get_by_label("Local path", exact=True).fill(str(model_path))
    dialog.get_by_label("On demand / autoscale").check()
    for label, value in [
        ("Min replicas", "0"),
        ("Max replicas", "1"),
        ("Idle timeout (s)", "30"),
        ("Queue timeout (s)", str(QUEUE_TIMEOUT_S)),
    ]:
        dialog.get_by_label(label, exact=True).fill(value)
    screenshot(page, "29-on-demand-form")
    dialog.get_by_role("button", name="Deploy", exact=True).click()
    expect(page).to_have_url(re.compile(r"/models/\d+$"))
    found = re.search(r"/models/(\d+)$", page.url)
    assert found, page.url
    return int(found.group(1))
