"""The data dir is private (issue 12, finding 12): 0700, its files and the SQLite database 0600,
also when an older gpufleet left them readable by others; engines listen on the advertised address."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

from gpufleet.common.paths import secure_data_dir, write_secret_file
from gpufleet.worker.engine_bind import engine_bind_host


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_an_existing_data_dir_is_made_private(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir(mode=0o755)
    data_dir.chmod(0o755)
    for name in ("token", "initial_admin_password", "worker.json", "gpufleet.db", "gpufleet.db-wal"):
        (data_dir / name).write_text("x")
        (data_dir / name).chmod(0o644)
    (data_dir / "logs").mkdir()
    script = data_dir / "deploy.sh"  # a data dir may be a project dir: what is not ours stays as it was
    script.write_text("#!/bin/sh\n")
    script.chmod(0o755)

    secure_data_dir(data_dir, data_dir / "gpufleet.db")

    assert mode(data_dir) == 0o700
    for name in ("token", "initial_admin_password", "worker.json", "gpufleet.db", "gpufleet.db-wal"):
        assert mode(data_dir / name) == 0o600, name
    assert mode(script) == 0o755


def test_a_new_database_is_created_private_and_sqlite_keeps_its_files_so(tmp_path: Path) -> None:
    database = tmp_path / "elsewhere" / "gpufleet.db"
    secure_data_dir(tmp_path / "data", database)
    assert mode(tmp_path / "data") == 0o700 and mode(database) == 0o600
    connection = sqlite3.connect(database)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("CREATE TABLE t (x)")
    connection.execute("INSERT INTO t VALUES (1)")
    connection.commit()
    for suffix in ("-wal", "-shm"):
        assert mode(database.with_name(database.name + suffix)) == 0o600, suffix
    connection.close()


def test_a_secret_file_rewritten_over_an_open_one_is_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "demo_api_key"
    path.write_text("old")
    path.chmod(0o644)
    write_secret_file(path, "new")
    assert mode(path) == 0o600 and path.read_text() == "new\n"


def test_engines_listen_on_the_advertised_address_only() -> None:
    assert engine_bind_host("127.0.0.1", "127.0.0.1") == "127.0.0.1"
    assert engine_bind_host("localhost", "127.0.0.1") == "127.0.0.1"
    assert engine_bind_host("0.0.0.0", "127.0.0.1") == "127.0.0.1"  # the wildcard narrowed to the advertised one
    assert engine_bind_host("127.0.0.1", "10.9.9.9") == "127.0.0.1"
    # behind NAT (an advertised address no interface here has): the wildcard, keys still required
    assert engine_bind_host("0.0.0.0", "192.0.2.77") == "0.0.0.0"
