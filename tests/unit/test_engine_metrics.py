"""Engine metrics on the worker's /metrics: renamed, labelled, one HELP/TYPE per family (``engine_metrics``).

The input is a recorded llama-server ``/metrics`` answer (``tests/fixtures/llama_server_metrics.txt``,
the format of llama.cpp's ``server-task.cpp``: ``llamacpp:<name>``, counters and gauges).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from gpufleet.estimate.config import RunConfig
from gpufleet.estimate.gguf import read_model
from gpufleet.estimate.model_info import model_info
from gpufleet.worker.engine_metrics import exported_name, parse, relabel
from gpufleet.worker.engines.binaries import LlamaCppBinaries
from gpufleet.worker.engines.llama_cpp import server_launch
from testkit.synthetic import preset, write_model

SAMPLE = (Path(__file__).parent.parent / "fixtures" / "llama_server_metrics.txt").read_text()


class _Fixed:
    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


def _exposition(families: list[Metric]) -> str:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Fixed(families))
    return generate_latest(registry).decode()


def test_names_become_valid_prometheus_names_under_gpufleet_engine() -> None:
    assert exported_name("llamacpp:prompt_tokens_total") == "gpufleet_engine_llamacpp_prompt_tokens_total"
    assert exported_name("vllm:e2e_request_latency_seconds") == "gpufleet_engine_vllm_e2e_request_latency_seconds"
    assert exported_name("odd-name.x") == "gpufleet_engine_odd_name_x"


def test_two_engines_share_one_help_and_type_per_family_with_their_own_labels() -> None:
    a = {"model": "chat", "instance": "chat-1", "worker": "w1"}
    b = {"model": "chat", "instance": "chat-2", "worker": "w1"}
    other = SAMPLE.replace("tokens_predicted_total 8", "tokens_predicted_total 5")
    text = _exposition(relabel([(a, parse(SAMPLE)), (b, parse(other))]))
    assert text.count("# TYPE gpufleet_engine_llamacpp_tokens_predicted_total counter") == 1
    assert text.count("# HELP gpufleet_engine_llamacpp_tokens_predicted_total ") == 1
    assert "llamacpp:" not in text
    parsed = {f.name: f for f in text_string_to_metric_families(text)}
    predicted = {s.labels["instance"]: s.value for s in parsed["gpufleet_engine_llamacpp_tokens_predicted"].samples}
    assert predicted == {"chat-1": 8.0, "chat-2": 5.0}
    gauge = parsed["gpufleet_engine_llamacpp_requests_processing"]
    assert gauge.type == "gauge" and gauge.samples[0].labels == a
    # llama.cpp's counter without _total (n_tokens_max) is exported as a proper counter
    assert "gpufleet_engine_llamacpp_n_tokens_max_total" in text


def test_gpufleet_labels_win_over_an_engines_own() -> None:
    text = '# TYPE x:y gauge\nx:y{instance="engine-said",position="0"} 1\n'
    [family] = relabel([({"model": "m", "instance": "i", "worker": "w"}, parse(text))])
    assert family.samples[0].labels == {"model": "m", "instance": "i", "worker": "w", "position": "0"}


def test_llama_server_runs_with_metrics(tmp_path: Path) -> None:
    llama = model_info(read_model(write_model(tmp_path / "llama.gguf", preset("llama-tiny"), sparse=True)))
    launch = server_launch(
        LlamaCppBinaries(Path("/opt/llama-server"), Path("/opt/ggml-rpc-server"), "test"),
        model_path=Path("/m/llama.gguf"),
        alias="chat",
        info=llama,
        config=RunConfig(ctx_size=512, parallel=1),
        claim={},
        device_ids=[],
        host="127.0.0.1",
        port=40001,
        api_key="gfe_secret",
    )
    assert "--metrics" in launch.command  # what the worker's scrape of the engine's /metrics needs
