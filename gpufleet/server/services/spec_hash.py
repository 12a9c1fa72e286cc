"""A deployment's spec fingerprint: which changes replace its instances.

Every spec field counts except ``replicas`` (scaling adds or removes instances of the same spec),
``description`` (nothing runs differently) and the on-demand fields (bounds, idleness, priority,
queueing: they act in the server, not in the engine). ``name`` counts: it is the OpenAI ``model`` id and
the engine's ``--alias``, and each instance carries it (``model_name``), so a rename rolls too.

Invariants:
- The fingerprint is stored (``models.spec_hash``) and changes only when a counted field changes
  (see ``services.models.update_model``). Adding a spec field to gpufleet later therefore rolls
  nothing on upgrade, and a deployment created before fingerprints existed keeps ``NULL`` — as do
  its instances — until its first real change.
- An instance records the fingerprint it was created for (``model_instances.spec_hash``); it is
  *current* when that equals its deployment's, ``NULL`` equal to ``NULL``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from gpufleet.schemas.models import ModelSpec

# Scaling and the gateway's queueing change how many instances run and how requests reach them,
# never how an engine runs.
NOT_ROLLED = frozenset(
    {
        "replicas",
        "description",
        "min_replicas",
        "max_replicas",
        "idle_timeout",
        "priority",
        "max_concurrent_requests",
        "max_queue",
        "queue_timeout",
    }
)
ROLLED_FIELDS = tuple(field for field in ModelSpec.model_fields if field not in NOT_ROLLED)


def spec_hash(spec: Mapping[str, Any]) -> str:
    """16 hex digits of SHA-256 over the counted fields as canonical JSON (stable across processes)."""
    payload = {field: spec.get(field) for field in ROLLED_FIELDS}
    encoded = json.dumps(payload, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(encoded.encode()).hexdigest()[:16]
