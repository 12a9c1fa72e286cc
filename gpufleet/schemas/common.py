"""Base classes and field validators shared by the wire models."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict

WORKER_NAME = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")


class RequestModel(BaseModel):
    """A body sent by a client: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class PublicModel(BaseModel):
    """A body returned by the API; built from ORM rows."""

    model_config = ConfigDict(from_attributes=True)


def validate_worker_name(value: str) -> str:
    if not WORKER_NAME.match(value):
        raise ValueError(
            "worker name must be 1-63 letters, digits, '.', '_' or '-', starting and ending with a "
            "letter or digit (it becomes part of device ids like NAME:cuda:0)"
        )
    return value


def _labels(value: dict[str, str]) -> dict[str, str]:
    from gpufleet.config import validate_label

    for key, label in value.items():
        validate_label(key, label)
    return value


Labels = Annotated[dict[str, str], AfterValidator(_labels)]
WorkerName = Annotated[str, AfterValidator(validate_worker_name)]
