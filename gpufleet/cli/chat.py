"""``gpufleet chat MODEL``: a streamed chat through the gateway, interactive or one-shot.

Every message goes to ``POST /v1/chat/completions`` with ``stream: true`` and
``stream_options.include_usage``, so the last event carries the token counts; the content deltas
are printed as they arrive. After each answer one dim line on stderr gives the tokens and the
speed: ``(tokens - 1) / seconds from the first token to the end`` (the first token's own time is
the wait before it, shown apart as "first token after"). Without a usage event the deltas are
counted instead.

One-shot (``-p PROMPT``, ``-p -`` reads it from stdin): stdout holds the answer alone, the speed
line goes to stderr; a refusal by the gateway (OpenAI's ``{"error": {"message"}}``: 404 unknown
model, 503 not running, 429 limits) is one ``error:`` line and exit 1.

Interactive: a prompt loop. ``/reset`` forgets the conversation (the system message stays),
``/system TEXT`` sets the system message (``/system`` alone removes it). EOF (Ctrl-D) or Ctrl-C
at the prompt leaves with 0; Ctrl-C during an answer stops it and returns to the prompt. The
model is looked up first (404 → exit 1); after that a refused message is reported and the
session goes on. Invariant: the history holds only complete exchanges, so an answer that was
stopped or refused leaves it as it was before the message.
"""

from __future__ import annotations

import contextlib
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Annotated, Any

import httpx
import typer
from rich.markup import escape

from gpufleet.cli.client import (
    DEFAULT_SERVER,
    ApiKeyOption,
    ServerOption,
    connect,
    err,
    error_line,
    out,
)
from gpufleet.cli.errors import CommandFailed

with contextlib.suppress(ImportError):  # line editing and history at the prompt, where the platform has it
    import readline  # noqa: F401

CHAT_PATH = "/v1/chat/completions"
# No read timeout: the gateway bounds its own wait on an engine (GPUFLEET_GATEWAY_TIMEOUT), a model
# loading on demand may take minutes before its first byte, and Ctrl-C stops the wait.
STREAM_TIMEOUT = httpx.Timeout(30.0, read=None)
PROMPT = "[bold cyan]>[/] "
COMMANDS = "/reset forgets the conversation, /system TEXT sets the system message, Ctrl-D leaves"

Message = dict[str, str]


@dataclass
class Answer:
    """One streamed answer: its text, its token count and its timing."""

    text: str = ""
    deltas: int = 0  # events that carried a token (content, even empty)
    completion_tokens: int | None = None  # from the usage event, when there is one
    prompt_tokens: int | None = None  # the same: the whole conversation sent, as the model counts it
    started: float = 0.0  # time.monotonic() when the request was sent
    first_token: float | None = None
    ended: float | None = None

    @property
    def tokens(self) -> int:
        return self.completion_tokens if self.completion_tokens is not None else self.deltas

    def speed_line(self) -> str:
        """``8 tokens, 812.3 tokens/s, first token after 0.04 s, prompt 31 tokens``."""
        tokens = self.tokens
        parts = [f"{tokens} token{'' if tokens == 1 else 's'}"]
        if self.first_token is not None and self.ended is not None:
            generating = self.ended - self.first_token
            if tokens > 1 and generating > 0:
                parts.append(f"{(tokens - 1) / generating:.1f} tokens/s")
            parts.append(f"first token after {self.first_token - self.started:.2f} s")
        if self.prompt_tokens is not None:
            parts.append(f"prompt {self.prompt_tokens} tokens")
        return ", ".join(parts)


def gateway_message(response: httpx.Response) -> str:
    """What the gateway said: OpenAI's ``error.message``, else the server's ``detail``, else the body."""
    try:
        body = response.json()
    except ValueError:
        return f"HTTP {response.status_code}: {response.text.strip() or response.reason_phrase}"
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
        if error:
            return str(error)
        if "detail" in body:
            return str(body["detail"])
    return f"HTTP {response.status_code}: {body}"


def stream_answer(client: httpx.Client, body: dict[str, Any], answer: Answer) -> None:
    """Send ``body``, print the content deltas to stdout as they arrive and gather them in ``answer``
    (which keeps what came when the stream is stopped or breaks off).

    Raises ``CommandFailed`` with the gateway's message when it refuses, or when the stream
    carries an error event (llama-server's ``error:`` line, or a ``data:`` with an ``error``)."""
    answer.started = time.monotonic()
    with client.stream("POST", CHAT_PATH, json=body) as response:
        if response.status_code != 200:
            response.read()
            raise CommandFailed(gateway_message(response))
        for line in response.iter_lines():
            field, _, value = line.partition(":")
            value = value.strip()
            if field == "error":
                raise CommandFailed(_event_error(value))
            if field != "data" or not value:
                continue
            if value == "[DONE]":
                break
            event = json.loads(value)
            if event.get("error"):
                raise CommandFailed(_event_error(value))
            _take(answer, event)
    answer.ended = time.monotonic()


