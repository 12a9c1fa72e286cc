"""The OpenAPI document matches what the routes answer (issue 12 finding 15).

A real ``gpufleet start --disable-worker`` process, fuzzed by schemathesis over every ``/api``
operation with a few generated requests each, signed in as the admin (by API key, so that no
generated request can end the test's own session): no answer may be a 5xx, and every answer's
status, content type, headers and body must be the ones the document declares.

Left out: the streaming routes (``/api/watch`` never ends; instance logs follow) and the changes
that would pull the test's own credential away (``DELETE``/``PATCH`` of API keys: the key in use
could be revoked or expire). Everything else runs, destructive or not: the admin cannot delete or
demote itself, and a password change needs the current password.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import FailureGroup
from schemathesis.core.result import Ok
from schemathesis.generation.modes import GenerationMode
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.gpufleet_cluster import Cluster

EXAMPLES_PER_OPERATION = 8
LEFT_OUT = {
    ("GET", "/api/watch"),
    ("GET", "/api/model-instances/{instance_id}/logs"),
    ("PATCH", "/api/api-keys/{key_id}"),
    ("DELETE", "/api/api-keys/{key_id}"),
}
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]


@pytest.fixture
def cluster(tmp_path: Path) -> Any:
    cluster = Cluster(tmp_path)
    cluster.start_server("--disable-worker")
    try:
        yield cluster
    finally:
        for process in cluster.processes:
            process.stop()


def test_every_api_answer_matches_the_openapi_document(cluster: Cluster) -> None:
    with cluster.admin() as admin:
        key = admin.post("/api/api-keys", json={"name": "schemathesis"}).json()["key"]
    headers = {"Authorization": f"Bearer {key}"}
    schema = schemathesis.openapi.from_url(f"{cluster.url}/openapi.json", timeout=10)
    failures: list[str] = []
    ran = 0
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), f"the document has an operation schemathesis cannot read: {result}"
        operation = result.ok()
        if not operation.path.startswith("/api/") or (operation.method.upper(), operation.path) in LEFT_OUT:
            continue
        strategy = st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE)
        )

        @given(case=strategy)
        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            deadline=None,
            database=None,
            derandomize=True,  # the same requests every run: CI sees what a developer saw
            phases=[Phase.explicit, Phase.generate],
            suppress_health_check=list(HealthCheck),
        )
        def run(case: Any) -> None:
            nonlocal ran
            ran += 1
            try:
                response = case.call(base_url=cluster.url, headers=headers, timeout=30)
            except Exception as exc:  # noqa: BLE001 - a transport failure is a finding too
                failures.append(f"{case.method} {case.formatted_path}: no answer: {exc!r}")
                return
            try:
                case.validate_response(response, checks=CHECKS, headers=headers)
            except FailureGroup as group:  # collect every finding, then report them together
                found = "; ".join(re.sub(r"\s+", " ", str(failure))[:300] for failure in group.exceptions)
                failures.append(f"{case.method} {case.formatted_path} → {response.status_code}: {found}")

        run()
    assert ran >= 100
    assert not failures, f"{len(failures)} of {ran} requests broke the contract:\n" + "\n".join(failures[:30])


def test_the_document_declares_credentials_and_the_error_body(cluster: Cluster) -> None:
    document = httpx.get(f"{cluster.url}/openapi.json", trust_env=False).json()
    assert set(document["components"]["securitySchemes"]) == {"bearer", "session"}
    assert "HTTPValidationError" not in document["components"]["schemas"]
    login = document["paths"]["/api/auth/login"]["post"]
    assert login["security"] == []
    assert {"400", "401", "413", "422", "429"} <= set(login["responses"])
    assert login["responses"]["429"]["headers"]["Retry-After"]["required"] is True
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if path.startswith("/api/") and path != "/api/auth/login":
                assert operation["security"] == [{"bearer": []}, {"session": []}], (method, path)
                assert {"401", "403"} <= set(operation["responses"]), (method, path)
            for status, response in operation["responses"].items():
                if status.startswith(("4", "5")) and path.startswith("/api/"):
                    assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
