"""``GET /api/metrics/targets``: Prometheus HTTP service discovery (``http_sd_configs``).

The shape is Prometheus's, not ours: a list of target groups, each ``{"targets": ["host:port"],
"labels": {...}}``, every label value a string. Labels starting ``__`` are Prometheus's own
(``__metrics_path__``, ``__scheme__``) and are dropped after relabelling.
"""

from __future__ import annotations

from pydantic import BaseModel


class MetricsTargetGroup(BaseModel):
    targets: list[str]  # host:port, IPv6 hosts in brackets
    labels: dict[str, str]
