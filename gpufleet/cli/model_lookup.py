"""Find a deployment the way a person names it: by name, or by id.

A name wins over an id (a deployment may be called ``7``). A name that matches nothing is bad
usage (exit 2) and the line lists the deployments that exist, so the next try can be right.
"""

from __future__ import annotations

from typing import Any

import httpx

from gpufleet.cli.client import get_json
from gpufleet.cli.lookup import pick


def all_models(client: httpx.Client) -> list[dict[str, Any]]:
    models: list[dict[str, Any]] = get_json(client, "/api/models")
    return models


def find_model(client: httpx.Client, target: str) -> dict[str, Any]:
    """The deployment named ``target``, else the one whose id it is; exit 2 naming those that exist."""
    return pick(sorted(all_models(client), key=lambda m: str(m["name"])), target, "model")


def instances_of(client: httpx.Client, model_id: int | None = None) -> list[dict[str, Any]]:
    """Instances of one deployment, or of all when ``model_id`` is None."""
    params = {} if model_id is None else {"model_id": model_id}
    instances: list[dict[str, Any]] = get_json(client, "/api/model-instances", params)
    return instances
