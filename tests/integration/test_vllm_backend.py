"""vLLM deployments through the API: the backend is chosen from the source (a safetensors directory →
vllm), a backend that cannot read the source is a 422, and the preview places vLLM before any worker
has it installed (single_gpu, or tensor parallel over a worker's GPUs). SQLite and PostgreSQL."""

from __future__ import annotations

import json
import math
import struct
from pathlib import Path

import httpx

from gpufleet.common.units import GiB
from testkit.hf_model import TinyLlama, write_tiny_llama
from tests.support.builders import register_worker
from tests.support.server import running_server
from tests.support.tiny_gguf import write_tiny_llama as write_tiny_gguf
from tests.support.wait import eventually

LLAMA8 = TinyLlama(
    layers=32, hidden=4096, intermediate=14336, heads=32, kv_heads=8, vocab=128256, max_position_embeddings=8192
)


def sparse_model(directory: Path, shapes: TinyLlama) -> Path:
    """config.json + a safetensors file whose header is real and whose 15 GB of data are a hole."""
    directory.mkdir(parents=True)
    header, offset = {}, 0
    for name, shape in shapes.tensor_shapes().items():
        size = math.prod(shape) * 2
        header[name] = {"dtype": "BF16", "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    with open(directory / "model.safetensors", "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)
    (directory / "config.json").write_text(json.dumps(shapes.config()))
    return directory


def local(name: str, path: Path, **extra: object) -> dict[str, object]:
    return {"name": name, "source": "local_path", "local_path": str(path), **extra}


async def all_ready(admin: httpx.AsyncClient, count: int) -> bool:
    workers = (await admin.get("/api/workers")).json()
    return len(workers) == count and all(w["state"] == "ready" for w in workers)


async def test_vllm_backend_chosen_checked_and_previewed(tmp_path: Path, database_url: str) -> None:
    models = tmp_path / "models"
    tiny = write_tiny_llama(models / "tiny")
    big = sparse_model(models / "llama8", LLAMA8)
    async with (
        running_server(tmp_path / "data", database_url, allowed_model_dirs=str(models)) as server,
        await server.admin() as admin,
    ):
        created = await admin.post("/api/models", json=local("tiny", tiny, replicas=0))
        assert created.status_code == 201, created.text
        assert created.json()["backend"] == "vllm"

        wrong = await admin.post("/api/models", json=local("wrong", tiny, backend="llama.cpp"))
        assert wrong.status_code == 422
        assert "backend llama.cpp serves gguf models" in wrong.json()["detail"]
        assert "use backend vllm or leave backend unset" in wrong.json()["detail"]
        gguf = models / "m.gguf"
        gguf.write_bytes(b"GGUF")
        wrong = await admin.post("/api/models", json=local("wrong2", gguf, backend="vllm"))
        assert wrong.status_code == 422 and "use backend llama.cpp" in wrong.json()["detail"]
        outside = await admin.post("/api/models", json=local("out", tmp_path, backend="vllm"))
        assert outside.status_code == 422 and "outside the directories" in outside.json()["detail"]

        await register_worker(admin, server.token, "h100", gpus=1, port=server.settings.port)
        # 20 GiB GPUs (18 free: 1 reserved, 1 used) claimed 0.8 × 20 = 16 GiB each: LLAMA8 needs 17.8 GiB
        # on one, 10.3 GiB on each of two
        await register_worker(admin, server.token, "small", gpus=2, gpu_memory=20 * GiB, port=server.settings.port)
        await eventually(lambda: all_ready(admin, 2), timeout=10, what="both workers ready")

        async def previewed(body: dict[str, object]) -> dict[str, object] | None:
            result: dict[str, object] = (await admin.post("/api/models/preview", json=body)).json()
            return None if "not ready" in str(result["message"]) else result

        preview = await eventually(lambda: previewed(local("p", tiny)), timeout=10, what="workers ready")
        assert preview["schedulable"], preview
        placement = preview["placements"][0]  # type: ignore[index]
        assert placement["mode"] == "single_gpu" and len(placement["device_ids"]) == 1
        (device,) = placement["device_ids"]
        total = 80 * GiB if device.startswith("h100:") else 20 * GiB
        assert placement["claim"]["vram"] == {device: int(0.9 * total)}  # vLLM's claim: 0.9 of the device
        assert placement["claim"]["engine"]["tensor_parallel_size"] == 1

        pair = {"device_ids": ["small:cuda:0", "small:cuda:1"]}
        preview = (
            await admin.post(
                "/api/models/preview",
                json=local("p", big, gpu_selector=pair, backend_parameters=["--gpu-memory-utilization", "0.8"]),
            )
        ).json()
        assert preview["schedulable"], preview
        placement = preview["placements"][0]
        assert placement["mode"] == "multi_gpu" and placement["device_ids"] == pair["device_ids"]
        assert placement["claim"]["engine"]["tensor_parallel_size"] == 2

        low = local("p", big, backend_parameters=["--gpu-memory-utilization", "0.1"])
        preview = (await admin.post("/api/models/preview", json=low)).json()
        assert not preview["schedulable"]
        assert "insufficient free VRAM for vLLM" in preview["message"] or "too large" in preview["message"], preview


