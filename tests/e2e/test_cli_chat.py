"""``gpufleet chat`` as a subprocess, against the gateway and real llama-server engines.

The tiny generated model has random weights: assertions are on the speed line's token counts
(``--ignore-eos`` makes every answer exactly ``--max-tokens`` long), on exit codes and on the
gateway's own error message, never on the text.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import IO, Any

import httpx
import pytest

from testkit.synthetic import preset, scaled, write_model
from tests.support.engine_cluster import Engines

pytestmark = pytest.mark.e2e

MODEL = "cli-chat"
# "8 tokens, 812.3 tokens/s, first token after 0.04 s, prompt 31 tokens". The timing parts are left
# out when no token reached the client as text: random weights sometimes sample only pieces of UTF-8
# characters, which llama-server never sends ("4 tokens, prompt 24 tokens"); ``TIMED`` is the full form.
SPEED = re.compile(r"^(\d+) tokens?(?:, [\d.]+ tokens/s, first token after [\d.]+ s)?, prompt (\d+) tokens$", re.M)
TIMED = re.compile(r"^\d+ tokens?, [\d.]+ tokens/s, first token after [\d.]+ s, prompt \d+ tokens$", re.M)


@pytest.fixture(scope="module")
def chat_model(engines: Engines) -> Iterator[dict[str, Any]]:
    model = engines.deploy(MODEL, engines.models / "llama-tiny.gguf")
    engines.wait_running(model["id"], 1)
    yield model
    engines.admin.delete(f"/api/models/{model['id']}")


@pytest.fixture(scope="module")
def common(engines: Engines) -> list[str]:
    """``--server`` and ``--api-key`` for the CLI: a key made for this module."""
    created = engines.admin.post("/api/api-keys", json={"name": "cli-chat"})
    assert created.status_code == 201, created.text
    return ["--server", engines.cluster.url, "--api-key", created.json()["key"]]


def environment() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("GPUFLEET_")}


def gpufleet(args: list[str], stdin: str = "", timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``run_cli`` with text on stdin (which ``run_cli`` does not take)."""
    command = [sys.executable, "-m", "gpufleet", *args]
    return subprocess.run(command, input=stdin, capture_output=True, text=True, timeout=timeout, env=environment())


def speeds(stderr: str) -> list[tuple[int, int]]:
    """(completion tokens, prompt tokens) of each speed line."""
    return [(int(tokens), int(prompt)) for tokens, prompt in SPEED.findall(stderr)]


def test_one_shot_prints_the_answer_and_its_speed(chat_model: dict[str, Any], common: list[str]) -> None:
    asked = gpufleet(["chat", MODEL, "-p", "hi", "--max-tokens", "8", "--ignore-eos", *common])
    assert asked.returncode == 0, asked.stderr
    assert len(speeds(asked.stderr)) == 1, asked.stderr
    assert TIMED.search(asked.stderr) or not asked.stdout.strip(), asked.stderr  # timed whenever text came
    [(tokens, prompt)] = speeds(asked.stderr)
    assert tokens == 8 and prompt > 0
    assert "tokens/s" not in asked.stdout  # stdout is the answer alone

    # -p - reads the prompt from stdin; a longer prompt counts more prompt tokens
    piped = gpufleet(["chat", MODEL, "-p", "-", "--max-tokens", "3", "--ignore-eos", *common], stdin="hi " * 20)
    assert piped.returncode == 0, piped.stderr
    assert len(speeds(piped.stderr)) == 1, piped.stderr
    assert TIMED.search(piped.stderr) or not piped.stdout.strip(), piped.stderr
    [(tokens, longer)] = speeds(piped.stderr)
    assert tokens == 3 and longer > prompt


