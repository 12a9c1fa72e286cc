"""Time one placement decision of GPUStack 2.3.0's own scheduler on a synthetic cluster.

Run with the python of the side venv made by ``gpustack_env.sh`` (NOT the gpufleet venv):

    PY=$(bash benchmarks/peers/gpustack_env.sh | tail -1)
    $PY benchmarks/peers/gpustack_scheduler.py scenario.json

The scenario (JSON file) is::

    {"workers": 10, "gpus_per_worker": 8, "gpu_memory": 85899345920,
     "gpu_name": "NVIDIA H100 80GB HBM3", "full_gpus_per_worker": 0, "ram": 2199023255552,
     "model": {"path": "/abs/model.gguf", "replicas": 1, "placement_strategy": "spread",
               "backend": "llama.cpp"},
     "decisions": 3}

What runs is GPUStack's own code path: ``gpustack.scheduler.scheduler.find_candidate``
(the call ``Scheduler._schedule_one`` makes), with a real ``AsyncSession`` on a
PostgreSQL database migrated by GPUStack's own alembic migrations, the llama.cpp
community backend materialised by GPUStack's own ``InferenceBackendController``, and
Worker / Model / Cluster rows in that database. Occupied GPUs are modelled the way
GPUStack itself sees them: RUNNING ModelInstances whose ``computed_resource_claim``
takes each occupied GPU's whole memory.

The only substitution: GPUStack 2.3.0 downloads its ``gguf-parser`` binary at run time
(from GitHub), which cannot happen offline. The one lookup of that binary's location
in ``gpustack.scheduler.calculator`` is redirected to
``benchmarks/peers/gguf-parser-wrapper.sh``, which runs gguf-parser v0.11 (bundled in
the ``gpustack==0.3.0`` wheel) with GPUStack's argv, translating the options v0.11
spells differently or lacks.

Environment:
    GPUSTACK_BENCH_DB_URL   default postgresql://postgres@127.0.0.1:5432/gpustack_bench
    GGUF_PARSER_BIN         gguf-parser v0.11 binary (default: the gpufleet cache copy)
    GPUFLEET_CACHE_DIR      cache root (default ~/.cache/gpufleet)

Last line of stdout: {"ok": true, "seconds": [...], "candidate": "..."} or
{"ok": false, "error": "..."}.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

HERE = Path(__file__).resolve().parent
WRAPPER = HERE / "gguf-parser-wrapper.sh"
DEFAULT_DB = "postgresql://postgres@127.0.0.1:5432/gpustack_bench"
GIB = 1024**3


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def ensure_database(db_url: str) -> None:
    """CREATE DATABASE if missing, then run GPUStack's own alembic migrations to head."""
    import importlib.util

    import psycopg2
    from alembic import command
    from alembic.config import Config as AlembicConfig
    from sqlalchemy.engine import make_url

    url = make_url(db_url)
    admin = psycopg2.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        dbname="postgres",
    )
    admin.autocommit = True
    with admin.cursor() as cur:
        cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (url.database,))
        if cur.fetchone() is None:
            cur.execute(f'CREATE DATABASE "{url.database}"')
    admin.close()

    # Same as gpustack.server.server.Server._run_migrations.
    pkg_path = importlib.util.find_spec("gpustack").submodule_search_locations[0]
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", os.path.join(pkg_path, "migrations"))
    cfg.set_main_option("sqlalchemy.url", db_url.replace("%", "%%"))
    command.upgrade(cfg, "head")


def patch_gguf_parser(scratch: str) -> None:
    """Point GPUStack's gguf-parser lookup at the offline wrapper.

    ``_gguf_parser_command`` takes the binary from
    ``pkg_resources.files("gpustack.third_party.bin.gguf-parser") / "gguf-parser"``, a
    package folder 2.3.0 fills by downloading at run time (absent offline:
    ModuleNotFoundError). Only that one lookup is redirected, to a folder whose
    ``gguf-parser`` is a link to the wrapper; the command GPUStack builds is unchanged.
    """
    from gpustack.scheduler import calculator

    bin_dir = Path(scratch) / "gguf-parser-bin"
    bin_dir.mkdir(parents=True, exist_ok=True)
    link = bin_dir / "gguf-parser"
    if not link.exists():
        link.symlink_to(WRAPPER)

    resources = calculator.pkg_resources
    real_files = resources.files

    class _Resources:
        def __getattr__(self, name):
            return getattr(resources, name)

        @staticmethod
        def files(anchor):
            if str(anchor) == "gpustack.third_party.bin.gguf-parser":
                return bin_dir
            return real_files(anchor)

    calculator.pkg_resources = _Resources()


