"""Pass an engine's SSE stream through while picking out its token usage.

Usage is counted from the engine's own ``usage`` object. In a stream the engine sends it only when
asked (``stream_options.include_usage``), so the gateway always asks, and when the client did not
ask, removes it again: the client sees exactly what it asked for.

Bytes are passed on per SSE event as soon as the event is complete; an event is parsed only if it
contains the bytes ``"usage"`` (the final one), never every chunk. Invariant: the concatenated
output equals the input, less the usage the client did not ask for.

A stream that ends before its usage (the client left, the engine broke off) is still charged:
``lower_bound()`` counts its events, as llama-server sends one event per generated token.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

USAGE_MARK = b'"usage"'
_DECODER = json.JSONDecoder()


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0

    @classmethod
    def of(cls, value: Any) -> Usage | None:
        if not isinstance(value, dict):
            return None
        prompt = value.get("prompt_tokens")
        completion = value.get("completion_tokens", 0)
        if not isinstance(prompt, int) or not isinstance(completion, int):
            return None
        return cls(prompt, completion)


def usage_of_body(body: bytes) -> Usage | None:
    """The ``usage`` of a whole (non-streamed) JSON response, if it has one.

    Only the object after the last ``"usage":`` is decoded, not the whole answer (inside JSON
    strings the quotes would be escaped, so that key is the object's own); a body where this does
    not work out is parsed whole."""
    if USAGE_MARK not in body:
        return None
    text = body.decode("utf-8", errors="replace")
    start = text.find(":", text.rfind('"usage"')) + 1
    while start < len(text) and text[start] in " \t\r\n":
        start += 1
    try:
        return Usage.of(_DECODER.raw_decode(text, start)[0])
    except ValueError:  # not an object where the key said: read the body whole instead
        return _usage_of_whole(body)


def _usage_of_whole(body: bytes) -> Usage | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return Usage.of(parsed.get("usage")) if isinstance(parsed, dict) else None


class StreamUsage:
    """Feed it the engine's bytes; it returns what to send to the client, and keeps ``usage``."""

    def __init__(self, strip: bool) -> None:
        self.strip = strip  # the client did not ask for usage: remove it from what it receives
        self.usage: Usage | None = None
        self.events = 0  # complete events passed on (or dropped), for ``lower_bound``
        self._partial = b""

    def feed(self, chunk: bytes) -> bytes:
        data = self._partial + chunk
        end = data.rfind(b"\n\n")
        if end < 0:
            self._partial = data
            return b""
        complete, self._partial = data[: end + 2], data[end + 2 :]
        self.events += complete.count(b"\n\n")
        if USAGE_MARK not in complete:
            return complete
        return b"".join(self._event(e + b"\n\n") for e in complete[:-2].split(b"\n\n"))

    def lower_bound(self) -> Usage:
        """Usage for a stream that ended without its own: its events, less the role chunk and
        ``[DONE]``, as completion tokens (the prompt's tokens are not known)."""
        return Usage(0, max(0, self.events - 2))

    def finish(self) -> bytes:
        """What is left when the stream ends (an unterminated last event, passed on as it is)."""
        rest, self._partial = self._partial, b""
        return rest

    def _event(self, event: bytes) -> bytes:
        if USAGE_MARK not in event:
            return event
        prefix, sep, payload = event.partition(b"data: ")
        if not sep or prefix.strip():
            return event
        try:
            parsed = json.loads(payload)
        except ValueError:
            return event
        if not isinstance(parsed, dict):
            return event
        usage = Usage.of(parsed.get("usage"))
        if usage is not None:
            self.usage = usage
        if not self.strip or "usage" not in parsed:
            return event
        if not parsed.get("choices"):
            return b""  # the usage-only chunk the client did not ask for
        del parsed["usage"]
        return b"data: " + json.dumps(parsed, separators=(",", ":"), ensure_ascii=False).encode() + b"\n\n"
