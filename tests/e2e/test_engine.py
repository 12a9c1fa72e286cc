"""Deployed models really serve: the worker runs llama.cpp's llama-server for each instance.

One ``gpufleet start`` (server + embedded worker on loopback) with the llama-server that
``gpufleet engines install llama.cpp`` built; tiny generated GGUF models with random weights.
Assertions are on structure (states, pids, ports, token counts), never on generated text.
"""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import httpx
import psutil
import pytest

from testkit.synthetic import preset, scaled, write_model
from tests.support.engine_cluster import Engines, alive, chat, engine_headers

pytestmark = pytest.mark.e2e


def test_a_local_model_runs_and_answers_through_its_engine(engines: Engines) -> None:
    model = engines.deploy("tiny-chat", engines.models / "llama-tiny.gguf")
    [instance] = engines.wait_running(model["id"], 1)
    assert instance["worker_name"] == "main" and instance["port"] and instance["pid"]
    assert instance["state_message"] is None
    engine = psutil.Process(instance["pid"])
    cmdline = engine.cmdline()
    assert Path(cmdline[0]).name == "llama-server"
    assert cmdline[cmdline.index("--alias") + 1] == "tiny-chat"
    assert cmdline[cmdline.index("--port") + 1] == str(instance["port"])
    assert cmdline[cmdline.index("--host") + 1] == "127.0.0.1"  # the worker was started on loopback
    assert cmdline[cmdline.index("-ngl") + 1] == "0"  # a CPU placement
    assert "--metrics" in cmdline
    assert os.getsid(instance["pid"]) == instance["pid"]  # its own session: survives the worker

    answer = chat(instance, "tiny-chat")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["model"] == "tiny-chat"
    assert 1 <= body["usage"]["completion_tokens"] <= 8
    assert body["choices"][0]["finish_reason"] in ("length", "stop")

    with httpx.stream(
        "POST",
        f"http://127.0.0.1:{instance['port']}/v1/chat/completions",
        json={"model": "tiny-chat", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 4, "stream": True},
        headers=engine_headers(instance["pid"]),
        timeout=60,
        trust_env=False,
    ) as streamed:
        chunks = [line for line in streamed.iter_lines() if line.startswith("data: ")]
    assert chunks[-1] == "data: [DONE]" and len(chunks) >= 3

    logs = (engines.cluster.root / "server" / "logs" / "instances" / f"{instance['name']}.log").read_text()
    assert "llama-tiny.gguf" in logs

    # the worker reports the engine it runs: llama.cpp, its commit and backend
    [worker] = [w for w in engines.admin.get("/api/workers").json() if w["name"] == "main"]
    assert worker["engines"]["llama.cpp"].endswith("(cpu)") or "version" in worker["engines"]["llama.cpp"]


def test_scale_up_and_down_starts_and_stops_engines(engines: Engines) -> None:
    model = engines.deploy("tiny-scale", engines.models / "llama-tiny.gguf")
    engines.wait_running(model["id"], 1)
    assert engines.admin.patch(f"/api/models/{model['id']}", json={"replicas": 3}).status_code == 200
    three = engines.wait_running(model["id"], 3)
    assert len({x["port"] for x in three}) == 3 and len({x["pid"] for x in three}) == 3
    for instance in three:
        assert chat(instance, "tiny-scale").status_code == 200

    assert engines.admin.patch(f"/api/models/{model['id']}", json={"replicas": 1}).status_code == 200
    [kept] = engines.wait_running(model["id"], 1)
    gone = [x["pid"] for x in three if x["id"] != kept["id"]]
    deadline = time.monotonic() + 15
    while any(alive(pid) for pid in gone) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(pid) for pid in gone)
    assert alive(kept["pid"])

    assert engines.admin.delete(f"/api/models/{model['id']}").status_code == 204
    deadline = time.monotonic() + 15
    while alive(kept["pid"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not alive(kept["pid"])
    assert engines.instances(model["id"]) == []


def test_a_killed_engine_is_restarted(engines: Engines) -> None:
    model = engines.deploy("tiny-crash", engines.models / "llama-tiny.gguf")
    [before] = engines.wait_running(model["id"], 1)
    os.kill(before["pid"], signal.SIGKILL)
    [after] = engines.wait(
        model["id"],
        lambda xs: len(xs) == 1 and xs[0]["state"] == "running" and xs[0]["pid"] != before["pid"],
        "the engine to be restarted",
    )
    assert after["id"] == before["id"] and after["restart_count"] == before["restart_count"] + 1
    assert chat(after, "tiny-crash").status_code == 200
    history = engines.server.output()
    assert "tiny-crash" in history


def test_a_restarted_gpufleet_adopts_running_engines(engines: Engines) -> None:
    model = engines.deploy("tiny-adopt", engines.models / "llama-tiny.gguf")
    [before] = engines.wait_running(model["id"], 1)
    engines.server.kill()  # server and embedded worker go; the engine stays (a graceful stop would end it)
    assert alive(before["pid"])
    assert chat(before, "tiny-adopt").status_code == 200

    engines.server.start()
    engines.server.wait_http(f"{engines.cluster.url}/healthz")
    engines.admin.close()
    engines.admin = engines.cluster.admin()
    engines.cluster.wait_state(engines.admin, "main", "ready")
    time.sleep(2)  # a few heartbeats: time enough to (wrongly) restart it
    [after] = engines.wait_running(model["id"], 1)
    assert after["pid"] == before["pid"] and after["port"] == before["port"]
    assert after["restart_count"] == before["restart_count"]
    assert chat(after, "tiny-adopt").status_code == 200


def test_a_model_outside_the_allowed_directories_is_refused_with_the_reason(engines: Engines) -> None:
    outside = write_model(engines.cluster.root / "elsewhere" / "llama-tiny.gguf", preset("llama-tiny"))
    # refused by the server before anything runs (the worker would refuse it too: unit tests)
    body = {"name": "tiny-outside", "source": "local_path", "local_path": str(outside), "cpu_offloading": True}
    refused = engines.admin.post("/api/models", json=body)
    assert refused.status_code == 422, refused.text
    detail = refused.json()["detail"]
    assert "outside the directories" in detail and str(engines.models) in detail, detail
    assert all(m["name"] != "tiny-outside" for m in engines.admin.get("/api/models").json())


def test_an_embedding_model_serves_embeddings(engines: Engines) -> None:
    shape = scaled(preset("bert-base"), n_layer=2, n_embd=128, n_ff=256, n_head=4, n_head_kv=4, n_vocab=1024)
    path = write_model(engines.models / "bert-tiny.gguf", shape)
    model = engines.deploy("tiny-embed", path)
    [instance] = engines.wait_running(model["id"], 1)
    assert "--embeddings" in psutil.Process(instance["pid"]).cmdline()
    answer = httpx.post(
        f"http://127.0.0.1:{instance['port']}/v1/embeddings",
        json={"model": "tiny-embed", "input": ["hello world", "goodbye"]},
        headers=engine_headers(instance["pid"]),
        timeout=60,
        trust_env=False,
    )
    assert answer.status_code == 200, answer.text
    vectors = [item["embedding"] for item in answer.json()["data"]]
    assert len(vectors) == 2 and all(len(v) == 128 for v in vectors)
