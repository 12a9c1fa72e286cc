"""How ``SpecFlags`` become the JSON body of ``POST /api/models`` (and its preview) or of a ``PATCH``.

The four source options map to different API fields per source (``--repo`` is
``huggingface_repo_id`` or ``modelscope_model_id``); ``SOURCE_OPTIONS`` is that table. The source
is ``--source`` when given, else the one already known (the ``--from-json`` body, or the stored
deployment for an update), else the one the options imply (``--path`` local, ``--name`` Ollama,
``--repo`` Hugging Face).

Bad usage is caught here, before the server sees it, and is exit 2 with a line in the command
line's own terms (``--repo does not apply to --source ollama``); what only the server can judge
(bounds, engine flags, a path outside the allowed dirs) is its 422, exit 1.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any

from gpufleet.cli.client import EXIT_USAGE
from gpufleet.cli.errors import CommandFailed
from gpufleet.cli.model_options import SpecFlags
from gpufleet.common.labels import parse_labels
from gpufleet.schemas.models import ALL_SOURCE_FIELDS, SOURCE_FIELDS, ModelSource

SOURCE_NAMES: dict[str, ModelSource] = {
    "hf": ModelSource.HUGGINGFACE,
    "huggingface": ModelSource.HUGGINGFACE,
    "modelscope": ModelSource.MODELSCOPE,
    "ms": ModelSource.MODELSCOPE,
    "ollama": ModelSource.OLLAMA_LIBRARY,
    "ollama_library": ModelSource.OLLAMA_LIBRARY,
    "local": ModelSource.LOCAL_PATH,
    "local_path": ModelSource.LOCAL_PATH,
}
# Per source: which source option fills which API field (the first one listed is required).
SOURCE_OPTIONS: dict[ModelSource, dict[str, str]] = {
    ModelSource.HUGGINGFACE: {"repo": "huggingface_repo_id", "file": "huggingface_filename"},
    ModelSource.MODELSCOPE: {"repo": "modelscope_model_id", "file": "modelscope_file_path"},
    ModelSource.OLLAMA_LIBRARY: {"ollama_name": "ollama_library_model_name"},
    ModelSource.LOCAL_PATH: {"path": "local_path"},
}
OPTION_NAMES = {"repo": "--repo", "file": "--file", "ollama_name": "--name", "path": "--path"}
IMPLIED_SOURCE = {
    "path": ModelSource.LOCAL_PATH,
    "ollama_name": ModelSource.OLLAMA_LIBRARY,
    "repo": ModelSource.HUGGINGFACE,
}
SOURCE_HINT = (
    "--source hf --repo X [--file '*Q4_K_M.gguf'], --source ollama --name llama3.2:1b or --source local --path FILE"
)
# Options that are a field as they are: option name = API field.
PLAIN_FIELDS = (
    "backend",
    "ctx_size",
    "description",
    "replicas",
    "placement_strategy",
    "cpu_offloading",
    "min_replicas",
    "max_replicas",
    "idle_timeout",
    "priority",
    "max_concurrent_requests",
    "max_queue",
    "queue_timeout",
)


def usage(message: str) -> CommandFailed:
    return CommandFailed(message, EXIT_USAGE)


def spec_body(flags: SpecFlags, known_source: str | None = None) -> dict[str, Any]:
    """The API fields ``flags`` give (nothing else); ``source`` is in it when it was chosen or implied."""
    body: dict[str, Any] = {}
    for name in PLAIN_FIELDS:
        value = getattr(flags, name)
        if value is not None:
            body[name] = value.value if isinstance(value, Enum) else value
    if flags.distributed is not None:
        body["distributed_inference_across_workers"] = flags.distributed
    if flags.backend_parameter is not None:
        body["backend_parameters"] = list(flags.backend_parameter)
    if flags.worker_selector is not None:
        body["worker_selector"] = _labels(flags.worker_selector)
    if flags.gpu_selector is not None:
        devices = [d.strip() for item in flags.gpu_selector for d in item.split(",") if d.strip()]
        body["gpu_selector"] = {"device_ids": devices} if devices else None
    return body | _source_fields(flags, known_source)


def whole_spec(flags: SpecFlags, name: str | None, from_json: Path | None) -> dict[str, Any]:
    """The whole deployment for a create or a preview: ``--from-json``'s body, overridden by the options."""
    base = _read_json(from_json) if from_json else {}
    given = spec_body(flags, base.get("source"))
    if "source" in given and given["source"] != base.get("source"):
        base = {k: v for k, v in base.items() if k not in ALL_SOURCE_FIELDS}
    body = base | given | ({"name": name} if name else {})
    if "source" not in body:
        raise usage(f"say where the model comes from: {SOURCE_HINT}")
    check_source_complete(body)
    return body


def check_source_complete(body: Mapping[str, Any]) -> None:
    """``body`` (a whole spec, or an update that switches source) has its source's required field."""
    source = ModelSource(body["source"])
    required = SOURCE_FIELDS[source][0][0]
    if body.get(required) is None:
        option = next(o for o, f in SOURCE_OPTIONS[source].items() if f == required)
        raise usage(f"--source {_short(source)} needs {OPTION_NAMES[option]}")


def _source_fields(flags: SpecFlags, known_source: str | None) -> dict[str, Any]:
    given = {option: getattr(flags, option) for option in OPTION_NAMES if getattr(flags, option) is not None}
    if flags.source is not None:
        if flags.source not in SOURCE_NAMES:
            raise usage(f"--source {flags.source} is not a source: use hf, modelscope, ollama or local")
        source: ModelSource | None = SOURCE_NAMES[flags.source]
    elif known_source is not None:
        source = ModelSource(known_source)
    else:
        implied = {IMPLIED_SOURCE[o] for o in given if o in IMPLIED_SOURCE}
        if len(implied) > 1:
            options = " and ".join(OPTION_NAMES[o] for o in given)
            raise usage(f"{options} belong to different sources: choose one with --source")
        source = implied.pop() if implied else None
    if source is None:
        if given:
            raise usage(f"{OPTION_NAMES[next(iter(given))]} needs a source: {SOURCE_HINT}")
        return {}
    allowed = SOURCE_OPTIONS[source]
    for option in given:
        if option not in allowed:
            takes = " and ".join(OPTION_NAMES[o] for o in allowed)
            raise usage(f"{OPTION_NAMES[option]} does not apply to --source {_short(source)} (it takes {takes})")
    fields = {allowed[option]: value for option, value in given.items()}
    chosen = flags.source is not None or known_source is None
    return ({"source": source.value} if chosen else {}) | fields


def _short(source: ModelSource) -> str:
    return next(name for name, value in SOURCE_NAMES.items() if value == source)


def _labels(items: list[str]) -> dict[str, str]:
    labels: dict[str, str] = {}
    for item in items:
        try:
            labels |= parse_labels(item)
        except ValueError as exc:
            raise usage(f"--worker-selector: {exc}") from None
    return labels


def _read_json(path: Path) -> dict[str, Any]:
    try:
        body = json.loads(path.read_text())
    except OSError as exc:
        raise usage(f"--from-json {path}: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise usage(f"--from-json {path} is not JSON: {exc}") from None
    if not isinstance(body, dict):
        raise usage(f"--from-json {path} must hold one JSON object (the POST /api/models body)")
    return body
