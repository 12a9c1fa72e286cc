"""The OpenAI-compatible gateway with the official ``openai`` client, against real llama-server engines.

One ``gpufleet start`` with the engines fixture; tiny generated GGUF models (random weights), so
assertions are on structure (token counts, finish reasons, chunks, which instance answered), never
on text. Each test deploys under its own names and deletes what it deployed.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pytest

from gpufleet.server.gateway.proxy import INSTANCE_HEADER
from testkit.synthetic import preset, scaled, write_model
from tests.support.engine_cluster import GATEWAY_TIMEOUT, Engines, alive, engine_headers

pytestmark = pytest.mark.e2e

HI = [{"role": "user", "content": "Say something."}]
# Random weights may pick end-of-text at once: generate exactly max_tokens where counts are asserted.
EXACT = {"ignore_eos": True}


def api_key(engines: Engines, name: str, **limits: Any) -> str:
    created = engines.admin.post("/api/api-keys", json={"name": name, **limits})
    assert created.status_code == 201, created.text
    return str(created.json()["key"])


def client(engines: Engines, key: str) -> openai.OpenAI:
    return openai.OpenAI(
        base_url=f"{engines.cluster.url}/v1",
        api_key=key,
        max_retries=0,
        http_client=httpx.Client(trust_env=False, timeout=60),
    )


@pytest.fixture
def chat_model(engines: Engines) -> Iterator[dict[str, Any]]:
    """Two running replicas of the tiny llama model, named ``gw-chat``."""
    model = engines.deploy("gw-chat", engines.models / "llama-tiny.gguf", replicas=2)
    engines.wait_running(model["id"], 2)
    yield model
    engines.admin.delete(f"/api/models/{model['id']}")


def usage_of(engines: Engines, group_by: str) -> list[dict[str, Any]]:
    response = engines.admin.get("/api/usage", params={"group_by": group_by})
    assert response.status_code == 200, response.text
    rows: list[dict[str, Any]] = response.json()
    return rows


def test_the_openai_client_lists_chats_completes_and_streams(engines: Engines, chat_model: dict[str, Any]) -> None:
    key = api_key(engines, "gw-client")
    gpt = client(engines, key)
    assert "gw-chat" in [m.id for m in gpt.models.list().data]
    assert gpt.models.retrieve("gw-chat").id == "gw-chat"
    with pytest.raises(openai.NotFoundError) as unknown:
        gpt.models.retrieve("gw-chta")
    assert "did you mean 'gw-chat'" in unknown.value.message

    answer = gpt.chat.completions.create(model="gw-chat", messages=HI, max_tokens=8, temperature=0, extra_body=EXACT)
    assert answer.model == "gw-chat" and answer.usage is not None
    assert answer.usage.completion_tokens == 8 and answer.usage.prompt_tokens > 0
    assert answer.choices[0].finish_reason == "length"

    text = gpt.completions.create(
        model="gw-chat", prompt="Once upon a time", max_tokens=5, temperature=0, extra_body=EXACT
    )
    assert text.usage is not None and text.usage.completion_tokens == 5

    # a stream without stream_options: the usage chunk the gateway asked for is not passed on
    chunks = list(
        gpt.chat.completions.create(model="gw-chat", messages=HI, max_tokens=6, stream=True, extra_body=EXACT)
    )
    assert len(chunks) >= 3 and all(c.usage is None for c in chunks)
    assert chunks[-1].choices and chunks[-1].choices[0].finish_reason in ("length", "stop")
    # asked for: the last chunk carries it
    chunks = list(
        gpt.chat.completions.create(
            model="gw-chat",
            messages=HI,
            max_tokens=6,
            stream=True,
            stream_options={"include_usage": True},
            extra_body=EXACT,
        )
    )
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 6
    assert all(c.usage is None for c in chunks[:-1])

    by_model = {row["model_name"]: row for row in usage_of(engines, "model")}
    assert by_model["gw-chat"]["requests"] >= 4
    # 8 + 5 + 6 + 6 completion tokens from this test's four requests (other tests may add theirs)
    assert by_model["gw-chat"]["completion_tokens"] >= 25 and by_model["gw-chat"]["prompt_tokens"] > 0
    [by_key] = [row for row in usage_of(engines, "key") if row["api_key_name"] == "gw-client"]
    # both streams counted their tokens, including the one whose client never saw its usage
    assert by_key["requests"] == 4 and by_key["completion_tokens"] == 25 and by_key["username"] == "admin"

    metrics = httpx.get(f"{engines.cluster.url}/metrics", trust_env=False).text
    assert 'gpufleet_gateway_requests_total{code="200",model="gw-chat",route="chat/completions"}' in metrics
    assert 'gpufleet_gateway_time_to_first_token_seconds_count{model="gw-chat"}' in metrics
    assert 'gpufleet_gateway_tokens_total{kind="completion",model="gw-chat"}' in metrics


async def test_the_async_client_streams_too(engines: Engines, chat_model: dict[str, Any]) -> None:
    gpt = openai.AsyncOpenAI(
        base_url=f"{engines.cluster.url}/v1",
        api_key=api_key(engines, "gw-async"),
        max_retries=0,
        http_client=httpx.AsyncClient(trust_env=False, timeout=60),
    )
    answer = await gpt.chat.completions.create(model="gw-chat", messages=HI, max_tokens=4, extra_body=EXACT)
    assert answer.usage is not None and answer.usage.completion_tokens == 4
    stream = await gpt.chat.completions.create(model="gw-chat", messages=HI, max_tokens=4, stream=True)
    pieces = [chunk async for chunk in stream]
    assert pieces[-1].choices[0].finish_reason in ("length", "stop")
    await gpt.close()


def test_embeddings_from_a_bert_model(engines: Engines) -> None:
    shape = scaled(preset("bert-base"), n_layer=2, n_embd=128, n_ff=256, n_head=4, n_head_kv=4, n_vocab=1024)
    model = engines.deploy("gw-embed", write_model(engines.models / "gw-bert.gguf", shape))
    try:
        engines.wait_running(model["id"], 1)
        gpt = client(engines, api_key(engines, "gw-embed"))
        vectors = gpt.embeddings.create(model="gw-embed", input=["hello world", "goodbye"])
        assert [len(item.embedding) for item in vectors.data] == [128, 128]
        assert vectors.usage.prompt_tokens > 0
    finally:
        engines.admin.delete(f"/api/models/{model['id']}")


def test_rerank_from_a_reranker_model(engines: Engines) -> None:
    shape = scaled(
        preset("bge-reranker-v2-m3"),
        n_layer=2,
        n_embd=128,
        n_ff=256,
        n_head=4,
        n_head_kv=4,
        n_vocab=2048,
        n_ctx_train=512,
    )
    model = engines.deploy("gw-rerank", write_model(engines.models / "gw-reranker.gguf", shape))
    try:
        engines.wait_running(model["id"], 1)
        headers = {"Authorization": f"Bearer {api_key(engines, 'gw-rerank')}"}
        documents = ["the cat sat", "on a mat", "hello"]
        ranked = httpx.post(
            f"{engines.cluster.url}/v1/rerank",
            json={"model": "gw-rerank", "query": "cat", "documents": documents},
            headers=headers,
            timeout=60,
            trust_env=False,
        )
        assert ranked.status_code == 200, ranked.text
        assert sorted(r["index"] for r in ranked.json()["results"]) == [0, 1, 2]
        by_model = {row["model_name"]: row for row in usage_of(engines, "model")}
        assert by_model["gw-rerank"]["requests"] == 1
    finally:
        engines.admin.delete(f"/api/models/{model['id']}")


def test_requests_go_to_the_replica_that_is_not_busy(engines: Engines) -> None:
    # a model slow enough (8 layers of 512) that a long generation is still running while we look
    shape = scaled(preset("llama-tiny"), n_layer=8, n_embd=512, n_ff=1536, n_head=8, n_head_kv=4)
    model = engines.deploy("gw-busy", write_model(engines.models / "gw-slow.gguf", shape), replicas=2)
    try:
        instances = engines.wait_running(model["id"], 2)
        names = {x["name"] for x in instances}
        key = api_key(engines, "gw-busy")
        headers = {"Authorization": f"Bearer {key}"}
        long = {"model": "gw-busy", "messages": HI, "max_tokens": 1500, "stream": True, "ignore_eos": True}
        with (
            httpx.Client(base_url=engines.cluster.url, headers=headers, timeout=60, trust_env=False) as http,
            http.stream("POST", "/v1/chat/completions", json=long) as streaming,
        ):
            busy = streaming.headers[INSTANCE_HEADER]
            assert busy in names
            lines = streaming.iter_lines()  # kept: a discarded iterator would close the stream
            next(lines)  # the generation has begun
            # Frozen until we have looked, so it is busy however fast this machine generates.
            [engine] = [x["pid"] for x in instances if x["name"] == busy]
            os.kill(engine, signal.SIGSTOP)
            served = []
            try:
                for _ in range(4):
                    short = http.post(
                        "/v1/chat/completions", json={"model": "gw-busy", "messages": HI, "max_tokens": 2}
                    )
                    assert short.status_code == 200, short.text
                    served.append(short.headers[INSTANCE_HEADER])
            finally:
                os.kill(engine, signal.SIGCONT)
            # round robin would have sent two of the four to the busy one
            assert served == [(names - {busy}).pop()] * 4
    finally:
        engines.admin.delete(f"/api/models/{model['id']}")


def test_a_client_that_goes_away_mid_stream_frees_the_engine(engines: Engines) -> None:
    shape = scaled(preset("llama-tiny"), n_layer=8, n_embd=512, n_ff=1536, n_head=8, n_head_kv=4)
    model = engines.deploy("gw-cancel", write_model(engines.models / "gw-slow.gguf", shape))
    try:
        [instance] = engines.wait_running(model["id"], 1)
        engine_metrics = f"http://127.0.0.1:{instance['port']}/metrics"
        engine = engine_headers(instance["pid"])  # /metrics of an engine wants its key too
        long = {"model": "gw-cancel", "messages": HI, "max_tokens": 1500, "stream": True, "ignore_eos": True}
        headers = {"Authorization": f"Bearer {api_key(engines, 'gw-cancel')}"}
        with (
            httpx.Client(base_url=engines.cluster.url, headers=headers, timeout=60, trust_env=False) as http,
            http.stream("POST", "/v1/chat/completions", json=long) as streaming,
        ):
            lines = streaming.iter_lines()
            next(lines)
            assert processing(engine_metrics, engine) == 1
        gone = time.monotonic()  # the client closed its connection
        while processing(engine_metrics, engine) and time.monotonic() - gone < 1.0:
            time.sleep(0.02)
        assert processing(engine_metrics, engine) == 0, "the engine still generates for a client that left"
    finally:
        engines.admin.delete(f"/api/models/{model['id']}")


def processing(metrics_url: str, headers: dict[str, str]) -> int:
    text = httpx.get(metrics_url, headers=headers, trust_env=False, timeout=10).text
    [line] = [x for x in text.splitlines() if x.startswith("llamacpp:requests_processing ")]
    return int(float(line.split()[1]))


def test_an_engine_that_stops_answering_gets_a_504_not_a_hang(engines: Engines) -> None:
    model = engines.deploy("gw-stalled", engines.models / "llama-tiny.gguf")
    [instance] = engines.wait_running(model["id"], 1)
    gpt = client(engines, api_key(engines, "gw-stalled"))
    os.kill(instance["pid"], signal.SIGSTOP)  # alive, connected, silent
    try:
        started = time.monotonic()
        with pytest.raises(openai.APIStatusError) as late:
            gpt.chat.completions.create(model="gw-stalled", messages=HI, max_tokens=2)
        assert late.value.status_code == 504 and "did not answer in time" in late.value.message
        assert time.monotonic() - started < GATEWAY_TIMEOUT + 5
    finally:
        os.kill(instance["pid"], signal.SIGCONT)
    try:
        assert gpt.chat.completions.create(model="gw-stalled", messages=HI, max_tokens=2).usage is not None
    finally:
        engines.admin.delete(f"/api/models/{model['id']}")


def test_requests_keep_succeeding_when_an_engine_dies(engines: Engines, chat_model: dict[str, Any]) -> None:
    gpt = client(engines, api_key(engines, "gw-failover"))
    assert gpt.chat.completions.create(model="gw-chat", messages=HI, max_tokens=2).usage is not None
    victim = engines.instances(chat_model["id"])[0]
    # A running instance's pid is its live engine's (finding 14: an engine that lost its port to another
    # was once reported running, with the pid of a process already exiting).
    assert victim["state"] == "running" and alive(victim["pid"]), victim
    os.kill(victim["pid"], signal.SIGKILL)
    for _ in range(8):  # the gateway still lists the dead one until its worker reports the crash
        answer = gpt.chat.completions.with_raw_response.create(model="gw-chat", messages=HI, max_tokens=2)
        assert answer.headers[INSTANCE_HEADER] != victim["name"]
    # and the crashed engine is restarted: waited for by its new pid, never by a listing that may predate the crash
    engines.wait(
        chat_model["id"],
        lambda xs: (
            len(xs) == 2
            and all(x["state"] == "running" and alive(x["pid"]) for x in xs)
            and all(x["pid"] != victim["pid"] for x in xs)
        ),
        "the killed engine restarted under a new pid",
    )
