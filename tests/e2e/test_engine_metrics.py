"""Engine metrics through the worker, and the Prometheus targets, with a real llama-server.

One chat request through the gateway, then the worker's ``/metrics`` must carry llama-server's
own counters, renamed ``gpufleet_engine_llamacpp_*`` and labelled with the model, the instance
and the worker, with the generated tokens counted. ``/api/metrics/targets`` lists that worker's
address for admins and API keys only.
"""

from __future__ import annotations

import time

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.support.engine_cluster import Engines

pytestmark = pytest.mark.e2e

PREDICTED = "gpufleet_engine_llamacpp_tokens_predicted"  # a counter: scraped as ..._total


def predicted_tokens(worker_metrics: str, instance: str) -> float | None:
    for family in text_string_to_metric_families(worker_metrics):
        if family.name == PREDICTED:
            for sample in family.samples:
                if sample.name == PREDICTED + "_total" and sample.labels.get("instance") == instance:
                    return sample.value
    return None


def test_the_worker_reexports_its_engines_metrics_and_prometheus_finds_it(engines: Engines) -> None:
    model = engines.deploy("tiny-metrics", engines.models / "llama-tiny.gguf")
    try:
        [instance] = engines.wait_running(model["id"], 1)
        key = engines.admin.post("/api/api-keys", json={"name": "tiny-metrics"}).json()["key"]
        answer = httpx.post(
            f"{engines.cluster.url}/v1/chat/completions",
            json={"model": "tiny-metrics", "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 8},
            headers={"Authorization": f"Bearer {key}"},
            timeout=60,
            trust_env=False,
        )
        assert answer.status_code == 200, answer.text
        completion_tokens = answer.json()["usage"]["completion_tokens"]
        assert completion_tokens > 0

        worker_url = f"http://127.0.0.1:{engines.cluster.worker_port}/metrics"
        deadline, text, predicted = time.monotonic() + 20, "", None
        while time.monotonic() < deadline:
            text = httpx.get(worker_url, timeout=10, trust_env=False).text
            predicted = predicted_tokens(text, instance["name"])
            if predicted:
                break
            time.sleep(0.2)
        assert predicted is not None and predicted >= completion_tokens, text
        labels = {"model": "tiny-metrics", "instance": instance["name"], "worker": "main"}
        samples = [s for f in text_string_to_metric_families(text) for s in f.samples]
        assert any(s.name == f"{PREDICTED}_total" and s.labels == labels for s in samples), text
        assert any(s.name == "gpufleet_engine_up" and s.labels == labels and s.value == 1.0 for s in samples), text
        assert text.count(f"# TYPE {PREDICTED}_total counter") == 1
        assert "llamacpp:" not in text  # no colon names: they are for recording rules

        # Prometheus service discovery: the worker's address, for admins and API keys only
        targets = f"{engines.cluster.url}/api/metrics/targets"
        assert httpx.get(targets, trust_env=False).status_code == 401
        created = engines.admin.post(
            "/api/users", json={"username": "viewer", "password": "viewer-pass-1", "role": "user"}
        )
        assert created.status_code == 201, created.text
        session = httpx.post(
            f"{engines.cluster.url}/api/auth/login",
            json={"username": "viewer", "password": "viewer-pass-1"},
            trust_env=False,
        ).json()["access_token"]
        as_user = httpx.get(targets, headers={"Authorization": f"Bearer {session}"}, trust_env=False)
        assert as_user.status_code == 403, as_user.text
        by_key = httpx.get(targets, headers={"Authorization": f"Bearer {key}"}, trust_env=False)
        by_admin = engines.admin.get("/api/metrics/targets")
        for listed in (by_key, by_admin):
            assert listed.status_code == 200, listed.text
            workers = [g for g in listed.json() if g["labels"]["role"] == "worker"]
            assert [g["labels"]["worker"] for g in workers] == ["main"]
            [worker_target] = workers[0]["targets"]
            assert worker_target.endswith(f":{engines.cluster.worker_port}")
            scraped = httpx.get(f"http://{worker_target}{workers[0]['labels']['__metrics_path__']}", trust_env=False)
            assert predicted_tokens(scraped.text, instance["name"])  # the listed address is the worker's /metrics
    finally:
        engines.admin.delete(f"/api/models/{model['id']}")
        for user in engines.admin.get("/api/users").json():
            if user["username"] == "viewer":
                engines.admin.delete(f"/api/users/{user['id']}")
