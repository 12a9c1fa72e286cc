"""A database built by the first migration, with rows in every table, upgraded to the newest schema.

0001 stands for the first released schema: gpufleet has no release older than its migrations, and
the first migration may not match the first published version exactly, but no user can hold a
database older than 0001. The test walks the way an upgrade does, one revision at a time: at 0001
it writes a cluster as it looked then (an admin with a session, a user with an API key, a worker
with devices, deployments, a running instance); after each later revision it writes rows into the
tables that revision adds (model files at 0003, a worker with a clear API token at 0004, usage at
0006, model events and gateway load at 0009). Rows of every table but those two newest ones pass
through at least one later migration; those two are created by the head revision itself.

At the head: every row is there with its ids, names, JSON values and foreign keys; new columns hold
their defaults; the services read them. Then a real ``gpufleet start --disable-worker`` serves that
database (on SQLite, the data dir's ``gpufleet.db``): the password, session and API key written at
0001 still sign in, and the API lists the old deployments and workers.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from gpufleet.db.migrate import alembic_config
from gpufleet.db.session import Database
from gpufleet.schemas.usage import UsageGroup
from gpufleet.server import secrets
from gpufleet.server.principal import Principal, PrincipalKind
from gpufleet.server.services import api_keys as api_key_service
from gpufleet.server.services import model_events as model_event_service
from gpufleet.server.services import model_file_records
from gpufleet.server.services import models as model_service
from gpufleet.server.services import usage as usage_service
from gpufleet.server.services import users as user_service
from gpufleet.server.services import workers as worker_service
from gpufleet.server.services.instances import list_instances
from tests.support.processes import GpufleetProcess, ports

GiB = 1024**3
PASSWORD = "an-old-admin-password"
SESSION = "gfs_" + "s" * 43  # an admin session opened before the upgrade
KEY_ID, KEY_SECRET = "a1b2c3d4e5f6", "k" * 43  # alice's API key: gf_<key id>_<secret>
WORKER_CREDENTIAL = "gfw_" + "c" * 43
CLEAR_API_TOKEN = "t" * 43  # written by a 0004-era server in clear; 0008 keeps its hash only
NOW = datetime.now(UTC).replace(microsecond=0)
LATER = NOW + timedelta(days=30)
SERVER_DEADLINE = 20.0


def worker_status(name: str, gpus: int) -> dict[str, Any]:
    devices: list[dict[str, Any]] = [
        {
            "index": i,
            "type": "cuda",
            "vendor": "nvidia",
            "name": "NVIDIA L4",
            "memory_total": 24 * GiB,
            "memory_used": GiB,
            "compute_capability": "8.9",
            "simulated": True,
        }
        for i in range(gpus)
    ]
    devices.append(
        {"index": 0, "type": "cpu", "vendor": "amd", "name": "EPYC", "memory_total": 64 * GiB, "memory_used": 0}
    )
    return {
        "hostname": name,
        "os": "linux",
        "arch": "amd64",
        "cpu_cores": 32,
        "memory_total": 64 * GiB,
        "memory_used": 8 * GiB,
        "devices": devices,
        "gpufleet_version": "0.1.0",
    }


def insert(connection: Connection, table: str, row: dict[str, Any]) -> Any:
    """One row through the table as the database has it at this revision (reflected: JSON columns
    take Python values); returns its generated id, so no sequence of PostgreSQL falls behind."""
    reflected = sa.Table(table, sa.MetaData(), autoload_with=connection)
    statement = reflected.insert().values(**row)
    if "id" in reflected.c and "id" not in row:
        return connection.execute(statement.returning(reflected.c.id)).scalar_one()
    connection.execute(statement)
    return row.get("id")


def at_0001(connection: Connection, password_hash: str, ids: dict[str, Any]) -> None:
    """The cluster as the first schema held it: a row in each of its seven tables (more where it
    takes two to check a foreign key or a JSON shape)."""
    ids["admin"] = insert(
        connection,
        "users",
        {
            "username": "admin",
            "password_hash": password_hash,
            "role": "admin",
            "must_change_password": False,
            "created_at": NOW,
            "updated_at": NOW,
        },
    )
    ids["alice"] = insert(
        connection,
        "users",
        {
            "username": "alice",
            "password_hash": password_hash,
            "role": "user",
            "must_change_password": True,
            "created_at": NOW,
            "updated_at": NOW,
        },
    )
    ids["session"] = insert(
        connection,
        "user_sessions",
        {"token_hash": secrets.sha256(SESSION), "user_id": ids["admin"], "created_at": NOW, "expires_at": LATER},
    )
    ids["key"] = insert(
        connection,
        "api_keys",
        {
            "name": "ci",
            "key_id": KEY_ID,
            "secret_hash": secrets.sha256(KEY_SECRET),
            "user_id": ids["alice"],
            "expires_at": LATER,
            "allowed_models": ["qwen"],
            "created_at": NOW,
        },
    )
    ids["worker"] = insert(
        connection,
        "workers",
        {
            "name": "gpu-node-1",
            "ip": "10.0.0.11",
            "port": 10150,
            "state": "ready",
            "state_message": None,
            "maintenance": False,
            "labels": {"zone": "eu-west", "os": "linux", "arch": "amd64", "gpu-vendor": "nvidia"},
            "system_reserved": {"ram": 2 * GiB, "vram": GiB},
            "status": worker_status("gpu-node-1", gpus=1),
            "credential_hash": secrets.sha256(WORKER_CREDENTIAL),
            "heartbeat_at": NOW,
            "reachable": True,
            "created_at": NOW,
            "updated_at": NOW,
        },
    )
    for device_id, kind, name, memory in (
        ("gpu-node-1:cuda:0", "cuda", "NVIDIA L4", 24 * GiB),
        ("gpu-node-1:cpu:0", "cpu", "EPYC", 64 * GiB),
    ):
        insert(
            connection,
            "devices",
            {
                "id": device_id,
                "worker_id": ids["worker"],
                "index": 0,
                "type": kind,
                "vendor": "nvidia" if kind == "cuda" else "amd",
                "name": name,
                "uuid": "GPU-8d1b" if kind == "cuda" else None,
                "memory_total": memory,
                "memory_used": GiB,
                "compute_capability": "8.9" if kind == "cuda" else None,
                "unified_memory": False,
                "simulated": True,
                "cores": 32 if kind == "cpu" else None,
                "sort_key": 0 if kind == "cuda" else 1,
                "updated_at": NOW,
            },
        )
    model = {
        "replicas": 1,
        "placement_strategy": "spread",
        "cpu_offloading": False,
        "distributed_inference_across_workers": True,
        "created_at": NOW,
        "updated_at": NOW,
    }
    ids["qwen"] = insert(
        connection,
        "models",
        {
            **model,
            "name": "qwen",
            "source": "local_path",
            "local_path": "/models/qwen2.5-0.5b-instruct-q4_k_m.gguf",
            "backend": "llama.cpp",
            "backend_parameters": ["--no-mmap"],
            "worker_selector": {"zone": "eu-west"},
            "gpu_selector": {"device_ids": ["gpu-node-1:cuda:0"]},
            "ctx_size": 4096,
            "description": "the team's small chat model",
        },
    )
    ids["embedder"] = insert(
        connection,
        "models",
        {
            **model,
            "name": "embedder",
            "source": "huggingface",
            "huggingface_repo_id": "nomic-ai/nomic-embed-text-v1.5-GGUF",
            "huggingface_filename": "*Q4_K_M.gguf",
            "backend_parameters": [],
            "worker_selector": {},
            "replicas": 0,
            "placement_strategy": "binpack",
        },
    )
    ids["instance"] = insert(
        connection,
        "model_instances",
        {
            "name": "qwen-1",
            "model_id": ids["qwen"],
            "model_name": "qwen",
            "state": "running",
            "worker_id": ids["worker"],
            "worker_name": "gpu-node-1",
            "device_ids": ["gpu-node-1:cuda:0"],
            "port": 40000,
            "pid": 4242,
            "claim": {"ram": GiB, "vram": {"gpu-node-1:cuda:0": 3 * GiB}},
            "subordinates": [],
            "restart_count": 2,
            "download_progress": 1.0,
            "version": 7,
            "created_at": NOW,
            "updated_at": NOW,
        },
    )


def at_0003(connection: Connection, ids: dict[str, Any]) -> None:
    ids["file"] = insert(
        connection,
        "model_files",
        {
            "worker_id": ids["worker"],
            "source": "local_path",
            "source_key": "local_path:/models/qwen2.5-0.5b-instruct-q4_k_m.gguf",
            "state": "ready",
            "download_progress": 1.0,
            "size": 397 * 1024**2,
            "resolved_paths": ["/models/qwen2.5-0.5b-instruct-q4_k_m.gguf"],
            "created_at": NOW,
            "updated_at": NOW,
        },
    )


def at_0004(connection: Connection, ids: dict[str, Any]) -> None:
    """A worker of the 0004 era, with its API token in clear."""
    ids["worker2"] = insert(
        connection,
        "workers",
        {
            "name": "cpu-node-2",
            "ip": "10.0.0.12",
            "port": 10150,
            "state": "not_ready",
            "state_message": "no heartbeat for 3 intervals",
            "maintenance": True,
            "labels": {"os": "linux", "arch": "amd64", "gpu-vendor": "none"},
            "system_reserved": {"ram": GiB, "vram": 0},
            "status": worker_status("cpu-node-2", gpus=0),
            "credential_hash": secrets.sha256(WORKER_CREDENTIAL + "2"),
            "api_token": CLEAR_API_TOKEN,
            "created_at": NOW,
            "updated_at": NOW,
        },
    )


def at_0006(connection: Connection, ids: dict[str, Any]) -> None:
    ids["usage"] = insert(
        connection,
        "usage_records",
        {
            "day": date.today().isoformat(),
            "user_id": ids["alice"],
            "api_key_id": ids["key"],
            "model_name": "qwen",
            "requests": 3,
            "prompt_tokens": 120,
            "completion_tokens": 45,
        },
    )


def at_0009(connection: Connection, ids: dict[str, Any]) -> None:
    ids["event"] = insert(
        connection,
        "model_events",
        {"model_id": ids["qwen"], "kind": "load", "message": "a request arrived with no instance", "created_at": NOW},
    )
    insert(
        connection,
        "gateway_load",
        {"server_id": "server-a", "model_id": ids["qwen"], "in_flight": 1, "queued": 0, "updated_at": NOW},
    )


def revisions() -> list[str]:
    """Every revision id, oldest first."""
    script = ScriptDirectory.from_config(alembic_config())
    return [revision.revision for revision in reversed(list(script.walk_revisions()))]


async def build_and_upgrade(db: Database, ids: dict[str, Any]) -> None:
    config = alembic_config()
    password_hash = await secrets.hash_password(PASSWORD)
    writers = {"0003": at_0003, "0004": at_0004, "0006": at_0006, "0009_on_demand": at_0009}
    steps = revisions()
    assert steps[0] == "0001" and set(writers) <= set(steps), steps
    assert steps[-1] == "0010_ray_head", f"a new migration ({steps[-1]}): give its new tables rows here"

    def step(connection: Connection, target: str) -> None:
        config.attributes["connection"] = connection
        command.upgrade(config, target)
        if target == "0001":
            at_0001(connection, password_hash, ids)
        elif target in writers:
            writers[target](connection, ids)

    for target in steps:
        async with db.write_engine.begin() as connection:
            await connection.run_sync(step, target)


async def rows(db: Database, query: str) -> list[dict[str, Any]]:
    async with db.write_engine.connect() as connection:
        return [dict(row._mapping) for row in (await connection.execute(sa.text(query))).all()]


async def assert_rows_survived(db: Database, ids: dict[str, Any]) -> None:
    """The head schema holds every row as written, new columns with their defaults (by SQL)."""
    users = await rows(db, "SELECT id, username, role, must_change_password FROM users ORDER BY id")
    assert [(u["id"], u["username"], u["role"], bool(u["must_change_password"])) for u in users] == [
        (ids["admin"], "admin", "admin", False),
        (ids["alice"], "alice", "user", True),
    ]
    assert await rows(db, "SELECT id, user_id FROM user_sessions") == [{"id": ids["session"], "user_id": ids["admin"]}]
    [key] = await rows(db, "SELECT * FROM api_keys")
    assert (key["id"], key["user_id"], key["key_id"], key["name"]) == (ids["key"], ids["alice"], KEY_ID, "ci")
    assert (key["requests_per_minute"], key["tokens_per_day"]) == (None, None)  # 0006: no limits
    workers = {w["name"]: w for w in await rows(db, "SELECT * FROM workers ORDER BY id")}
    assert [w["id"] for w in workers.values()] == [ids["worker"], ids["worker2"]]
    assert workers["gpu-node-1"]["api_token_hash"] is None  # 0001: no token yet
    assert workers["cpu-node-2"]["api_token_hash"] == hashlib.sha256(CLEAR_API_TOKEN.encode()).hexdigest()  # 0008
    devices = await rows(db, "SELECT id, worker_id FROM devices ORDER BY id")
    assert devices == [
        {"id": "gpu-node-1:cpu:0", "worker_id": ids["worker"]},
        {"id": "gpu-node-1:cuda:0", "worker_id": ids["worker"]},
    ]
    [instance] = await rows(
        db,
        "SELECT id, model_id, worker_id, version, placement_backoff, spec_hash, engine_command, ray_head"
        " FROM model_instances",
    )
    assert instance == {
        "id": ids["instance"],
        "model_id": ids["qwen"],
        "worker_id": ids["worker"],
        "version": 7,
        "placement_backoff": None,  # 0002
        "spec_hash": None,  # 0005: NULL on both sides counts as current, nothing rolls
        "engine_command": None,  # 0007
        "ray_head": None,  # 0010: no instance ran on Ray before
    }
    models = {m["name"]: m for m in await rows(db, "SELECT * FROM models ORDER BY id")}
    assert [m["id"] for m in models.values()] == [ids["qwen"], ids["embedder"]]
    for model in models.values():  # 0009's defaults: fixed replicas as before, priority 0, default queue
        assert (model["min_replicas"], model["max_replicas"], model["idle_timeout"]) == (None, None, None)
        assert (model["priority"], model["max_queue"], model["queue_timeout"]) == (0, 100, 120)
        assert model["spec_hash"] is None
    [usage] = await rows(db, "SELECT * FROM usage_records")
    assert (usage["id"], usage["user_id"], usage["api_key_id"], usage["hour"]) == (
        ids["usage"],
        ids["alice"],
        ids["key"],
        0,  # 0007: existing usage gets hour 0
    )
    assert (usage["requests"], usage["prompt_tokens"], usage["completion_tokens"]) == (3, 120, 45)
    assert await rows(db, "SELECT id, worker_id FROM model_files") == [{"id": ids["file"], "worker_id": ids["worker"]}]
    assert await rows(db, "SELECT id, model_id FROM model_events") == [{"id": ids["event"], "model_id": ids["qwen"]}]
    assert await rows(db, "SELECT server_id, model_id FROM gateway_load") == [
        {"server_id": "server-a", "model_id": ids["qwen"]}
    ]


async def assert_services_read_them(db: Database, ids: dict[str, Any]) -> None:
    """The ORM and the services read the upgraded rows: JSON columns come back as written."""
    admin = Principal(PrincipalKind.ADMIN, "session", user_id=ids["admin"], username="admin")
    models, _ = await model_service.list_models(db)
    qwen, embedder = models
    assert (qwen.id, qwen.name, embedder.id, embedder.name) == (ids["qwen"], "qwen", ids["embedder"], "embedder")
    assert qwen.backend_parameters == ["--no-mmap"] and qwen.worker_selector == {"zone": "eu-west"}
    assert qwen.gpu_selector is not None and qwen.gpu_selector.device_ids == ["gpu-node-1:cuda:0"]
    assert qwen.ctx_size == 4096 and qwen.priority == 0 and qwen.max_queue == 100
    assert embedder.huggingface_repo_id == "nomic-ai/nomic-embed-text-v1.5-GGUF" and embedder.replicas == 0
    workers, _ = await worker_service.list_workers(db)  # by name
    node2, node1 = workers
    assert (node1.id, node1.name, node2.id, node2.name) == (ids["worker"], "gpu-node-1", ids["worker2"], "cpu-node-2")
    assert node1.labels["zone"] == "eu-west" and node1.system_reserved.ram == 2 * GiB
    assert node1.gpu_count == 1 and node1.vram_total == 24 * GiB and node1.gpufleet_version == "0.1.0"
    assert [d.id for d in node1.devices] == ["gpu-node-1:cuda:0", "gpu-node-1:cpu:0"]
    assert node2.state == "maintenance" or node2.state == "not_ready"
    [instance], _ = await list_instances(db, admin)
    assert (instance.id, instance.model_id, instance.worker_id) == (ids["instance"], ids["qwen"], ids["worker"])
    assert instance.device_ids == ["gpu-node-1:cuda:0"] and instance.restart_count == 2
    [key] = await api_key_service.list_api_keys(db, admin, all_users=True)
    assert key.id == ids["key"] and key.allowed_models == ["qwen"]
    assert [u.username for u in await user_service.list_users(db)] == ["admin", "alice"]
    [file] = await model_file_records.list_files(db)
    assert (
        file.id == ids["file"]
        and file.worker_name == "gpu-node-1"
        and file.resolved_paths == ["/models/qwen2.5-0.5b-instruct-q4_k_m.gguf"]
    )
    [event] = await model_event_service.list_events(db, ids["qwen"])
    assert event.id == ids["event"] and event.kind == "load"
    [usage] = await usage_service.usage(db, admin, UsageGroup.MODEL, None, None)
    assert usage.model_dump()["requests"] == 3


def serve_upgraded(database_url: str, data_dir: Path, log: Path, ids: dict[str, Any]) -> None:
    """``gpufleet start --disable-worker`` on the upgraded database, as a person would run it."""
    port = ports(1)[0]
    url = f"http://127.0.0.1:{port}"
    server = GpufleetProcess(
        [
            "--disable-worker",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--data-dir",
            str(data_dir),
            "--database-url",
            database_url,
        ],
        log,
    ).start()
    try:
        server.wait_http(f"{url}/healthz", timeout=SERVER_DEADLINE)
        with httpx.Client(base_url=url, timeout=10, trust_env=False) as client:
            login = client.post("/api/auth/login", json={"username": "admin", "password": PASSWORD})
            assert login.status_code == 200, login.text  # the argon2 hash written at 0001
            admin = {"Authorization": f"Bearer {login.json()['access_token']}"}
            models = client.get("/api/models", headers=admin)
            assert models.status_code == 200, models.text
            assert [(m["id"], m["name"]) for m in models.json()] == [
                (ids["qwen"], "qwen"),
                (ids["embedder"], "embedder"),
            ]
            workers = client.get("/api/workers", headers=admin).json()
            assert {(w["id"], w["name"]) for w in workers} == {
                (ids["worker"], "gpu-node-1"),
                (ids["worker2"], "cpu-node-2"),
            }
            me = client.get("/api/auth/me", headers={"Authorization": f"Bearer {SESSION}"})
            assert me.status_code == 200 and me.json()["username"] == "admin", me.text  # a 0001 session
            keys = client.get("/api/api-keys", headers={"Authorization": f"Bearer gf_{KEY_ID}_{KEY_SECRET}"})
            assert keys.status_code == 200, keys.text  # alice's 0001 API key still signs in, and finds itself
            assert [(k["id"], k["allowed_models"]) for k in keys.json()] == [(ids["key"], ["qwen"])]
    finally:
        assert server.stop() == 0, server.output()[-3000:]
    assert "Traceback" not in server.output() and "ERROR" not in server.output(), server.output()[-3000:]


async def test_a_database_of_the_first_schema_upgrades_to_the_newest_with_every_row(
    database_url: str, tmp_path: Path
) -> None:
    ids: dict[str, Any] = {}
    db = Database(database_url)
    try:
        await build_and_upgrade(db, ids)
        await assert_rows_survived(db, ids)
        await assert_services_read_them(db, ids)
    finally:
        await db.dispose()
    # SQLite: the database file is the data dir's gpufleet.db (``database_url`` puts it in tmp/db)
    data_dir = tmp_path / "db" if database_url.startswith("sqlite") else tmp_path / "data"
    serve_upgraded(database_url, data_dir, tmp_path / "server.log", ids)
