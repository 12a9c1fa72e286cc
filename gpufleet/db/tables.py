"""The tables (SQLAlchemy 2 typed ORM). Portable between SQLite and PostgreSQL.

Memory figures are integer bytes (BigInteger). Timestamps are timezone-aware
UTC and always taken from the server's clock.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from gpufleet.common.clock import as_utc, utcnow


class UtcDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC datetime on every database.

    PostgreSQL keeps the offset; SQLite stores text without one. Values are
    normalised to UTC on the way in and marked UTC on the way out, so the API
    always returns ``...Z``-style timestamps and comparisons never mix naive and aware.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return as_utc(value).astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else as_utc(value)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON, datetime: UtcDateTime()}


class Timestamped:
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)


class User(Timestamped, Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    must_change_password: Mapped[bool] = mapped_column(Boolean, default=False)


class UserSession(Base):
    """A login: the bearer token's SHA-256, so a leaked database does not leak sessions."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ApiKey(Base):
    """An API key ``gf_<key_id>_<secret>``: looked up by ``key_id``, verified by the secret's SHA-256."""

    __tablename__ = "api_keys"
    __table_args__ = (UniqueConstraint("user_id", "name", name="uq_api_keys_user_name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64))
    key_id: Mapped[str] = mapped_column(String(32), unique=True)
    secret_hash: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    allowed_models: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    # Limits the gateway enforces (HTTP 429); None = unlimited.
    requests_per_minute: Mapped[int | None] = mapped_column(Integer, nullable=True)
    tokens_per_day: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)

    user: Mapped[User] = relationship(lazy="joined")


class Worker(Timestamped, Base):
    __tablename__ = "workers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    ip: Mapped[str] = mapped_column(String(64))
    port: Mapped[int] = mapped_column(Integer)
    # What the API shows: liveness (ready | not_ready | unreachable), shown as ``maintenance`` while
    # the flag below is set and the worker is otherwise ready. A dead worker shows not_ready either way.
    state: Mapped[str] = mapped_column(String(16), index=True)
    state_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    maintenance: Mapped[bool] = mapped_column(Boolean, default=False)
    labels: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    system_reserved: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[dict[str, Any]] = mapped_column(JSON)
    credential_hash: Mapped[str] = mapped_column(String(64), unique=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True, index=True)
    # Result of the server's last probe of ip:port; None until the first probe.
    reachable: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    # SHA-256 of the API token the worker chose at this start (never the token): the server calls the
    # worker's own API (instance logs) with an HMAC of it under the cluster token
    # (``common.worker_api_token``). None for a worker too old to send one.
    api_token_hash: Mapped[str | None] = mapped_column(String(64), nullable=True)

    devices: Mapped[list[Device]] = relationship(
        back_populates="worker", cascade="all, delete-orphan", order_by="Device.sort_key", lazy="selectin"
    )


class Device(Base):
    __tablename__ = "devices"
    __table_args__ = (UniqueConstraint("worker_id", "type", "index", name="uq_devices_worker_type_index"),)

    id: Mapped[str] = mapped_column(String(96), primary_key=True)  # <worker-name>:<type>:<index>
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), index=True)
    index: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(16))
    vendor: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(255))
    uuid: Mapped[str | None] = mapped_column(String(128), nullable=True)
    memory_total: Mapped[int] = mapped_column(BigInteger)
    memory_used: Mapped[int] = mapped_column(BigInteger)
    compute_capability: Mapped[str | None] = mapped_column(String(16), nullable=True)
    unified_memory: Mapped[bool] = mapped_column(Boolean, default=False)
    simulated: Mapped[bool] = mapped_column(Boolean, default=False)
    utilization: Mapped[float | None] = mapped_column(Float, nullable=True)
    temperature: Mapped[float | None] = mapped_column(Float, nullable=True)
    cores: Mapped[int | None] = mapped_column(Integer, nullable=True)
    sort_key: Mapped[int] = mapped_column(Integer, default=0)  # GPUs first by index, CPU last
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow, onupdate=utcnow)

    worker: Mapped[Worker] = relationship(back_populates="devices")


