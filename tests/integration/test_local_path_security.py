"""``local_path`` on the server: confined to ``--allowed-model-dirs`` (after resolving symlinks and ``..``)
at preview, create and update, before anything is read; inside them, a file the preview knows cannot
run (not a GGUF, truncated) is refused at create with the reason. Issue 12, finding 8."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from testkit.synthetic import preset, write_model
from tests.support.server import RunningServer, running_server
from tests.support.wait import eventually

SECRET = "root:$6$not-a-real-hash:19000:0:99999:7:::\n"


@dataclass
class Setup:
    server: RunningServer
    admin: httpx.AsyncClient
    models: Path  # the one allowed directory
    outside: Path  # a readable file outside it, shaped like /etc/shadow


@pytest.fixture
async def setup(tmp_path: Path) -> AsyncIterator[Setup]:
    models = tmp_path / "models"
    write_model(models / "good.gguf", preset("llama-tiny"), sparse=True)
    outside = tmp_path / "elsewhere" / "shadow"
    outside.parent.mkdir()
    outside.write_text(SECRET)
    async with (
        running_server(tmp_path / "data", allowed_model_dirs=str(models)) as server,
        await server.admin() as admin,
    ):
        yield Setup(server, admin, models, outside)


def body(name: str, path: Path | str, **extra: Any) -> dict[str, Any]:
    return {"name": name, "source": "local_path", "local_path": str(path), **extra}


def refused_outside(response: httpx.Response, models: Path) -> None:
    """422 naming the allowed directory, and nothing read from the file."""
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert "outside the directories models may come from" in detail and str(models.resolve()) in detail, detail
    assert "--allowed-model-dirs" in detail
    assert "b'root" not in detail and "starts with" not in detail and "GGUF" not in detail, detail


def escapes(setup: Setup) -> list[Path | str]:
    """Paths that lead out of the allowed directory: plainly, by ``..``, by a symlink, by a
    directory whose GGUF is a symlink, by a split GGUF whose second shard is a symlink."""
    link = setup.models / "link.gguf"
    link.symlink_to(setup.outside)
    folder = setup.models / "folder"
    folder.mkdir()
    (folder / "model.gguf").symlink_to(setup.outside)
    split = setup.models / "split"
    split.mkdir()
    write_model(split / "m-00001-of-00002.gguf", preset("llama-tiny"), sparse=True)
    (split / "m-00002-of-00002.gguf").symlink_to(setup.outside)
    paths: list[Path | str] = [
        setup.outside,
        f"{setup.models}/../elsewhere/shadow",
        link,
        folder,
        split / "m-00001-of-00002.gguf",
    ]
    if Path("/etc/shadow").exists():
        paths.append("/etc/shadow")
    return paths


async def test_paths_outside_the_allowed_dirs_are_refused_before_any_read(setup: Setup) -> None:
    admin = setup.admin
    good = (await admin.post("/api/models", json=body("good", setup.models / "good.gguf"))).json()
    assert "id" in good, good
    for path in escapes(setup):
        refused_outside(await admin.post("/api/models/preview", json=body("p", path)), setup.models)
        refused_outside(await admin.post("/api/models", json=body("bad", path)), setup.models)
        refused_outside(await admin.patch(f"/api/models/{good['id']}", json={"local_path": str(path)}), setup.models)
    assert [m["name"] for m in (await admin.get("/api/models")).json()] == ["good"]
    assert (await admin.get(f"/api/models/{good['id']}")).json()["local_path"] == str(setup.models / "good.gguf")


async def test_a_file_that_cannot_run_is_refused_at_create_with_the_reason(setup: Setup) -> None:
    admin, models = setup.admin, setup.models
    (models / "notes.gguf").write_text("these are not weights\n")
    whole = (models / "good.gguf").read_bytes()
    (models / "short.gguf").write_bytes(whole[: len(whole) // 2])  # cut in the weights: the header is whole
    (models / "cut-header.gguf").write_bytes(whole[:100])  # cut in the header
    (models / "empty-dir").mkdir()
    cases = {
        "notes.gguf": "is not a GGUF file",
        "short.gguf": "is truncated",
        "cut-header.gguf": "truncated GGUF header",
        "empty-dir": "no GGUF file",
    }
    for name, reason in cases.items():
        created = await admin.post("/api/models", json=body("m", models / name))
        assert created.status_code == 422 and reason in created.json()["detail"], (name, created.text)
        preview = (await admin.post("/api/models/preview", json=body("m", models / name))).json()
        assert preview["schedulable"] is False and reason in preview["message"], (name, preview)
    good = await admin.post("/api/models", json=body("m", models / "good.gguf"))
    assert good.status_code == 201, good.text
    changed = await admin.patch(f"/api/models/{good.json()['id']}", json={"local_path": str(models / "short.gguf")})
    assert changed.status_code == 422 and "is truncated" in changed.json()["detail"], changed.text
    unchanged = await admin.patch(f"/api/models/{good.json()['id']}", json={"replicas": 2})
    assert unchanged.status_code == 200, unchanged.text
    assert (await admin.get("/api/models")).json()[0]["local_path"] == str(models / "good.gguf")


async def test_a_file_absent_on_the_server_is_accepted_and_the_preview_says_it_cannot_tell(setup: Setup) -> None:
    # It may exist on the workers only: nothing to read here, nothing claimed.
    path = setup.models / "on-the-workers-only.gguf"
    preview = (await setup.admin.post("/api/models/preview", json=body("w", path))).json()
    assert preview["schedulable"] is False and "does not exist on the server" in preview["message"], preview
    assert (await setup.admin.post("/api/models", json=body("w", path))).status_code == 201


async def test_the_scheduler_does_not_read_a_link_re_pointed_outside_after_create(setup: Setup) -> None:
    link = setup.models / "current.gguf"
    link.symlink_to(setup.models / "good.gguf")
    model = (await setup.admin.post("/api/models", json=body("linked", link, replicas=1))).json()
    assert "id" in model, model
    link.unlink()
    link.symlink_to(setup.outside)  # changed on disk after the check at create

    async def reason() -> str | None:
        rows = (await setup.admin.get("/api/model-instances", params={"model_id": model["id"]})).json()
        message = rows[0]["state_message"] if rows else ""
        return message if "outside the directories" in message else None

    # Pending with the scheduler's reason (no worker is needed: the estimate comes first).
    message = await eventually(reason, timeout=10, what="the scheduler's refusal of the re-pointed link")
    assert "b'root" not in message and "starts with" not in message, message
