"""Who is calling: the principal resolved from a request's credential."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class PrincipalKind(StrEnum):
    ADMIN = "admin"  # a user with role admin (session or API key)
    USER = "user"  # a user with role user (session or API key)
    WORKER = "worker"  # a worker's own credential: acts only on that worker's resources
    CLUSTER = "cluster"  # the cluster registration token: may only register a worker


@dataclass(frozen=True)
class Principal:
    kind: PrincipalKind
    authenticated_by: str  # session | api_key | worker_credential | cluster_token
    user_id: int | None = None
    username: str | None = None
    must_change_password: bool = False
    api_key_id: int | None = None
    allowed_models: tuple[str, ...] | None = None
    requests_per_minute: int | None = None  # the API key's limits, enforced by the gateway
    tokens_per_day: int | None = None
    worker_id: int | None = None

    @property
    def identity(self) -> tuple[object, ...]:
        """Who and with which rights: equal for two requests made with the same, unchanged credential."""
        return (self.kind, self.user_id, self.api_key_id, self.worker_id)