async def seed(db_url: str, scenario: dict, cache_dir: str):
    """Fill the database: backends, cluster, workers, occupied-GPU instances, the model."""
    from gpustack.config.config import Config, set_global_config
    from gpustack.server.db import async_session
    from gpustack.server.init_db import init_db
    from sqlalchemy import text

    cfg = Config(
        database_url=db_url,
        data_dir=os.path.join(cache_dir, "data"),
        cache_dir=os.path.join(cache_dir, "cache"),
        disable_worker=True,
    )
    set_global_config(cfg)
    await init_db(db_url)

    from gpustack.schemas.clusters import Cluster, ClusterProvider, ClusterStateEnum
    from gpustack.schemas.models import (
        ComputedResourceClaim,
        Model,
        ModelInstance,
        ModelInstanceStateEnum,
        PlacementStrategyEnum,
        SourceEnum,
    )
    from gpustack.schemas.workers import (
        CPUInfo,
        GPUCoreInfo,
        GPUDeviceStatus,
        MemoryInfo,
        SystemReserved,
        Worker,
        WorkerStateEnum,
        WorkerStatus,
    )
    from gpustack.server.controllers import InferenceBackendController

    # Start from a clean slate each run (only the rows this benchmark makes).
    async with async_session() as session:
        for table in ("model_instances", "models", "workers"):
            await session.exec(text(f"DELETE FROM {table}"))
        await session.commit()

    # GPUStack's own seeding of built-in + community inference backends (llama.cpp is
    # a community backend in 2.x), exactly as the leader does at start.
    ctl = InferenceBackendController()
    async with async_session() as session:
        await ctl._init_built_in_backends(session)
    await ctl._seed_builtin_source()
    await ctl._reconcile()

    from gpustack.schemas.principals import (
        init_authenticated_principal_id,
        init_platform_principal_id,
        platform_principal_id,
    )

    # The principals a server binds at start (Server._init_data), then one cluster.
    async with async_session() as session:
        await init_platform_principal_id(session)
        await init_authenticated_principal_id(session)
    owner = platform_principal_id()
    async with async_session() as session:
        cluster = await Cluster.one_by_field(session, "name", "bench")
        if cluster is None:
            cluster = await Cluster.create(
                session,
                Cluster(
                    name="bench",
                    description="gpufleet scheduler benchmark",
                    provider=ClusterProvider.Docker,
                    state=ClusterStateEnum.READY,
                    registration_token="",
                    owner_principal_id=owner,
                ),
            )
        cluster_id = cluster.id

    n_workers = int(scenario["workers"])
    n_gpus = int(scenario.get("gpus_per_worker", 8))
    gpu_mem = int(scenario.get("gpu_memory", 80 * GIB))
    gpu_name = scenario.get("gpu_name", "NVIDIA H100 80GB HBM3")
    n_full = int(scenario.get("full_gpus_per_worker", 0))
    ram = int(scenario.get("ram", 2048 * GIB))

    def make_worker(i: int) -> Worker:
        gpus = [
            GPUDeviceStatus(
                vendor="nvidia",
                type="cuda",
                index=g,
                device_index=g,
                name=gpu_name,
                uuid=f"GPU-{i:05d}-{g}",
                driver_version="570.124.06",
                runtime_version="12.8",
                compute_capability="9.0",
                core=GPUCoreInfo(total=132, utilization_rate=0.0),
                memory=MemoryInfo(total=gpu_mem, used=0, utilization_rate=0.0, is_unified_memory=False),
                temperature=30.0,
            )
            for g in range(n_gpus)
        ]
        return Worker(
            name=f"worker-{i:05d}",
            hostname=f"worker-{i:05d}",
            ip=f"10.{(i >> 16) & 255}.{(i >> 8) & 255}.{i & 255}",
            ifname="eth0",
            port=10150,
            worker_uuid=f"uuid-{i:05d}",
            cluster_id=cluster_id,
            owner_principal_id=owner,
            state=WorkerStateEnum.READY,
            labels={"os": "linux", "arch": "amd64"},
            system_reserved=SystemReserved(ram=2 * GIB, vram=1 * GIB),
            status=WorkerStatus(
                cpu=CPUInfo(total=224, utilization_rate=0.0),
                memory=MemoryInfo(total=ram, used=0, utilization_rate=0.0, is_unified_memory=False),
                gpu_devices=gpus,
            ),
        )

    async with async_session() as session:
        rows = [make_worker(i) for i in range(n_workers)]
        session.add_all(rows)
        await session.commit()
        workers = await Worker.all(session)

    m = scenario["model"]
    path = os.path.abspath(m["path"])  # noqa: ASYNC240
    backend = m.get("backend", "llama.cpp")
    model_kwargs = dict(
        name=m.get("name", Path(path).stem.replace(".", "-").replace("_", "-").lower()),
        source=SourceEnum.LOCAL_PATH,
        local_path=path,
        replicas=int(m.get("replicas", 1)),
        placement_strategy=PlacementStrategyEnum(m.get("placement_strategy", "spread")),
        backend=backend,
        backend_parameters=list(m.get("backend_parameters", [])),
        cluster_id=cluster_id,
        owner_principal_id=owner,
        distributed_inference_across_workers=bool(m.get("distributed", True)),
        cpu_offloading=bool(m.get("cpu_offloading", False)),
    )
    async with async_session() as session:
        model = await Model.create(session, Model(**model_kwargs))
        if n_full:
            filler = await Model.create(
                session,
                Model(
                    name="filler",
                    source=SourceEnum.LOCAL_PATH,
                    local_path="/nonexistent/filler",
                    replicas=n_workers,
                    backend="Custom",
                    cluster_id=cluster_id,
                    owner_principal_id=owner,
                    distributed_inference_across_workers=False,
                    cpu_offloading=False,
                ),
            )
            # One running instance per worker holding the first n_full GPUs whole.
            for w in workers:
                mi = ModelInstance(
                    name=f"filler-{w.name}",
                    model_id=filler.id,
                    model_name=filler.name,
                    source=SourceEnum.LOCAL_PATH,
                    local_path="/nonexistent/filler",
                    cluster_id=cluster_id,
                    owner_principal_id=owner,
                    worker_id=w.id,
                    worker_name=w.name,
                    worker_ip=w.ip,
                    state=ModelInstanceStateEnum.RUNNING,
                    gpu_type="cuda",
                    gpu_indexes=list(range(n_full)),
                    computed_resource_claim=ComputedResourceClaim(ram=0, vram={g: gpu_mem for g in range(n_full)}),
                )
                session.add(mi)
            await session.commit()
    return cfg, model, workers


