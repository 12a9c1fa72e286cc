"""A deployment's ``backend_parameters`` are checked by its engine's description (``gpufleet.engines``):
the same 422 on create, update and preview, and a backend gpufleet cannot run yet is accepted but
never placed, with its instance saying why."""

from __future__ import annotations

import pytest

from tests.support.builders import local_model, register_worker
from tests.support.server import RunningServer


@pytest.mark.parametrize(
    ("parameters", "message"),
    [
        (["-ngl", "99"], "-ngl is set by gpufleet from the placement"),
        (["--tensor-split=1,1"], "--tensor-split is set by gpufleet from the placement"),
        (["-np", "many"], "-np needs a number, not 'many'"),
        (["--flash-attn", "maybe"], "--flash-attn takes on, off or auto, not 'maybe'"),
        (["-ctk", "q3"], "cache type 'q3' is not one of"),
        ([" "], "contains an empty parameter"),
    ],
)
async def test_engine_refuses_bad_parameters_everywhere(
    server: RunningServer, parameters: list[str], message: str
) -> None:
    async with await server.admin() as admin:
        created = await admin.post("/api/models", json=local_model("m", backend_parameters=parameters))
        assert created.status_code == 422, created.text
        assert created.json()["detail"].startswith("backend_parameters: ") and message in created.json()["detail"]
        assert created.json()["errors"] == [{"field": "backend_parameters", "message": created.json()["detail"]}]

        preview = await admin.post("/api/models/preview", json=local_model("m", backend_parameters=parameters))
        assert preview.status_code == 422 and message in preview.json()["detail"], preview.text

        good = await admin.post("/api/models", json=local_model("m", backend_parameters=["-np", "2"]))
        assert good.status_code == 201, good.text
        patched = await admin.patch(f"/api/models/{good.json()['id']}", json={"backend_parameters": parameters})
        assert patched.status_code == 422 and message in patched.json()["detail"], patched.text
        kept = await admin.get(f"/api/models/{good.json()['id']}")
        assert kept.json()["backend_parameters"] == ["-np", "2"]  # nothing half-written


async def test_a_backend_that_cannot_serve_the_model_file_is_refused_with_what_to_do(server: RunningServer) -> None:
    """vLLM serves safetensors directories; a GGUF deployment naming it is refused at once (it used
    to wait pending, when gpufleet had no vLLM), on create and on preview, and nothing is stored."""
    async with await server.admin() as admin:
        await register_worker(admin, server.token, "gpu-node", gpus=1)
        expected = (
            "backend vllm serves safetensors models, but the local_path source holds a gguf model; "
            "use backend llama.cpp or leave backend unset"
        )
        for path in ("/api/models", "/api/models/preview"):
            refused = await admin.post(path, json=local_model("v", backend="vllm"))
            assert refused.status_code == 422, refused.text
            assert refused.json()["detail"] == expected
            assert refused.json()["errors"] == [{"field": "backend", "message": expected}]
        assert (await admin.get("/api/models")).json() == []
