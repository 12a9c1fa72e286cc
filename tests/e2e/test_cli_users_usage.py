"""``gpufleet users``, ``gpufleet usage`` and ``gpufleet login``/``logout`` against a real server.

One server for the module. Before it starts, its database gets gateway usage written by the real
``UsageRecorder`` on two fixed UTC days (no model has to answer requests for it), so the sums below
are known. The ids line up because the server creates them in order on an empty database: user 1
is the bootstrap admin, user 2 ``reader`` (made by the fixture), API key 1 the admin's ``cli`` key.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from gpufleet.db.migrate import upgrade
from gpufleet.db.session import Database
from gpufleet.server.gateway.usage import UsageRecorder
from tests.support.processes import GpufleetProcess, ports
from tests.support.server import ADMIN_PASSWORD

pytestmark = pytest.mark.e2e

DAY_1 = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
DAY_2 = datetime(2026, 12, 2, 15, 0, tzinfo=UTC)
ADMIN, READER, CLI_KEY, NO_KEY = 1, 2, 1, None
READER_PASSWORD = "reader-pass-1"


async def _record_usage(database_url: str) -> None:
    """Usage of the two days, written the way the gateway writes it."""
    db = Database(database_url)
    try:
        await upgrade(db)
        now = DAY_1
        recorder = UsageRecorder(db, lambda: now.timestamp())
        recorder.record(ADMIN, CLI_KEY, "llama", prompt=100, completion=20)
        recorder.record(ADMIN, CLI_KEY, "llama", prompt=50, completion=10)
        recorder.record(READER, NO_KEY, "qwen", prompt=7, completion=3)
        await recorder.flush()
        now = DAY_2
        recorder.record(ADMIN, NO_KEY, "qwen", prompt=30, completion=5)
        await recorder.flush()
    finally:
        await db.dispose()


@dataclass
class Fleet:
    url: str
    key: str  # the admin's API key ``cli``
    reader_token: str  # a session of user ``reader`` (role user)
    config_dir: Path  # GPUFLEET_CONFIG_DIR of every CLI run: never the real ~/.config

    def cli(self, *args: str, api_key: str | None = None, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """``gpufleet ARGS --server-url URL --api-key KEY`` (the admin's key unless another is given)."""
        credential = api_key or self.key
        return gpufleet(self.config_dir, *args, "--server-url", self.url, "--api-key", credential, timeout=timeout)


def gpufleet(config_dir: Path, *args: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
    """The command line of ``tests.support.processes.run_cli``, with ``GPUFLEET_CONFIG_DIR`` set (run_cli
    takes no environment) and no terminal on stdin, so a command that would ask fails instead of waiting."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GPUFLEET_")}
    env["GPUFLEET_CONFIG_DIR"] = str(config_dir)
    return subprocess.run(
        [sys.executable, "-m", "gpufleet", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    root = tmp_path_factory.mktemp("cli-users")
    data = root / "data"
    data.mkdir(mode=0o700)
    asyncio.run(_record_usage(f"sqlite:///{data / 'gpufleet.db'}"))
    (port,) = ports(1)
    url = f"http://127.0.0.1:{port}"
    server = GpufleetProcess(
        [
            *("--host", "127.0.0.1", "--port", str(port), "--data-dir", str(data)),
            *("--bootstrap-password", ADMIN_PASSWORD, "--disable-worker"),
        ],
        root / "server.log",
    ).start()
    try:
        server.wait_http(f"{url}/healthz")
        with httpx.Client(base_url=url, timeout=30, trust_env=False) as http:
            login = http.post("/api/auth/login", json={"username": "admin", "password": ADMIN_PASSWORD})
            admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
            key = http.post("/api/api-keys", json={"name": "cli"}, headers=admin).json()
            assert key["id"] == CLI_KEY
            reader = {"username": "reader", "password": READER_PASSWORD, "role": "user"}
            assert http.post("/api/users", json=reader, headers=admin).json()["id"] == READER
            reader_login = http.post("/api/auth/login", json={"username": "reader", "password": READER_PASSWORD})
        yield Fleet(url, key["key"], reader_login.json()["access_token"], root / "config")
    finally:
        server.stop()


def test_users_create_list_update_delete(fleet: Fleet) -> None:
    created = fleet.cli("users", "create", "alice", "--password", "alice-pass-1", "--json")
    assert created.returncode == 0, created.stderr
    alice = json.loads(created.stdout)
    assert (alice["username"], alice["role"], alice["must_change_password"]) == ("alice", "user", False)

    listed = fleet.cli("users", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    assert [(u["username"], u["role"]) for u in json.loads(listed.stdout)] == [
        ("admin", "admin"),
        ("reader", "user"),
        ("alice", "user"),
    ]
    table = fleet.cli("users", "list")
    assert table.returncode == 0 and "alice" in table.stdout and "reader" in table.stdout
    assert alice["created_at"][:10] in table.stdout  # the created column: the day, then the time

    promoted = fleet.cli("users", "update", "alice", "--role", "admin", "--json")
    assert promoted.returncode == 0, promoted.stderr
    assert json.loads(promoted.stdout)["role"] == "admin"
    # by id this time; a password another admin sets must be changed at the next sign-in
    reset = fleet.cli("users", "update", str(alice["id"]), "--password", "alice-pass-2", "--json")
    assert reset.returncode == 0, reset.stderr
    assert json.loads(reset.stdout)["must_change_password"] is True
    signed_in = httpx.post(
        f"{fleet.url}/api/auth/login", json={"username": "alice", "password": "alice-pass-2"}, trust_env=False
    )
    assert signed_in.status_code == 200

    deleted = fleet.cli("users", "delete", "alice", "--yes")
    assert deleted.returncode == 0, deleted.stderr
    assert f"deleted user alice (id {alice['id']})" in deleted.stdout
    names = [u["username"] for u in json.loads(fleet.cli("users", "list", "--json").stdout)]
    assert names == ["admin", "reader"]


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["users", "create", "reader", "--password", "reader-pass-2"], 1, "HTTP 409: a user named 'reader' already"),
        (["users", "create", "shorty", "--password", "short"], 1, "password: String should have at least 8"),
        (["users", "create", "nopass"], 2, "give the new user's password with --password"),
        (["users", "update", "nobody", "--role", "admin"], 2, "no user 'nobody'; the users are: admin, reader"),
        (["users", "update", "reader"], 2, "nothing to change: give --role and/or --password"),
        (["users", "update", "admin", "--role", "user"], 1, "you cannot change your own role"),
        (["users", "delete", "admin", "--yes"], 1, "you cannot delete yourself"),
        (["users", "delete", "reader"], 2, "give --yes to delete user reader without being asked"),
        (["usage", "--from", "2026-12-03", "--to", "2026-12-01"], 2, "--from 2026-12-03 is after --to 2026-12-01"),
        (["usage", "--from", "yesterday"], 2, "--from 'yesterday' is not a day: give it as YYYY-MM-DD"),
    ],
)
def test_refusals_are_one_line_with_the_exit_code(fleet: Fleet, args: list[str], code: int, message: str) -> None:
    result = fleet.cli(*args)
    assert result.returncode == code, result.stderr
    assert message in one_error_line(result)


def test_users_need_an_admin(fleet: Fleet) -> None:
    result = fleet.cli("users", "list", api_key=fleet.reader_token)
    assert result.returncode == 1 and "HTTP 403" in one_error_line(result)


def test_a_bad_choice_is_usage(fleet: Fleet) -> None:
    assert fleet.cli("usage", "--by", "hour").returncode == 2  # typer's own message (a panel)


def usage_json(fleet: Fleet, *args: str, api_key: str | None = None) -> list[dict[str, object]]:
    result = fleet.cli("usage", *args, "--json", api_key=api_key)
    assert result.returncode == 0, result.stderr
    rows: list[dict[str, object]] = json.loads(result.stdout)
    return rows


COUNTS = ("requests", "prompt_tokens", "completion_tokens", "total_tokens")


@pytest.mark.parametrize(
    ("args", "name", "expected"),
    [
        # llama: 2 requests, 100+50 prompt, 20+10 completion; qwen: 7+30 prompt, 3+5 completion
        ([], ("model_name",), {("llama",): (2, 150, 30, 180), ("qwen",): (2, 37, 8, 45)}),
        # admin: both llama and day 2's qwen (150+30, 30+5); reader: day 1's qwen
        (["--by", "user"], ("username",), {("admin",): (3, 180, 35, 215), ("reader",): (1, 7, 3, 10)}),
        (
            ["--by", "key"],
            ("api_key_name", "username"),
            {
                ("cli", "admin"): (2, 150, 30, 180),
                ("(login session)", "admin"): (1, 30, 5, 35),
                ("(login session)", "reader"): (1, 7, 3, 10),
            },
        ),
        (["--by", "day"], ("day",), {("2026-12-01",): (3, 157, 33, 190), ("2026-12-02",): (1, 30, 5, 35)}),
        (["--from", "2026-12-02", "--to", "2026-12-02"], ("model_name",), {("qwen",): (1, 30, 5, 35)}),
        (["--to", "2026-12-01"], ("model_name",), {("llama",): (2, 150, 30, 180), ("qwen",): (1, 7, 3, 10)}),
    ],
)
def test_usage_json_is_the_servers_rows(
    fleet: Fleet, args: list[str], name: tuple[str, ...], expected: dict[tuple[str, ...], tuple[int, ...]]
) -> None:
    rows = usage_json(fleet, *args)
    assert {tuple(str(row[f]) for f in name): tuple(row[c] for c in COUNTS) for row in rows} == expected


def test_a_user_sees_only_their_own_usage(fleet: Fleet) -> None:
    rows = usage_json(fleet, "--by", "user", api_key=fleet.reader_token)
    assert [(row["username"], row["total_tokens"]) for row in rows] == [("reader", 10)]


def test_usage_table_ends_with_the_totals(fleet: Fleet) -> None:
    result = fleet.cli("usage", "--by", "model")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "usage by model, all time" in result.stdout
    assert any("llama" in line and "180" in line for line in lines)
    cells = [line.replace("│", " ").replace("┃", " ").split() for line in lines]
    [total] = [row for row in cells if row[:1] == ["total"]]
    assert total == ["total", "4", "187", "38", "225"]  # 2+2 requests, 150+37, 30+8, 180+45
    nothing = fleet.cli("usage", "--from", "2026-12-03")
    assert nothing.returncode == 0 and "no requests through the gateway in 2026-12-03 to today" in nothing.stdout


def test_login_then_commands_without_a_key_then_logout(fleet: Fleet, tmp_path: Path) -> None:
    config = tmp_path / "config"
    wrong = gpufleet(config, "login", "--server-url", fleet.url, "-u", "admin", "--password", "not-the-password")
    assert wrong.returncode == 1 and "sign-in refused: wrong username or password" in one_error_line(wrong)

    login = gpufleet(config, "login", "--server-url", fleet.url, "-u", "admin", "--password", ADMIN_PASSWORD)
    assert login.returncode == 0, login.stderr
    stored = config / "credentials.json"
    assert stat.S_IMODE(stored.stat().st_mode) == 0o600
    token = json.loads(stored.read_text())[fleet.url]

    listed = gpufleet(config, "users", "list", "--server-url", fleet.url, "--json")
    assert listed.returncode == 0, listed.stderr
    assert "admin" in [u["username"] for u in json.loads(listed.stdout)]

    logout = gpufleet(config, "logout", "--server-url", fleet.url)
    assert logout.returncode == 0, logout.stderr
    assert fleet.url not in json.loads(stored.read_text())
    me = httpx.get(f"{fleet.url}/api/auth/me", headers={"Authorization": f"Bearer {token}"}, trust_env=False)
    assert me.status_code == 401  # the session ended on the server, not only here
    after = gpufleet(config, "users", "list", "--server-url", fleet.url)
    assert after.returncode == 2 and f"not logged in to {fleet.url}" in one_error_line(after)