class Model(Timestamped, Base):
    """A deployment. Its spec columns mirror ``schemas.models.ModelSpec`` one to one."""

    __tablename__ = "models"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    source: Mapped[str] = mapped_column(String(32))
    huggingface_repo_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    huggingface_filename: Mapped[str | None] = mapped_column(String(512), nullable=True)
    modelscope_model_id: Mapped[str | None] = mapped_column(String(256), nullable=True)
    modelscope_file_path: Mapped[str | None] = mapped_column(String(512), nullable=True)
    ollama_library_model_name: Mapped[str | None] = mapped_column(String(256), nullable=True)
    local_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    backend: Mapped[str | None] = mapped_column(String(16), nullable=True)
    backend_parameters: Mapped[list[Any]] = mapped_column(JSON, default=list)
    replicas: Mapped[int] = mapped_column(Integer, default=1)
    placement_strategy: Mapped[str] = mapped_column(String(16))
    cpu_offloading: Mapped[bool] = mapped_column(Boolean, default=False)
    distributed_inference_across_workers: Mapped[bool] = mapped_column(Boolean, default=True)
    worker_selector: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    gpu_selector: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    ctx_size: Mapped[int | None] = mapped_column(Integer, nullable=True)
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    # Fingerprint of the fields whose change replaces instances (services/spec_hash.py); NULL for
    # deployments created before fingerprints existed, until their first such change.
    spec_hash: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # On demand and autoscaling (schemas/models.py); NULL bounds: ``replicas`` is fixed.
    min_replicas: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_replicas: Mapped[int | None] = mapped_column(Integer, nullable=True)
    idle_timeout: Mapped[int | None] = mapped_column(Integer, nullable=True)
    priority: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    max_concurrent_requests: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_queue: Mapped[int] = mapped_column(Integer, default=100, server_default="100")
    queue_timeout: Mapped[int] = mapped_column(Integer, default=120, server_default="120")
    # Written by the gateways (coalesced, services/demand.py): when a /v1 request for it last began
    # or ended, and when its load last needed every replica it has (what scaling down waits on).
    last_request_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    busy_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    # The last change of ``replicas`` made by gpufleet itself (load, unload, autoscale, eviction): the
    # autoscaler's cool-down counts from it.
    scaled_at: Mapped[datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class ModelEvent(Base):
    """What gpufleet did to a deployment on its own and why: loads, unloads, scaling, evictions.

    Kept per deployment up to ``services.model_events.KEPT``, newest first in the API."""

    __tablename__ = "model_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    message: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class GatewayLoad(Base):
    """One server's gateway load on one deployment, refreshed every few seconds while non-zero.

    How a server sees requests other servers hold: the leader's eviction and autoscaling, and the
    queued count shown in the API, add the fresh rows of the other servers to their own live counts."""

    __tablename__ = "gateway_load"

    server_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    model_id: Mapped[int] = mapped_column(ForeignKey("models.id", ondelete="CASCADE"), primary_key=True)
    in_flight: Mapped[int] = mapped_column(Integer, default=0)
    queued: Mapped[int] = mapped_column(Integer, default=0)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime(), default=utcnow)


class ModelInstance(Timestamped, Base):
    """One replica. ``state`` and ``version`` change only through ``server.lifecycle.transition``."""

    __tablename__ = "model_instances"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(160), unique=True)
    model_id: Mapped[int | None] = mapped_column(
        ForeignKey("models.id", ondelete="SET NULL"), nullable=True, index=True
    )
    model_name: Mapped[str] = mapped_column(String(128))
    state: Mapped[str] = mapped_column(String(16), index=True)
    state_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    worker_id: Mapped[int | None] = mapped_column(
        ForeignKey("workers.id", ondelete="SET NULL"), nullable=True, index=True
    )
    worker_name: Mapped[str | None] = mapped_column(String(63), nullable=True)
    device_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)
    port: Mapped[int | None] = mapped_column(Integer, nullable=True)
    pid: Mapped[int | None] = mapped_column(Integer, nullable=True)
    claim: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    subordinates: Mapped[list[Any]] = mapped_column(JSON, default=list)
    restart_count: Mapped[int] = mapped_column(Integer, default=0)
    download_progress: Mapped[float | None] = mapped_column(Float, nullable=True)
    version: Mapped[int] = mapped_column(Integer, default=0)
    # Workers to avoid for a while after the engine kept failing there: name -> {until, failures, reason}.
    placement_backoff: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    # The engine's command line as its worker started it (shown to admins; no secrets in it).
    engine_command: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    # The deployment's spec_hash when this instance was created: it is outdated (and replaced one
    # at a time by the deployments controller) once the deployment's differs.
    spec_hash: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # vLLM across workers: where the instance's Ray cluster has its head (``host:port`` of the GCS on
    # the main worker), for the subordinates' Ray nodes to join. None for every other instance.
    ray_head: Mapped[str | None] = mapped_column(String(300), nullable=True)


class ModelFile(Timestamped, Base):
    """A model's file(s) in one worker's cache, shared by every instance that needs them there.

    ``source_key`` identifies the source (e.g. ``huggingface:org/repo:file-glob``); one row per
    (worker, source_key), so a second deployment of the same file does not download it again.
    """

    __tablename__ = "model_files"
    __table_args__ = (UniqueConstraint("worker_id", "source_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    worker_id: Mapped[int] = mapped_column(ForeignKey("workers.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(32))
    source_key: Mapped[str] = mapped_column(String(1024))
    state: Mapped[str] = mapped_column(String(16))  # downloading | ready | error
    state_message: Mapped[str | None] = mapped_column(Text, nullable=True)
    download_progress: Mapped[float | None] = mapped_column(Float, nullable=True)
    size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)  # bytes, all files together
    resolved_paths: Mapped[list[Any]] = mapped_column(JSON, default=list)  # on the worker; the engine gets [0]


class UsageRecord(Base):
    """Gateway usage per (UTC day and hour, user, API key, model): requests and tokens, summed.

    ``api_key_id`` is 0 for requests made with a session token (no key), so the unique key has no
    NULL and one upsert adds to the row; it is no foreign key, so usage outlives a deleted key.
    """

    __tablename__ = "usage_records"
    __table_args__ = (
        UniqueConstraint("day", "hour", "user_id", "api_key_id", "model_name", name="uq_usage_records_key"),
    )

    # 64-bit: on PostgreSQL every upsert takes a sequence value, conflict or not (about one per
    # active row per second). SQLite's INTEGER PRIMARY KEY is 64-bit already (and must stay INTEGER).
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True)
    day: Mapped[str] = mapped_column(String(10), index=True)  # YYYY-MM-DD, UTC
    hour: Mapped[int] = mapped_column(SmallInteger, default=0, server_default="0")  # 0-23, UTC
    user_id: Mapped[int] = mapped_column(Integer, index=True)
    api_key_id: Mapped[int] = mapped_column(Integer, default=0)
    model_name: Mapped[str] = mapped_column(String(128))
    requests: Mapped[int] = mapped_column(BigInteger, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