async def test_a_pipeline_across_workers_previews_as_distributed(tmp_path: Path) -> None:
    # Two workers with one 20 GiB GPU each (18 free), claimed 0.8 × 20 = 16 GiB: LLAMA8 needs 17.8 GiB on
    # one GPU, so no worker holds it alone; two pipeline stages of half the layers each fit
    models = tmp_path / "models"
    big = sparse_model(models / "llama8", LLAMA8)
    async with (
        running_server(tmp_path / "data", allowed_model_dirs=str(models)) as server,
        await server.admin() as admin,
    ):
        for name in ("left", "right"):
            await register_worker(admin, server.token, name, gpus=1, gpu_memory=20 * GiB, port=server.settings.port)
        body = local("p", big, backend_parameters=["--gpu-memory-utilization", "0.8"])
        await eventually(lambda: all_ready(admin, 2), timeout=10, what="both workers ready")
        preview = (await admin.post("/api/models/preview", json=body)).json()
        assert preview["schedulable"], preview
        placement = preview["placements"][0]  # type: ignore[index]
        assert placement["mode"] == "distributed"
        engine = placement["claim"]["engine"]
        assert (engine["pipeline_parallel_size"], engine["tensor_parallel_size"]) == (2, 1)
        [part] = placement["subordinates"]
        assert {placement["worker_name"], part["worker_name"]} == {"left", "right"}

        alone = await admin.post("/api/models/preview", json=body | {"distributed_inference_across_workers": False})
        assert not alone.json()["schedulable"]
        assert "enable distributed inference to run it across workers" in alone.json()["message"]


async def test_a_changed_source_picks_the_backend_again(tmp_path: Path) -> None:
    models = tmp_path / "models"
    tiny = write_tiny_llama(models / "tiny")
    gguf = write_tiny_gguf(models / "m.gguf")
    async with (
        running_server(tmp_path / "data", allowed_model_dirs=str(models)) as server,
        await server.admin() as admin,
    ):
        created = (await admin.post("/api/models", json=local("m", tiny, replicas=0))).json()
        assert created["backend"] == "vllm"
        path = f"/api/models/{created['id']}"
        moved = await admin.patch(path, json={"local_path": str(gguf)})  # to a GGUF: llama.cpp (the default)
        assert moved.status_code == 200, moved.text
        assert moved.json()["backend"] in (None, "llama.cpp")
        back = await admin.patch(path, json={"local_path": str(tiny)})
        assert back.status_code == 200 and back.json()["backend"] == "vllm"
        kept = await admin.patch(path, json={"replicas": 0})  # no source change: the backend stays
        assert kept.json()["backend"] == "vllm"
        elsewhere = await admin.patch(path, json={"local_path": str(models / "on-the-workers-only")})
        assert elsewhere.status_code == 200 and elsewhere.json()["backend"] == "vllm"  # cannot tell: kept
        back = await admin.patch(path, json={"local_path": str(tiny)})
        wrong = await admin.patch(path, json={"local_path": str(gguf), "backend": "vllm"})
        assert wrong.status_code == 422 and "use backend llama.cpp" in wrong.json()["detail"]
        assert (await admin.get(path)).json()["local_path"] == str(tiny)  # refused: nothing changed
