"""What a newcomer does after `make run`, in a real browser and without reading any docs: open the
printed address, sign in with the printed password file, see the demo model running on the
dashboard, chat with it in the Playground, deploy a second model from the form."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect

from gpufleet.common.demo_model import INSTALL_HINT, DemoUnavailable, demo_model_file
from tests.support.browser import chromium, missing_reason, screenshot
from tests.support.engine_cluster import _engine_pids, _kill
from tests.support.engines import find_llama_server, llama_server_missing_reason
from tests.support.processes import GpufleetProcess, ports

pytestmark = pytest.mark.e2e


def test_a_newcomer_signs_in_chats_and_deploys(tmp_path: Path) -> None:
    try:
        model_file = demo_model_file()
    except DemoUnavailable:
        pytest.skip(f"the demo model's package is not installed: {INSTALL_HINT}")
    why = missing_reason() or (llama_server_missing_reason() if find_llama_server() is None else None)
    if why:
        pytest.skip(why)
    server_port, worker_port = ports(2)
    process = GpufleetProcess(
        [
            *("--demo", "--host", "127.0.0.1", "--port", str(server_port), "--worker-port", str(worker_port)),
            *("--data-dir", str(tmp_path / "data"), "--llama-server-path", str(find_llama_server())),
        ],
        tmp_path / "start.log",
    ).start()
    try:
        deadline = time.monotonic() + 60
        while "Login:" not in process.output() and time.monotonic() < deadline:
            assert process.process is not None and process.process.poll() is None, process.output()
            time.sleep(0.2)
        banner = process.output()
        address = re.search(r"Web UI:\s+(http://\S+)/", banner)
        password_file = re.search(r"password in (\S+)", banner)
        assert address and password_file, banner[-3000:]
        password = Path(password_file.group(1)).read_text().strip()

        with chromium() as browser:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(address.group(1))
            page.get_by_label("Username").fill("admin")
            page.get_by_label("Password").fill(password)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_label("Current password").fill(password)
            page.get_by_label("New password").fill("newcomer-password")
            page.get_by_role("button", name="Change password").click()

            main = page.get_by_role("main")
            expect(main).to_contain_text("1/1 replicas running", timeout=120_000)  # the demo model
            screenshot(page, "20-newcomer-dashboard")

            page.get_by_role("link", name="Playground", exact=True).click()
            expect(page.get_by_role("combobox", name="Model", exact=True)).to_have_value("smollm2")
            page.get_by_label("Temperature").fill("0")  # SmolLM2 at 0 answers "The capital of France is Paris…"
            page.get_by_label("Message", exact=True).fill("What is the capital of France? Answer in one sentence.")
            page.keyboard.press("Enter")  # Enter sends
            expect(main).to_contain_text("Paris", timeout=60_000)
            expect(page.get_by_text(re.compile(r"\d+(\.\d+)? tokens/s"))).to_be_visible()
            screenshot(page, "21-newcomer-playground")

            page.get_by_role("link", name="Models", exact=True).click()
            page.get_by_role("button", name="Deploy model").click()
            dialog = page.get_by_role("dialog")
            dialog.get_by_label("Name", exact=True).fill("second")
            dialog.get_by_role("combobox", name="Source", exact=True).click()
            page.get_by_role("option", name="Local path", exact=True).click()
            dialog.get_by_label("Local path", exact=True).fill(str(model_file))
            dialog.get_by_label("CPU offloading").check()
            dialog.get_by_role("button", name="Deploy", exact=True).click()
            expect(page.get_by_text("1/1 running")).to_be_visible(timeout=120_000)
            screenshot(page, "22-newcomer-second-model")
    finally:
        process.kill()
        for pid in _engine_pids(tmp_path):
            _kill(pid)
