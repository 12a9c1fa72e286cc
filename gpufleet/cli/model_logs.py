"""``gpufleet models logs``: an instance's engine log, read through the server.

The server relays it from the instance's main worker (``GET /api/model-instances/{id}/logs``),
so this works from any machine that reaches the server. ``TARGET`` is an instance id or name,
or a deployment name when that deployment has exactly one instance.

``gpufleet instances logs`` shares the options (``TailOption``, ``FollowOption``), the timeout
(``log_timeout``) and the streaming (``stream_log``); only how the target is found differs.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import httpx
import typer

from gpufleet.cli.client import (
    DEFAULT_SERVER,
    EXIT_USAGE,
    ApiKeyOption,
    ServerOption,
    connect,
    get_json,
    refused,
)
from gpufleet.cli.errors import CommandFailed
from gpufleet.schemas.logs import LOG_TAIL_DEFAULT, LOG_TAIL_MAX


def _instance_id(client: httpx.Client, target: str) -> int:
    if target.isdigit():
        return int(target)
    instances: list[dict[str, Any]] = get_json(client, "/api/model-instances")
    named = [i for i in instances if i["name"] == target]
    if named:
        return int(named[0]["id"])
    of_model = [i for i in instances if i["model_name"] == target]
    if len(of_model) == 1:
        return int(of_model[0]["id"])
    if of_model:
        names = ", ".join(f"{i['name']} ({i['state']})" for i in of_model)
        message = f"deployment {target} has {len(of_model)} instances: {names}. Name one of them."
        raise CommandFailed(message, EXIT_USAGE)
    raise CommandFailed(f"no instance or deployment named {target!r} (see GET /api/model-instances)")


TailOption = Annotated[int, typer.Option(min=0, max=LOG_TAIL_MAX, help=f"Lines from the end (0..{LOG_TAIL_MAX})")]
FollowOption = Annotated[bool, typer.Option("--follow", "-f", help="Keep printing what the engine writes")]


def log_timeout(follow: bool) -> httpx.Timeout:
    """No read deadline while following (the engine may be quiet for long), a minute otherwise."""
    return httpx.Timeout(30.0, read=None if follow else 60.0)


def stream_log(client: httpx.Client, instance_id: int, tail: int, follow: bool) -> None:
    """Copy the instance's log to stdout as it arrives; a refusal raises the server's reason."""
    params = {"tail": str(tail), "follow": "true" if follow else "false"}
    path = f"/api/model-instances/{instance_id}/logs"
    with client.stream("GET", path, params=params) as response:
        if response.status_code != 200:
            response.read()
            raise refused("GET", path, response)
        for chunk in response.iter_bytes():
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()


def logs(
    target: Annotated[str, typer.Argument(help="Instance id or name, or a deployment with one instance")],
    tail: TailOption = LOG_TAIL_DEFAULT,
    follow: FollowOption = False,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
) -> None:
    """Print an instance's engine log (llama-server's output); --follow keeps it coming."""
    with connect(server, api_key, log_timeout(follow)) as client:
        stream_log(client, _instance_id(client, target), tail, follow)
