"""API keys on the gateway, against a real engine: scopes, expiry and limits, as the OpenAI client sees them."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import openai
import pytest

from tests.e2e.test_gateway import HI, api_key, client
from tests.support.engine_cluster import Engines

pytestmark = pytest.mark.e2e


@pytest.fixture
def keyed_model(engines: Engines) -> Iterator[dict[str, Any]]:
    model = engines.deploy("gw-keys", engines.models / "llama-tiny.gguf")
    engines.wait_running(model["id"], 1)
    yield model
    engines.admin.delete(f"/api/models/{model['id']}")


def test_a_key_for_some_models_sees_and_uses_only_those(engines: Engines, keyed_model: dict[str, Any]) -> None:
    other = engines.deploy("gw-keys-other", engines.models / "llama-tiny.gguf")
    try:
        engines.wait_running(other["id"], 1)
        scoped = client(engines, api_key(engines, "gw-scoped", allowed_models=["gw-keys"]))
        assert [m.id for m in scoped.models.list().data] == ["gw-keys"]
        assert scoped.chat.completions.create(model="gw-keys", messages=HI, max_tokens=2).usage is not None
        with pytest.raises(openai.PermissionDeniedError) as denied:
            scoped.chat.completions.create(model="gw-keys-other", messages=HI, max_tokens=2)
        assert "may not use model 'gw-keys-other'" in denied.value.message
        everything = client(engines, api_key(engines, "gw-everything"))
        assert {"gw-keys", "gw-keys-other"} <= {m.id for m in everything.models.list().data}
    finally:
        engines.admin.delete(f"/api/models/{other['id']}")


def test_an_expired_key_is_refused(engines: Engines, keyed_model: dict[str, Any]) -> None:
    expires = datetime.now(UTC) + timedelta(seconds=2)
    gpt = client(engines, api_key(engines, "gw-expiring", expires_at=expires.isoformat()))
    assert gpt.chat.completions.create(model="gw-keys", messages=HI, max_tokens=2).usage is not None
    time.sleep(max(0.0, (expires - datetime.now(UTC)).total_seconds()) + 0.2)
    with pytest.raises(openai.AuthenticationError):
        gpt.chat.completions.create(model="gw-keys", messages=HI, max_tokens=2)


def test_requests_per_minute_are_limited_with_a_retry_after(engines: Engines, keyed_model: dict[str, Any]) -> None:
    gpt = client(engines, api_key(engines, "gw-rpm", requests_per_minute=2))
    for _ in range(2):
        gpt.chat.completions.create(model="gw-keys", messages=HI, max_tokens=2)
    with pytest.raises(openai.RateLimitError) as limited:
        gpt.chat.completions.create(model="gw-keys", messages=HI, max_tokens=2)
    assert "2 requests per minute" in limited.value.message
    assert 1 <= int(limited.value.response.headers["retry-after"]) <= 60
    # another key of the same user has its own allowance
    assert client(engines, api_key(engines, "gw-rpm-2")).chat.completions.create(
        model="gw-keys", messages=HI, max_tokens=2
    )


def test_tokens_per_day_are_limited(engines: Engines, keyed_model: dict[str, Any]) -> None:
    gpt = client(engines, api_key(engines, "gw-tokens", tokens_per_day=10))
    first = gpt.chat.completions.create(model="gw-keys", messages=HI, max_tokens=4)
    assert first.usage is not None and first.usage.total_tokens > 10  # the prompt alone is over the budget
    with pytest.raises(openai.RateLimitError) as limited:
        gpt.chat.completions.create(model="gw-keys", messages=HI, max_tokens=4)
    assert f"used {first.usage.total_tokens} of its 10 tokens today" in limited.value.message
    assert int(limited.value.response.headers["retry-after"]) <= 86401


def test_the_engines_own_errors_reach_the_client_in_openai_shape(engines: Engines, keyed_model: dict[str, Any]) -> None:
    gpt = client(engines, api_key(engines, "gw-bad"))
    with pytest.raises(openai.BadRequestError) as bad:
        gpt.chat.completions.create(model="gw-keys", messages="not a list", max_tokens=2)
    assert bad.value.status_code == 400 and bad.value.message
