"""The shipped Grafana dashboard and Prometheus config use only series gpufleet really exports.

The exported set is computed from the code, not written down: the gateway's registry, the
server's ``/metrics`` rendered over an empty database, the worker's own gauges, and the engine
series the worker re-exports from a recorded llama-server ``/metrics`` answer. Each family's
sample names follow from its type (a counter ``x`` is scraped as ``x_total``, a histogram as
``x_bucket``/``x_sum``/``x_count``…). Then every PromQL expression of the dashboard (panels and
template variables) is read for the metric names it selects.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import yaml
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

from gpufleet.db.migrate import upgrade
from gpufleet.db.session import Database
from gpufleet.server import metrics as server_metrics
from gpufleet.server.gateway.metrics import GatewayMetrics
from gpufleet.worker.app import render_metrics
from gpufleet.worker.engine_metrics import EngineScraper, parse, relabel

ROOT = Path(__file__).parent.parent.parent
DASHBOARD = ROOT / "deploy" / "grafana" / "gpufleet.json"
PROMETHEUS = ROOT / "deploy" / "prometheus.yml"
SAMPLE = ROOT / "tests" / "fixtures" / "llama_server_metrics.txt"

SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "gauge": ("",),
    "unknown": ("",),
}
# Series Prometheus makes itself for every target (not gpufleet's): "targets down" reads ``up``.
PROMETHEUS_OWN = {"up"}

KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset", "and", "or", "unless"}
IDENTIFIER = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


def sample_names(families: Iterable[Metric]) -> set[str]:
    return {f.name + suffix for f in families for suffix in SUFFIXES[f.type]}


async def exported(tmp_path: Path) -> set[str]:
    db = Database(f"sqlite:///{tmp_path / 'gpufleet.db'}")
    try:
        await upgrade(db)
        server = (await server_metrics.render(db, leader=True)).decode()
    finally:
        await db.dispose()
    worker = render_metrics("w", "ready", None, []).decode()
    scraper = EngineScraper(key_for=_no_key)
    try:
        engine_up = (await scraper.render([])).decode()
    finally:
        await scraper.close()
    engine = relabel([({"model": "m", "instance": "i", "worker": "w"}, parse(SAMPLE.read_text()))])
    texts = [server, worker, engine_up]
    families = [f for text in texts for f in text_string_to_metric_families(text)]
    return sample_names([*families, *GatewayMetrics().registry.collect(), *engine])


async def _no_key(instance_id: int) -> str:
    raise AssertionError(f"no engine is scraped here (asked for instance {instance_id})")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (label matchers, grouping labels, functions,
    keywords, strings, ranges and numbers left out)."""
    text = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)  # strings: label values, $variables
    text = re.sub(r"\{[^}]*\}", "{}", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", "[]", text)  # ranges, $__rate_interval
    text = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", " ", text)
    text = re.sub(r"\blabel_values\s*\(\s*([a-zA-Z_:][a-zA-Z0-9_:]*)\s*,[^)]*\)", r"\1", text)  # Grafana's
    names = set()
    for match in IDENTIFIER.finditer(text):
        name, after = match.group(), text[match.end() :].lstrip()
        if after.startswith("(") or name in KEYWORDS:
            continue  # a function, an aggregation, a keyword
        if match.start() > 0 and (text[match.start() - 1].isdigit() or text[match.start() - 1] == "."):
            continue  # the exponent or unit of a number (1e3, 5m)
        names.add(name)
    return names


def expressions(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, expr) for every panel target (rows' nested panels too) and template variable query."""

    def panels(items: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for panel in items:
            yield panel
            yield from panels(panel.get("panels", []))

    for panel in panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            yield panel["title"], target["expr"]
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            yield f"variable {variable['name']}", query["query"] if isinstance(query, dict) else query


def test_the_name_reader_finds_metrics_and_nothing_else() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (model, le) (rate(a_bucket{model=~"$model", x="b_c"}[$__rate_interval])))'
        " / on (model) group_left (kind) max without (worker) (c_total offset 5m) + 1e3 * d"
    )
    assert metric_names(expr) == {"a_bucket", "c_total", "d"}
    assert metric_names("label_values(gpufleet_gateway_requests_total, model)") == {"gpufleet_gateway_requests_total"}


async def test_every_dashboard_series_is_one_gpufleet_exports(tmp_path: Path) -> None:
    known = await exported(tmp_path) | PROMETHEUS_OWN
    assert "gpufleet_engine_llamacpp_tokens_predicted_total" in known  # the engine re-export is counted
    assert "gpufleet_gateway_time_to_first_token_seconds_bucket" in known
    dashboard = json.loads(DASHBOARD.read_text())
    found = list(expressions(dashboard))
    assert len(found) >= 20
    unknown = {(where, name) for where, expr in found for name in metric_names(expr) - known}
    assert not unknown, f"series gpufleet does not export: {sorted(unknown)}"
    used = {name for _, expr in found for name in metric_names(expr)}
    for needed in (
        "gpufleet_workers",
        "gpufleet_instances",
        "gpufleet_device_memory_bytes",
        "gpufleet_gateway_errors_total",
    ):
        assert needed in used, needed


def test_dashboard_panels_have_unique_ids_and_read_the_datasource_variable() -> None:
    dashboard = json.loads(DASHBOARD.read_text())
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]


def test_prometheus_config_discovers_targets_from_gpufleet_with_an_api_key() -> None:
    config = yaml.safe_load(PROMETHEUS.read_text())
    [job] = [j for j in config["scrape_configs"] if j["job_name"] == "gpufleet"]
    [discovery] = job["http_sd_configs"]
    assert discovery["url"].endswith("/api/metrics/targets")
    assert discovery["authorization"]["credentials_file"]
    assert job["honor_labels"] is True  # the engine series' own instance/worker labels stay as they are
