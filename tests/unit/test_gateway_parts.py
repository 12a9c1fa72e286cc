"""The gateway's pure parts: balancing, rate limits, stream usage, request parsing, messages."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from gpufleet.server.gateway.balancer import Balancer
from gpufleet.server.gateway.errors import GatewayError
from gpufleet.server.gateway.limits import RequestRateLimiter
from gpufleet.server.gateway.routing import Endpoint, Route, engine_url
from gpufleet.server.gateway.service import parse, unknown_model_message
from gpufleet.server.gateway.stream_usage import StreamUsage, Usage, usage_of_body
from gpufleet.server.gateway.usage import seconds_until_tomorrow


def route(*ids: int) -> Route:
    return Route(1, "m", 0, tuple(Endpoint(i, f"m-{i}", f"http://127.0.0.1:{40000 + i}") for i in ids))


def test_idle_instances_take_turns() -> None:
    balancer = Balancer()
    picks = [balancer.pick(route(1, 2, 3)) for _ in range(6)]
    assert [p.instance_id for p in picks if p] == [1, 2, 3, 1, 2, 3]


def test_the_least_busy_instance_wins_over_the_turn() -> None:
    balancer = Balancer()
    r = route(1, 2)
    busy = r.endpoints[0]
    balancer.acquire(busy)  # instance 1 has a long stream in flight
    assert [balancer.pick(r).instance_id for _ in range(4)] == [2, 2, 2, 2]
    balancer.acquire(r.endpoints[1])
    balancer.acquire(r.endpoints[1])  # now 1 has one in flight, 2 has two
    assert balancer.pick(r).instance_id == 1
    balancer.release(busy)
    balancer.release(r.endpoints[1])
    balancer.release(r.endpoints[1])
    assert balancer.in_flight == {}  # released counts leave no trace


def test_a_retry_skips_the_instance_that_failed() -> None:
    balancer = Balancer()
    assert balancer.pick(route(1, 2), exclude=[1]).instance_id == 2
    assert balancer.pick(route(1), exclude=[1]) is None
    assert balancer.pick(route()) is None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_requests_per_minute_is_a_sliding_window() -> None:
    clock = Clock()
    limiter = RequestRateLimiter(clock)
    # 3 per minute: requests at t=0, 10, 20 pass; the 4th at t=30 waits until the first leaves the
    # window at t=60: 60 - 30 = 30 s.
    for t in (0, 10, 20):
        clock.now = 1000 + t
        assert limiter.admit(7, 3) is None
    clock.now = 1030
    assert limiter.admit(7, 3) == 30
    assert limiter.admit(8, 3) is None  # another key has its own window
    clock.now = 1060.5  # the t=0 request left the window: one more passes
    assert limiter.admit(7, 3) is None
    assert limiter.admit(7, 3) == 10  # next to leave: t=10 at 1070 → ceil(1070 - 1060.5) = 10


@pytest.mark.parametrize(
    ("now", "expected"),
    [
        (datetime(2026, 12, 1, 23, 59, 59, tzinfo=UTC), 2),  # 1 s left, rounded up past midnight
        (datetime(2026, 12, 1, 0, 0, 0, tzinfo=UTC), 86401),
        (datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC), 43201),
    ],
)
def test_daily_limits_start_over_at_utc_midnight(now: datetime, expected: int) -> None:
    assert seconds_until_tomorrow(now) == expected


def sse(payload: dict[str, object]) -> bytes:
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


CHUNK = sse({"choices": [{"delta": {"content": "Hi"}, "index": 0}], "object": "chat.completion.chunk"})
LAST = sse({"choices": [{"delta": {}, "finish_reason": "length", "index": 0}], "object": "chat.completion.chunk"})
USAGE_ONLY = sse({"choices": [], "usage": {"prompt_tokens": 5, "completion_tokens": 3, "total_tokens": 8}})
USAGE_ON_LAST = sse(
    {
        "choices": [{"delta": {}, "finish_reason": "stop", "index": 0}],
        "usage": {"prompt_tokens": 2, "completion_tokens": 1},
    }
)
DONE = b"data: [DONE]\n\n"


@pytest.mark.parametrize("split", [1, 7, 64, 10_000])
def test_a_stream_passes_through_unchanged_when_the_client_asked_for_usage(split: int) -> None:
    stream = CHUNK + CHUNK + LAST + USAGE_ONLY + DONE
    scanner = StreamUsage(strip=False)
    out = b"".join(scanner.feed(stream[i : i + split]) for i in range(0, len(stream), split)) + scanner.finish()
    assert out == stream
    assert scanner.usage == Usage(5, 3)


@pytest.mark.parametrize("split", [3, 10_000])
def test_usage_the_client_did_not_ask_for_is_removed(split: int) -> None:
    stream = CHUNK + LAST + USAGE_ONLY + DONE
    scanner = StreamUsage(strip=True)
    out = b"".join(scanner.feed(stream[i : i + split]) for i in range(0, len(stream), split)) + scanner.finish()
    assert out == CHUNK + LAST + DONE  # the usage-only chunk is gone, the rest byte for byte
    assert scanner.usage == Usage(5, 3)


def test_usage_on_a_chunk_with_choices_is_cut_from_that_chunk_only() -> None:
    scanner = StreamUsage(strip=True)
    out = scanner.feed(CHUNK + USAGE_ON_LAST + DONE)
    events = out.split(b"\n\n")
    assert events[0] + b"\n\n" == CHUNK and events[2] + b"\n\n" == DONE
    last = json.loads(events[1].removeprefix(b"data: "))
    assert "usage" not in last and last["choices"][0]["finish_reason"] == "stop"
    assert scanner.usage == Usage(2, 1)


def test_an_unterminated_tail_is_passed_on_at_the_end() -> None:
    scanner = StreamUsage(strip=True)
    assert scanner.feed(b'data: {"choi') == b""
    assert scanner.finish() == b'data: {"choi'


@pytest.mark.parametrize(
    ("body", "usage"),
    [
        (b'{"usage": {"prompt_tokens": 4, "completion_tokens": 2}}', Usage(4, 2)),
        (b'{"usage": {"prompt_tokens": 4, "total_tokens": 4}}', Usage(4, 0)),  # embeddings
        (b'{"usage" :  {"prompt_tokens": 1, "completion_tokens": 1}, "choices": []}', Usage(1, 1)),
        (
            b'{"choices": [{"text": "say \\"usage\\""}], "usage": {"prompt_tokens": 2, "completion_tokens": 3}}',
            Usage(2, 3),
        ),
        (b'{"usage": null}', None),
        (b'{"data": []}', None),
        (b'not json but "usage"', None),
    ],
)
def test_usage_of_a_whole_body(body: bytes, usage: Usage | None) -> None:
    assert usage_of_body(body) == usage


def test_a_stream_without_usage_options_asks_the_engine_and_strips_it() -> None:
    call = parse("chat/completions", b'{"model": "m", "stream": true, "messages": []}')
    assert call.stream and call.strip_usage
    assert json.loads(call.body)["stream_options"] == {"include_usage": True}


def test_a_client_asking_for_usage_gets_its_body_sent_unchanged() -> None:
    raw = b'{"model": "m", "stream": true, "stream_options": {"include_usage": true}}'
    call = parse("chat/completions", raw)
    assert call.body is raw and not call.strip_usage
    plain = b'{"model": "m", "messages": []}'
    assert parse("chat/completions", plain).body is plain  # no stream: forwarded as received


@pytest.mark.parametrize(
    ("raw", "status", "says"),
    [
        (b"{not json", 400, "not valid JSON"),
        (b"[1, 2]", 400, "JSON object"),
        (b'{"messages": []}', 400, "'model' is required"),
        (b'{"model": 3}', 400, "'model' is required"),
        (b'{"model": "m", "stream": "yes"}', 400, "'stream' must be"),
        (b'{"model": "m", "stream": true, "stream_options": 1}', 400, "'stream_options'"),
    ],
)
def test_malformed_bodies_are_refused_with_what_to_fix(raw: bytes, status: int, says: str) -> None:
    with pytest.raises(GatewayError) as caught:
        parse("chat/completions", raw)
    assert caught.value.status == status and says in caught.value.message


def test_an_unknown_model_names_the_close_ones() -> None:
    assert "did you mean 'qwen2.5-7b'" in unknown_model_message("qwen2.5-7", ["qwen2.5-7b", "llama"])
    assert "deployed models: 'a', 'b'" in unknown_model_message("zzz", ["b", "a"])
    assert "no model is deployed" in unknown_model_message("zzz", [])


def test_engine_urls_bracket_ipv6() -> None:
    assert engine_url("10.0.0.1", 40000) == "http://10.0.0.1:40000"
    assert engine_url("::1", 40000) == "http://[::1]:40000"


def test_an_unreachable_instance_is_passed_over_for_a_while() -> None:
    clock = Clock()
    balancer = Balancer(clock)
    r = route(1, 2)
    balancer.unreachable(r.endpoints[0])  # its connect failed: with nothing in flight it would look idlest
    assert [balancer.pick(r).instance_id for _ in range(3)] == [2, 2, 2]
    assert balancer.pick(r, exclude=[2]).instance_id == 1  # still used when nothing else is left
    clock.now += 5.1  # the cool-down is over: turns rotate again
    assert {balancer.pick(r).instance_id for _ in range(2)} == {1, 2}


def test_a_stream_cut_short_is_charged_its_events() -> None:
    scanner = StreamUsage(strip=True)
    role = sse({"choices": [{"delta": {"role": "assistant"}, "index": 0}]})
    scanner.feed(role + CHUNK + CHUNK + CHUNK)  # then the client leaves: no usage chunk, no [DONE]
    assert scanner.usage is None
    assert scanner.lower_bound() == Usage(0, 2)  # 4 events, less the role chunk and [DONE] = 2


def test_only_completions_stream() -> None:
    embed = parse("embeddings", b'{"model": "m", "input": "x", "stream": true}')
    assert not embed.stream and not embed.strip_usage  # answered whole, usage read from the body
    assert parse("completions", b'{"model": "m", "prompt": "x", "stream": true}').stream
