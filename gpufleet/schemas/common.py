"""Base classes and field validators shared by the wire models."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

from gpufleet.common.labels import validate_label, validate_worker_name


class RequestModel(BaseModel):
    """A body sent by a client: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PublicModel(BaseModel):
    """A body returned by the API; built from ORM rows."""

    model_config = ConfigDict(from_attributes=True)


def _labels(value: dict[str, str]) -> dict[str, str]:
    for key, label in value.items():
        validate_label(key, label)
    return value


Labels = Annotated[dict[str, str], AfterValidator(_labels)]
WorkerName = Annotated[str, AfterValidator(validate_worker_name)]
