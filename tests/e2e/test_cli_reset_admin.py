"""``gpufleet reset-admin-password`` on the data dir of a running server: a new password in a 0600
file, the old one refused, the admin's sessions ended, the new one accepted (and to be changed)."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import httpx
import pytest

from gpufleet.server.auth import CACHE_TTL
from tests.support.processes import GpufleetProcess, ports, run_cli
from tests.support.server import ADMIN_PASSWORD

pytestmark = pytest.mark.e2e


def test_a_locked_out_admin_gets_a_new_password_while_the_server_runs(tmp_path: Path) -> None:
    (port,) = ports(1)
    url = f"http://127.0.0.1:{port}"
    data = tmp_path / "data"
    server = GpufleetProcess(
        [
            *("--host", "127.0.0.1", "--port", str(port), "--disable-worker"),
            *("--data-dir", str(data), "--bootstrap-password", ADMIN_PASSWORD),
        ],
        tmp_path / "server.log",
    ).start()
    try:
        server.wait_http(f"{url}/healthz")
        login = {"username": "admin", "password": ADMIN_PASSWORD}
        old_session = httpx.post(f"{url}/api/auth/login", json=login, trust_env=False).json()["access_token"]

        result = run_cli(["reset-admin-password", "--data-dir", str(data)])
        assert result.returncode == 0, result.stderr
        password_file = data / "initial_admin_password"
        assert str(password_file) in result.stdout
        assert stat.S_IMODE(password_file.stat().st_mode) == 0o600
        new_password = password_file.read_text().strip()
        assert new_password not in result.stdout  # written to the file, never printed

        assert httpx.post(f"{url}/api/auth/login", json=login, trust_env=False).status_code == 401
        signed_in = httpx.post(
            f"{url}/api/auth/login", json={"username": "admin", "password": new_password}, trust_env=False
        )
        assert signed_in.status_code == 200, signed_in.text
        me = httpx.get(
            f"{url}/api/auth/me",
            headers={"Authorization": f"Bearer {signed_in.json()['access_token']}"},
            trust_env=False,
        ).json()
        assert me["must_change_password"] is True
        # the old session was deleted in the database; the running server trusts it for at most its
        # cache's lifetime (CACHE_TTL, 5 s) and then refuses it
        deadline = time.monotonic() + CACHE_TTL + 5
        old = {"Authorization": f"Bearer {old_session}"}
        while httpx.get(f"{url}/api/auth/me", headers=old, trust_env=False).status_code != 401:
            assert time.monotonic() < deadline, "the admin's old session still works"
            time.sleep(0.2)

        nowhere = run_cli(["reset-admin-password", "--data-dir", str(tmp_path / "empty")])
        assert nowhere.returncode == 2 and "no gpufleet database" in nowhere.stderr
    finally:
        server.kill()
