"""The engines' own Prometheus metrics, re-exported on the worker's ``/metrics``.

Operators scrape workers (``GET /api/metrics/targets`` lists them), never engine ports: those
change with every restart and answer only requests bearing the instance's engine API key. So
when the worker's ``/metrics`` is scraped, the worker scrapes each engine it runs as main worker
(llama-server serves ``/metrics`` because it runs with ``--metrics``), all at once, each within
``SCRAPE_TIMEOUT`` (key lookup included). An engine that fails or is slow is left out of that
answer, and ``gpufleet_engine_up`` says so (0), so one stuck engine never stalls the scrape.

Re-exported series:

- are renamed ``gpufleet_engine_<engine name with every invalid character as _>``:
  ``llamacpp:prompt_tokens_total`` becomes ``gpufleet_engine_llamacpp_prompt_tokens_total``
  (a colon is reserved for recording rules);
- carry ``model``, ``instance`` and ``worker`` labels (gpufleet's, over any the engine set);
- come with one ``# HELP``/``# TYPE`` per family, however many engines report it;
- counters always end in ``_total`` (prometheus_client's parser adds it where an engine left it
  off, e.g. llama.cpp's ``n_tokens_max``).

The engine's API key comes from the server's worker-only route and is remembered per instance
(it is derived from the instance id and never changes); a 401 forgets it.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

import httpx
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from gpufleet.schemas.instances import InstancePublic
from gpufleet.schemas.states import InstanceState
from gpufleet.worker.client import ServerRejected, ServerUnavailable

logger = logging.getLogger(__name__)

PREFIX = "gpufleet_engine_"
SCRAPE_TIMEOUT = 1.0  # seconds per engine, its API key lookup included
LABELS = ("model", "instance", "worker")
_INVALID = re.compile(r"[^a-zA-Z0-9_]")

# The instance's engine API key (the worker's ``ServerClient.engine_key``).
KeyLookup = Callable[[int], Awaitable[str]]


def exported_name(name: str) -> str:
    """``llamacpp:prompt_tokens_total`` → ``gpufleet_engine_llamacpp_prompt_tokens_total``."""
    return PREFIX + _INVALID.sub("_", name)


@dataclass(frozen=True)
class EngineTarget:
    """One engine to scrape: its instance, its ``/metrics`` URL and the labels its series get."""

    instance_id: int
    url: str
    labels: dict[str, str]


def engine_targets(
    instances: Iterable[InstancePublic], worker_id: int | None, worker: str, host: str
) -> list[EngineTarget]:
    """The running instances whose engine this worker runs (as main worker), reached at ``host``."""
    if worker_id is None:
        return []
    where = f"[{host}]" if ":" in host else host
    return [
        EngineTarget(
            i.id, f"http://{where}:{i.port}/metrics", {"model": i.model_name, "instance": i.name, "worker": worker}
        )
        for i in instances
        if i.state == InstanceState.RUNNING and i.worker_id == worker_id and i.port is not None
    ]


def parse(text: str) -> list[Metric]:
    """An engine's exposition text as metric families; raises ``ValueError`` for text that is none."""
    return list(text_string_to_metric_families(text))


def relabel(scraped: Sequence[tuple[dict[str, str], list[Metric]]]) -> list[Metric]:
    """Each engine's families, renamed and labelled, merged into one family per name."""
    families: dict[str, Metric] = {}
    for labels, parsed in scraped:
        for family in parsed:
            name = exported_name(family.name)
            merged = families.get(name)
            if merged is None:
                merged = families[name] = Metric(name, family.documentation, family.type)
            for s in family.samples:
                merged.samples.append(
                    Sample(exported_name(s.name), {**s.labels, **labels}, s.value, s.timestamp, s.exemplar)
                )
    return list(families.values())


class _Families:
    """A collector over metric families already built (one scrape's)."""

    def __init__(self, families: list[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


class EngineScraper:
    """Scrapes the engines of one worker on demand; remembers their API keys."""

    def __init__(self, key_for: KeyLookup, timeout: float = SCRAPE_TIMEOUT) -> None:
        self.key_for = key_for
        self.timeout = timeout
        self.keys: dict[int, str] = {}
        self.client = httpx.AsyncClient(trust_env=False)

    async def close(self) -> None:
        await self.client.aclose()

    async def render(self, targets: Sequence[EngineTarget]) -> bytes:
        """Every engine's metrics that answered in time, plus ``gpufleet_engine_up`` for each target."""
        for gone in self.keys.keys() - {t.instance_id for t in targets}:
            del self.keys[gone]
        answers = await asyncio.gather(*(self._scrape(t) for t in targets))
        up = Metric(
            PREFIX + "up", "1 if the engine answered the worker's scrape of its /metrics in time, else 0", "gauge"
        )
        for target, parsed in zip(targets, answers, strict=True):
            up.add_sample(up.name, target.labels, 0.0 if parsed is None else 1.0)
        families = relabel([(t.labels, p) for t, p in zip(targets, answers, strict=True) if p is not None])
        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Families([up, *families]))
        return generate_latest(registry)

    async def _scrape(self, target: EngineTarget) -> list[Metric] | None:
        """The engine's metric families; None (logged) when they cannot be had within the timeout."""
        try:
            async with asyncio.timeout(self.timeout):
                return await self._fetch(target)
        except TimeoutError:
            logger.info("engine metrics of %s: no answer within %.1f s", target.labels["instance"], self.timeout)
        except (httpx.HTTPError, ValueError) as exc:  # ValueError: text the parser refuses
            logger.info("engine metrics of %s: %s", target.labels["instance"], exc)
        except (ServerRejected, ServerUnavailable) as exc:
            logger.info("engine metrics of %s: no API key (%s)", target.labels["instance"], exc)
        return None

    async def _fetch(self, target: EngineTarget) -> list[Metric]:
        key = self.keys.get(target.instance_id)
        if key is None:
            key = self.keys[target.instance_id] = await self.key_for(target.instance_id)
        response = await self.client.get(target.url, headers={"Authorization": f"Bearer {key}"})
        if response.status_code == 401:
            self.keys.pop(target.instance_id, None)
        response.raise_for_status()
        return parse(response.text)