def _take(answer: Answer, event: dict[str, Any]) -> None:
    usage = event.get("usage")
    if isinstance(usage, dict):
        answer.completion_tokens = _count(usage, "completion_tokens", answer.completion_tokens)
        answer.prompt_tokens = _count(usage, "prompt_tokens", answer.prompt_tokens)
    for choice in event.get("choices") or []:
        content = (choice.get("delta") or {}).get("content")
        if not isinstance(content, str):  # e.g. the opening event that only names the role
            continue
        if answer.first_token is None:
            answer.first_token = time.monotonic()
        answer.deltas += 1
        if content:  # empty: a token that does not decode to text yet (part of a character)
            answer.text += content
            sys.stdout.write(content)
            sys.stdout.flush()


def _count(usage: dict[str, Any], key: str, before: int | None) -> int | None:
    value = usage.get(key)
    return value if isinstance(value, int) else before


def _event_error(value: str) -> str:
    try:
        event = json.loads(value)
    except ValueError:
        return value
    error = event.get("error", event) if isinstance(event, dict) else event
    return str(error.get("message", error)) if isinstance(error, dict) else str(error)


@dataclass
class Conversation:
    """The messages sent with each request, and the request's other fields."""

    model: str
    options: dict[str, Any]
    system: str | None = None
    history: list[Message] = field(default_factory=list)

    def request(self, text: str) -> dict[str, Any]:
        system = [{"role": "system", "content": self.system}] if self.system else []
        messages = [*system, *self.history, {"role": "user", "content": text}]
        return {
            "model": self.model,
            "messages": messages,
            "stream": True,
            "stream_options": {"include_usage": True},
            **self.options,
        }

    def remember(self, text: str, answer: Answer) -> None:
        self.history += [{"role": "user", "content": text}, {"role": "assistant", "content": answer.text}]


def reply(client: httpx.Client, conversation: Conversation, text: str) -> None:
    """One exchange: the answer on stdout, then the speed line on stderr; remembered when complete."""
    answer = Answer()
    try:
        stream_answer(client, conversation.request(text), answer)
    finally:
        if answer.text:  # end the answer's line, also when it was stopped or broke off
            sys.stdout.write("\n")
            sys.stdout.flush()
    err.print(f"[dim]{answer.speed_line()}[/]")
    conversation.remember(text, answer)


def interact(client: httpx.Client, conversation: Conversation) -> None:
    """The prompt loop, until EOF or Ctrl-C at the prompt."""
    err.print(f"[dim]chatting with {escape(conversation.model)}: {COMMANDS}[/]")
    while True:
        try:
            line = out.input(PROMPT).strip()
        except (EOFError, KeyboardInterrupt):
            out.print()
            return
        if not line:
            continue
        if line.startswith("/"):
            command(conversation, line)
            continue
        try:
            reply(client, conversation, line)
        except KeyboardInterrupt:
            err.print("[dim]stopped[/]")
        except CommandFailed as exc:
            error_line(exc.message)


def command(conversation: Conversation, line: str) -> None:
    name, _, argument = line.partition(" ")
    if name == "/reset":
        conversation.history.clear()
        err.print("[dim]conversation forgotten[/]")
    elif name == "/system":
        conversation.system = argument.strip() or None
        err.print(f"[dim]system message {'set' if conversation.system else 'removed'}[/]")
    else:
        err.print(f"[dim]{escape(name)} is not a command: {COMMANDS}[/]")


def ensure_model(client: httpx.Client, model: str) -> None:
    """The model exists for this caller (``GET /v1/models/NAME``), else the gateway's message."""
    response = client.get(f"/v1/models/{model}")
    if response.status_code != 200:
        raise CommandFailed(gateway_message(response))


def chat(
    model: Annotated[str, typer.Argument(help="Deployment name (as in GET /v1/models)")],
    prompt: Annotated[
        str | None, typer.Option("--prompt", "-p", help="Ask once, print the answer and exit ('-' reads stdin)")
    ] = None,
    system: Annotated[str | None, typer.Option(help="System message")] = None,
    max_tokens: Annotated[int | None, typer.Option(min=1, help="Most tokens per answer")] = None,
    temperature: Annotated[float | None, typer.Option(min=0.0, help="Sampling temperature")] = None,
    ignore_eos: Annotated[
        bool, typer.Option("--ignore-eos", hidden=True, help="Generate until --max-tokens (for tests)")
    ] = False,
    server: ServerOption = DEFAULT_SERVER,
    api_key: ApiKeyOption = None,
) -> None:
    """Chat with a model through the gateway, streamed; -p asks once (the answer alone on stdout)."""
    flags = {"max_tokens": max_tokens, "temperature": temperature, "ignore_eos": ignore_eos or None}
    conversation = Conversation(model, {k: v for k, v in flags.items() if v is not None}, system)
    question = sys.stdin.read() if prompt == "-" else prompt
    with connect(server, api_key, STREAM_TIMEOUT) as client:
        if question is not None:
            reply(client, conversation, question)
            return
        ensure_model(client, model)
        interact(client, conversation)
