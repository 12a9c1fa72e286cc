"""Where ``local_path`` may lead, on the server (``server.services.local_paths``) and on the worker
(``worker.downloads.local``): inside the allowed directories once symlinks and ``..`` are resolved."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpufleet.common.gguf_files import ModelFileError
from gpufleet.common.paths import inside
from gpufleet.schemas.models import ModelSpec
from gpufleet.server.services.local_paths import LocalPathNotAllowed, server_spec
from gpufleet.worker.downloads.local import resolve_local
from testkit.synthetic import preset, write_model


def spec(path: Path | str) -> ModelSpec:
    return ModelSpec.model_validate({"name": "m", "source": "local_path", "local_path": str(path)})


@pytest.fixture
def tree(tmp_path: Path) -> tuple[Path, Path]:
    """``models/`` (allowed) with a real GGUF and a link out; ``outside/secret`` beside it."""
    models = tmp_path / "models"
    write_model(models / "real.gguf", preset("llama-tiny"), sparse=True)
    secret = tmp_path / "outside" / "secret"
    secret.parent.mkdir()
    secret.write_text("root:x\n")
    (models / "out.gguf").symlink_to(secret)
    (models / "in.gguf").symlink_to(models / "real.gguf")
    return models, secret


def test_inside_is_by_path_components_not_by_prefix() -> None:
    assert inside(Path("/data/models/a.gguf"), [Path("/data/models")])
    assert inside(Path("/data/models"), [Path("/data/models")])
    assert not inside(Path("/data/models-evil/a.gguf"), [Path("/data/models")])
    assert not inside(Path("/data/a.gguf"), [])


def test_the_server_resolves_links_and_dots_before_checking(tree: tuple[Path, Path]) -> None:
    models, secret = tree
    for escape in (secret, models / "out.gguf", f"{models}/../outside/secret"):
        with pytest.raises(LocalPathNotAllowed, match=str(models)):
            server_spec(spec(escape), [models])
    assert server_spec(spec(models / "in.gguf"), [models]).local_path == str(models / "real.gguf")
    # a directory: its first GGUF by name (in.gguf), resolved
    assert server_spec(spec(models), [models]).local_path == str(models / "real.gguf")
    absent = spec(models / "later.gguf")
    assert server_spec(absent, [models]) is absent  # on the workers only, perhaps: not read, not refused


def test_the_worker_refuses_the_same_escapes(tree: tuple[Path, Path]) -> None:
    models, secret = tree
    for escape in (str(secret), str(models / "out.gguf"), f"{models}/../outside/secret"):
        with pytest.raises(ModelFileError, match="outside the directories this worker allows"):
            resolve_local(escape, [models])
    assert resolve_local(str(models / "in.gguf"), [models]) == models / "real.gguf"


def test_the_worker_refuses_a_directory_whose_chosen_gguf_links_out(tmp_path: Path) -> None:
    models = tmp_path / "models"
    write_model(models / "b-real.gguf", preset("llama-tiny"), sparse=True)
    secret = tmp_path / "outside" / "secret.gguf"
    secret.parent.mkdir()
    secret.write_text("root:x\n")
    (models / "a-link.gguf").symlink_to(secret)  # first by name: the one a directory resolves to
    with pytest.raises(ModelFileError, match="outside the directories this worker allows"):
        resolve_local(str(models), [models])


def test_the_worker_refuses_a_split_gguf_whose_other_shard_links_out(tmp_path: Path) -> None:
    models = tmp_path / "models"
    write_model(models / "m-00001-of-00002.gguf", preset("llama-tiny"), sparse=True)
    secret = tmp_path / "outside" / "secret"
    secret.parent.mkdir()
    secret.write_text("root:x\n")
    (models / "m-00002-of-00002.gguf").symlink_to(secret)
    with pytest.raises(ModelFileError, match="outside the directories this worker allows"):
        resolve_local(str(models / "m-00001-of-00002.gguf"), [models])