async def run(scenario: dict) -> dict:
    db_url = os.environ.get("GPUSTACK_BENCH_DB_URL", DEFAULT_DB)
    cache_dir = tempfile.mkdtemp(prefix="gpustack-bench-")
    log(f"migrating {db_url} with GPUStack's alembic migrations")
    await asyncio.to_thread(ensure_database, db_url)
    patch_gguf_parser(cache_dir)

    t0 = time.perf_counter()
    cfg, model, workers = await seed(db_url, scenario, cache_dir)
    log(f"seeded {len(workers)} workers in {time.perf_counter() - t0:.1f}s")

    from gpustack.scheduler.scheduler import evaluate_gguf_model, find_candidate
    from gpustack.schemas.models import Model, ModelInstance
    from gpustack.schemas.workers import Worker
    from gpustack.server.db import async_session
    from sqlalchemy.orm import selectinload

    # What Scheduler._evaluate_instance does once per model before it queues the
    # instance (sets categories / distributable from gguf-parser's output).
    t0 = time.perf_counter()
    async with async_session() as session:
        model = await Model.one_by_id(session, model.id)
        if await evaluate_gguf_model(model, workers):
            await model.update(session)
    evaluate_s = time.perf_counter() - t0
    log(f"evaluate_gguf_model: {evaluate_s:.2f}s distributable={model.distributable}")

    seconds = []
    candidate = None
    messages = []
    for d in range(int(scenario.get("decisions", 3))):
        # Fresh reads each time, as _schedule_one does (not timed: DB round-trips of
        # the whole fleet are the server's cost of a decision, reported separately).
        t_read = time.perf_counter()
        async with async_session() as session:
            workers = await Worker.all(session)
            model = await Model.one_by_id(session, model.id)
            model_instances = await ModelInstance.all(session, options=[selectinload(ModelInstance.model)])
            read_s = time.perf_counter() - t_read
            t0 = time.perf_counter()
            candidate, messages = await find_candidate(session, cfg, model, workers, model_instances)
            dt = time.perf_counter() - t0
        seconds.append(dt)
        log(f"decision {d}: find_candidate {dt:.3f}s (db reads {read_s:.3f}s)")

    if candidate is None:
        return {
            "ok": True,
            "seconds": seconds,
            "median": statistics.median(seconds),
            "candidate": None,
            "messages": messages,
            "evaluate_seconds": evaluate_s,
        }
    desc = f"{candidate.worker.name} gpus={candidate.gpu_indexes}"
    if candidate.subordinate_workers:
        desc += " + " + ", ".join(f"{s.worker_name} gpus={s.gpu_indexes}" for s in candidate.subordinate_workers)
    claim = candidate.computed_resource_claim
    return {
        "ok": True,
        "seconds": seconds,
        "median": statistics.median(seconds),
        "candidate": desc,
        "vram_claim": {str(k): v for k, v in (claim.vram or {}).items()} if claim else None,
        "score": candidate.score,
        "evaluate_seconds": evaluate_s,
    }


def main() -> int:
    if len(sys.argv) != 2:
        print(json.dumps({"ok": False, "error": "usage: gpustack_scheduler.py SCENARIO.json"}))
        return 2
    # GPUStack's own logging setup (it adds Logger.trace, which its code calls), then
    # quieter than a server's INFO so log I/O does not count in the timings.
    from gpustack.logging import setup_logging

    setup_logging(debug=False)
    logging.getLogger().setLevel(os.environ.get("GPUSTACK_BENCH_LOG", "WARNING"))
    try:
        scenario = json.loads(Path(sys.argv[1]).read_text())
        result = asyncio.run(run(scenario))
    except Exception as e:  # noqa: BLE001
        traceback.print_exc(file=sys.stderr)
        result = {"ok": False, "error": f"{type(e).__name__}: {e}"}
    print(json.dumps(result))
    return 0 if result.get("ok") else 1


if __name__ == "__main__":
    sys.exit(main())