def test_the_gateway_refusal_is_one_error_line(engines: Engines, chat_model: dict[str, Any], common: list[str]) -> None:
    key = common[-1]
    said = httpx.post(
        f"{engines.cluster.url}/v1/chat/completions",
        json={"model": "cli-chta", "messages": [{"role": "user", "content": "hi"}]},
        headers={"Authorization": f"Bearer {key}"},
        trust_env=False,
        timeout=30,
    )
    assert said.status_code == 404
    message = said.json()["error"]["message"]
    assert "did you mean 'cli-chat'" in message

    one_shot = gpufleet(["chat", "cli-chta", "-p", "hi", *common])
    assert (one_shot.returncode, one_shot.stdout, one_shot.stderr) == (1, "", f"error: {message}\n")
    # interactive: the model is looked up before the first prompt
    interactive = gpufleet(["chat", "cli-chta", *common], stdin="hi\n")
    assert (interactive.returncode, interactive.stderr) == (1, f"error: {message}\n")


def test_interactive_keeps_the_conversation_until_reset(chat_model: dict[str, Any], common: list[str]) -> None:
    lines = ["hello", "hello", "/reset", "hello", "/system Answer in one word.", "hello"]
    session = gpufleet(["chat", MODEL, "--max-tokens", "4", "--ignore-eos", *common], stdin="\n".join(lines) + "\n")
    assert session.returncode == 0, session.stderr  # EOF after the last line leaves
    answered = speeds(session.stderr)
    assert [tokens for tokens, _ in answered] == [4, 4, 4, 4], session.stderr
    first, second, reset, with_system = (prompt for _, prompt in answered)
    # the second "hello" is sent after the first exchange (hello + its 4-token answer): longer
    assert second > first
    # after /reset it is the first request again, token for token
    assert reset == first
    # the system message comes on top of it
    assert with_system > first
    assert "conversation forgotten" in session.stderr and "system message set" in session.stderr


class Session:
    """An interactive ``gpufleet chat`` whose output is read as it comes."""

    def __init__(self, args: list[str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gpufleet", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=environment(),
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        assert self.process.stdout is not None and self.process.stderr is not None
        for stream, into in ((self.process.stdout, self.stdout), (self.process.stderr, self.stderr)):
            threading.Thread(target=self._read, args=(stream, into), daemon=True).start()

    @staticmethod
    def _read(stream: IO[str], into: list[str]) -> None:
        while piece := stream.read(1):
            into.append(piece)

    def send(self, line: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def wait_for(self, what: str, done: Any, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline or self.process.poll() is not None:
                raise AssertionError(f"no {what}: stdout {''.join(self.stdout)!r}, stderr {''.join(self.stderr)!r}")
            time.sleep(0.02)


def test_ctrl_c_stops_the_answer_then_leaves_at_the_prompt(engines: Engines, common: list[str]) -> None:
    # slow enough (8 layers of 512) that a long answer is still streaming when it is interrupted
    shape = scaled(preset("llama-tiny"), n_layer=8, n_embd=512, n_ff=1536, n_head=8, n_head_kv=4)
    model = engines.deploy("cli-chat-slow", write_model(engines.models / "cli-chat-slow.gguf", shape))
    try:
        engines.wait_running(model["id"], 1)
        session = Session(["chat", "cli-chat-slow", "--max-tokens", "1500", "--ignore-eos", *common])
        session.wait_for("prompt", lambda: "".join(session.stdout) == "> ")
        session.send("tell me a long story")
        session.wait_for("answer", lambda: len("".join(session.stdout)) > len("> ") + 5)
        session.process.send_signal(signal.SIGINT)
        session.wait_for("stopped answer", lambda: "stopped" in "".join(session.stderr))
        session.wait_for("prompt again", lambda: "".join(session.stdout).endswith("> "))
        assert not speeds("".join(session.stderr))  # the answer did not run to its end
        session.process.send_signal(signal.SIGINT)  # at the prompt: leave
        assert session.process.wait(10) == 0, "".join(session.stderr)
    finally:
        engines.admin.delete(f"/api/models/{model['id']}")
