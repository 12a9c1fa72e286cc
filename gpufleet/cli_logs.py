"""``gpufleet models logs``: an instance's engine log, read through the server.

The server relays it from the instance's main worker (``GET /api/model-instances/{id}/logs``),
so this works from any machine that reaches the server. ``TARGET`` is an instance id or name,
or a deployment name when that deployment has exactly one instance.
"""

from __future__ import annotations

import sys
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console

from gpufleet.schemas.logs import LOG_TAIL_DEFAULT, LOG_TAIL_MAX

err = Console(stderr=True, highlight=False, soft_wrap=True)


class _Failed(Exception):
    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _detail(response: httpx.Response) -> str:
    if response.headers.get("content-type", "").startswith("application/json"):
        body = response.json()
        return str(body.get("detail", body)) if isinstance(body, dict) else str(body)
    return response.text


def _json(client: httpx.Client, path: str) -> Any:
    response = client.get(path)
    if response.status_code != 200:
        raise _Failed(f"GET {path}: HTTP {response.status_code}: {_detail(response)}")
    return response.json()


def _instance_id(client: httpx.Client, target: str) -> int:
    if target.isdigit():
        return int(target)
    instances: list[dict[str, Any]] = _json(client, "/api/model-instances")
    named = [i for i in instances if i["name"] == target]
    if named:
        return int(named[0]["id"])
    of_model = [i for i in instances if i["model_name"] == target]
    if len(of_model) == 1:
        return int(of_model[0]["id"])
    if of_model:
        names = ", ".join(f"{i['name']} ({i['state']})" for i in of_model)
        raise _Failed(f"deployment {target} has {len(of_model)} instances: {names}. Name one of them.", 2)
    raise _Failed(f"no instance or deployment named {target!r} (see GET /api/model-instances)")


def _stream(client: httpx.Client, instance_id: int, tail: int, follow: bool) -> None:
    params = {"tail": str(tail), "follow": "true" if follow else "false"}
    with client.stream("GET", f"/api/model-instances/{instance_id}/logs", params=params) as response:
        if response.status_code != 200:
            response.read()
            raise _Failed(f"HTTP {response.status_code}: {_detail(response)}")
        for chunk in response.iter_bytes():
            sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()


def logs(
    target: Annotated[str, typer.Argument(help="Instance id or name, or a deployment with one instance")],
    tail: Annotated[
        int, typer.Option(min=0, max=LOG_TAIL_MAX, help=f"Lines from the end (0..{LOG_TAIL_MAX})")
    ] = LOG_TAIL_DEFAULT,
    follow: Annotated[bool, typer.Option("--follow", "-f", help="Keep printing what the engine writes")] = False,
    server: Annotated[str, typer.Option(envvar="GPUFLEET_SERVER", help="Server URL")] = "http://127.0.0.1:8080",
    api_key: Annotated[str | None, typer.Option(envvar="GPUFLEET_API_KEY", help="An admin's API key")] = None,
) -> None:
    """Print an instance's engine log (llama-server's output); --follow keeps it coming."""
    if not api_key:
        err.print("[bold red]error:[/] an admin API key is needed: --api-key or GPUFLEET_API_KEY")
        raise typer.Exit(2)
    timeout = httpx.Timeout(30.0, read=None if follow else 60.0)
    with httpx.Client(
        base_url=server.rstrip("/"), headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout
    ) as client:
        try:
            _stream(client, _instance_id(client, target), tail, follow)
        except _Failed as exc:
            err.print(f"[bold red]error:[/] {exc}")
            raise typer.Exit(exc.code) from None
        except httpx.HTTPError as exc:
            err.print(f"[bold red]error:[/] talking to {server}: {type(exc).__name__} {exc}")
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            raise typer.Exit(130) from None
