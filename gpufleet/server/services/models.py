"""Model deployments: create, read, update, delete. Replicas are converged by the deployments controller.

A change to a counted field (``services.spec_hash``) gives the deployment a new ``spec_hash``; the
deployments controller then replaces its instances one at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from gpufleet.common.errors import Conflict, GpufleetError, InvalidInput, NotFound
from gpufleet.db.session import Database, record_event
from gpufleet.db.tables import Model, ModelInstance
from gpufleet.engines import DEFAULT_BACKEND, ENGINES, backend_name, engine_for_format
from gpufleet.engines.model_format import local_format, source_format
from gpufleet.schemas.events import Event, EventKind, EventType
from gpufleet.schemas.models import ALL_SOURCE_FIELDS, Backend, ModelPublic, ModelSpec, ModelUpdate
from gpufleet.schemas.states import InstanceState
from gpufleet.server.listing import EVERY_ROW, ListParams
from gpufleet.server.listing import count as count_rows
from gpufleet.server.services.devices import existing_device_ids
from gpufleet.server.services.local_paths import confined_path, server_spec
from gpufleet.server.services.spec_hash import spec_hash

SPEC_FIELDS = tuple(ModelSpec.model_fields)


def spec_of(row: Model) -> dict[str, Any]:
    return {field: getattr(row, field) for field in SPEC_FIELDS}


@dataclass(frozen=True)
class ReplicaCounts:
    """A deployment's instances as the API reports them; instances stopping count in none of them."""

    ready: int = 0  # running, whatever their spec
    updated: int = 0  # of the current spec, not stopping
    outdated: int = 0  # of an earlier spec, not stopping
    loading: int = 0  # pending, scheduled, downloading or starting


NO_REPLICAS = ReplicaCounts()
LOADING = frozenset({InstanceState.PENDING, InstanceState.SCHEDULED, InstanceState.DOWNLOADING, InstanceState.STARTING})
# A deployment id -> requests waiting in the gateways' queues for it (``gateway.load``).
Queued = Mapping[int, int]


def to_public(row: Model, counts: ReplicaCounts = NO_REPLICAS, queued: int = 0) -> ModelPublic:
    return ModelPublic.model_validate(
        {
            **spec_of(row),
            "id": row.id,
            "created_at": row.created_at,
            "updated_at": row.updated_at,
            "ready_replicas": counts.ready,
            "spec_hash": row.spec_hash,
            "updated_replicas": counts.updated,
            "outdated_replicas": counts.outdated,
            "running_replicas": counts.ready,
            "loading_replicas": counts.loading,
            "queued_requests": queued,
            "last_request_at": row.last_request_at,
        }
    )


def _apply(row: Model, spec: ModelSpec) -> None:
    for field, value in spec.model_dump(mode="json").items():
        setattr(row, field, value)


def check_engine_parameters(spec: ModelSpec) -> None:
    """The deployment's engine accepts its ``backend_parameters`` and context size (422 if not).

    A backend gpufleet cannot run yet is not refused here: its instances stay pending and say why.
    """
    engine = ENGINES.get(backend_name(spec.backend))
    if engine is None:
        return
    try:
        engine.check_parameters(spec.ctx_size, spec.backend_parameters)
    except GpufleetError as exc:
        raise InvalidInput(f"backend_parameters: {exc.message}", field="backend_parameters") from exc


def resolve_backend(spec: ModelSpec, model_dirs: Sequence[Path], unknown: Backend | None = None) -> ModelSpec:
    """The deployment with its backend chosen from its source's format when it names none (a
    safetensors directory or repository: vllm; GGUF: the default), or 422 when the backend it names
    cannot read that format. A source whose format cannot be told (absent on the server, a hub that
    does not answer) gets ``unknown`` (None: the default). Blocking (reads a directory listing or a
    hub's file list): call in a thread; the scheduler never does this."""
    path = confined_path(spec, model_dirs)
    fmt = local_format(path) if path is not None else source_format(spec)
    if fmt is None:
        return spec if spec.backend is not None else spec.model_copy(update={"backend": unknown})
    serving = engine_for_format(fmt)
    if spec.backend is None:
        if serving is None or serving.name == DEFAULT_BACKEND:
            return spec
        return spec.model_copy(update={"backend": Backend(serving.name)})
    named = ENGINES.get(backend_name(spec.backend))
    if named is not None and named.model_format != fmt:
        instead = f"use backend {serving.name} or leave backend unset" if serving else "use another model"
        raise InvalidInput(
            f"backend {named.name} serves {named.model_format} models, but the {spec.source.value} source holds "
            f"a {fmt} model; {instead}",
            field="backend",
        )
    return spec


async def check_model_file(spec: ModelSpec, model_dirs: Sequence[Path]) -> None:
    """Refuse (422, with the reason) what the preview knows cannot run: a ``local_path`` outside
    ``model_dirs``, or one readable here that is not a complete GGUF the engine can estimate.

    A path absent on the server is accepted (it may exist on the workers only); its instances say
    why they stay pending. Other sources are estimated by the scheduler (network reads: not here).
    """
    if not spec.local_path:
        return
    readable = await asyncio.to_thread(server_spec, spec, model_dirs)
    engine = ENGINES.get(backend_name(spec.backend))
    if readable is spec or engine is None:
        return
    await asyncio.to_thread(engine.estimator, readable)  # CannotEstimate (422) says why


async def _check_devices(session: AsyncSession, spec: ModelSpec) -> None:
    if spec.gpu_selector is None:
        return
    wanted = spec.gpu_selector.device_ids
    missing = [d for d in wanted if d not in await existing_device_ids(session, wanted)]
    if missing:
        raise InvalidInput(
            f"gpu_selector.device_ids: no such device {', '.join(missing)}; GET /api/devices lists the ids",
            field="gpu_selector",
        )


async def _replica_counts(session: AsyncSession, models: list[Model]) -> dict[int, ReplicaCounts]:
    """One grouped query for all ``models``: running, current-spec and outdated instances of each."""
    hashes = {m.id: m.spec_hash for m in models}
    query = (
        select(ModelInstance.model_id, ModelInstance.state, ModelInstance.spec_hash, func.count())
        .where(ModelInstance.model_id.in_(list(hashes)))
        .group_by(ModelInstance.model_id, ModelInstance.state, ModelInstance.spec_hash)
    )
    ready: dict[int, int] = dict.fromkeys(hashes, 0)
    updated: dict[int, int] = dict.fromkeys(hashes, 0)
    outdated: dict[int, int] = dict.fromkeys(hashes, 0)
    loading: dict[int, int] = dict.fromkeys(hashes, 0)
    for model_id, state, instance_hash, count in (await session.execute(query)).all():
        if model_id is None:
            continue
        if state == InstanceState.RUNNING:
            ready[model_id] += count
        if state in LOADING:
            loading[model_id] += count
        if state != InstanceState.STOPPING:
            (updated if instance_hash == hashes[model_id] else outdated)[model_id] += count
    return {m: ReplicaCounts(ready[m], updated[m], outdated[m], loading[m]) for m in hashes}


async def publish_modified(session: AsyncSession, row: Model) -> ModelPublic:
    """Announce a change of ``row`` made in ``session`` (with its replica counts), e.g. by scaling."""
    await session.flush()
    counts = await _replica_counts(session, [row])
    return _publish(session, row, EventType.MODIFIED, counts[row.id])


def _publish(session: AsyncSession, row: Model, kind: EventType, counts: ReplicaCounts = NO_REPLICAS) -> ModelPublic:
    public = to_public(row, counts)
    record_event(session, Event(kind=EventKind.MODELS, type=kind, id=row.id, object=public.model_dump(mode="json")))
    return public


async def create_model(db: Database, spec: ModelSpec, *, model_dirs: Sequence[Path]) -> ModelPublic:
    """``model_dirs``: where ``local_path`` models may come from (``Settings.model_dirs``)."""
    spec = await asyncio.to_thread(resolve_backend, spec, model_dirs)
    check_engine_parameters(spec)
    await check_model_file(spec, model_dirs)
    try:
        async with db.transaction() as session:
            await _check_devices(session, spec)
            await _check_name_free(session, spec.name)
            row = Model()
            _apply(row, spec)
            row.spec_hash = spec_hash(spec_of(row))
            session.add(row)
            await session.flush()
            return _publish(session, row, EventType.ADDED)
    except IntegrityError as exc:  # a concurrent create with the same name won the race
        raise Conflict(f"a model named {spec.name!r} already exists", field="name") from exc


async def _check_name_free(session: AsyncSession, name: str, except_id: int | None = None) -> None:
    existing = (await session.execute(select(Model.id).where(Model.name == name))).scalar_one_or_none()
    if existing is not None and existing != except_id:
        raise Conflict(f"a model named {name!r} already exists (id {existing}); choose another name", field="name")


async def update_model(db: Database, model_id: int, body: ModelUpdate, *, model_dirs: Sequence[Path]) -> ModelPublic:
    """``model_dirs`` as for ``create_model``: a changed ``local_path`` is checked the same way, and a
    changed source picks the backend again (``_backend_after``)."""
    async with db.read() as session:
        current = await session.get(Model, model_id)
        if current is None:
            raise NotFound(f"model {model_id} does not exist")
        before_path = current.local_path
        try:
            current_spec, wanted = spec_of(current), body.merged_onto(spec_of(current))
        except ValidationError as exc:
            raise InvalidInput(_first_error(exc)) from exc
    repicked = "backend" in body.model_fields_set or _source_of(current_spec) != _source_of(wanted.model_dump())
    backend = await _backend_after(body, current_spec, wanted, model_dirs)
    wanted = wanted.model_copy(update={"backend": backend})
    if wanted.local_path != before_path:  # checked before the write transaction: the check reads files
        await check_model_file(wanted, model_dirs)
    try:
        async with db.transaction() as session:
            row = await session.get(Model, model_id)
            if row is None:
                raise NotFound(f"model {model_id} does not exist")
            try:
                spec = body.merged_onto(spec_of(row))
            except ValidationError as exc:
                raise InvalidInput(_first_error(exc)) from exc
            if _source_of(spec.model_dump()) != _source_of(wanted.model_dump()):
                raise Conflict(f"model {model_id} changed meanwhile; send the update again", field="source")
            if repicked:  # otherwise the row's own backend stands (another update may have changed it)
                spec = spec.model_copy(update={"backend": backend})
            check_engine_parameters(spec)
            if spec.name != row.name:
                await _check_name_free(session, spec.name, except_id=row.id)
            await _check_devices(session, spec)
            before = spec_hash(spec_of(row))
            _apply(row, spec)
            after = spec_hash(spec_of(row))
            if after != before:  # only a counted change re-fingerprints (see services.spec_hash)
                row.spec_hash = after
            await session.flush()
            counts = await _replica_counts(session, [row])
            return _publish(session, row, EventType.MODIFIED, counts[row.id])
    except IntegrityError as exc:
        raise Conflict(f"a model named {body.name!r} already exists", field="name") from exc


def _source_of(spec: dict[str, Any]) -> tuple[Any, ...]:
    return (spec.get("source"), *(spec.get(field) for field in ALL_SOURCE_FIELDS))


async def _backend_after(
    body: ModelUpdate, before: dict[str, Any], wanted: ModelSpec, model_dirs: Sequence[Path]
) -> Backend | None:
    """The backend once ``body`` applies: chosen again from the new source's format when the source
    changed and the update names no backend (a GGUF file swapped for a safetensors directory moves
    the deployment to vLLM, and back; a new source whose format cannot be told here keeps the old
    backend), checked against it when the update names one (422 on a mismatch); otherwise unchanged.
    Reads files or a hub listing: outside any transaction."""
    named = "backend" in body.model_fields_set
    if not named and _source_of(before) == _source_of(wanted.model_dump()):
        return wanted.backend
    previous = before.get("backend")
    keep = Backend(previous) if previous and not named else None
    unset = wanted if named else wanted.model_copy(update={"backend": None})
    resolved = await asyncio.to_thread(resolve_backend, unset, model_dirs, keep)
    return resolved.backend  # None: the default engine (GGUF); a format that cannot be told keeps the old


def _first_error(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "body"
    return f"{where}: {error['msg'].removeprefix('Value error, ')}"


async def delete_model(db: Database, model_id: int) -> None:
    """Delete the deployment; the controller then stops its instances (they outlive it while stopping)."""
    async with db.transaction() as session:
        row = await session.get(Model, model_id)
        if row is None:
            raise NotFound(f"model {model_id} does not exist")
        public = to_public(row)
        await session.delete(row)
        record_event(
            session,
            Event(
                kind=EventKind.MODELS,
                type=EventType.DELETED,
                id=model_id,
                object=public.model_dump(mode="json"),
            ),
        )


async def list_models(
    db: Database, params: ListParams = EVERY_ROW, queued: Queued | None = None
) -> tuple[list[ModelPublic], int | None]:
    """Deployments by id (``q`` on the name), with their replica counts in one grouped query and
    ``queued``, the requests waiting for each in the gateways."""
    query = params.filtered(select(Model), name=Model.name)
    async with db.read() as session:
        total = await count_rows(session, query) if params.limit is not None else None
        rows = list((await session.execute(params.paged(query.order_by(Model.id)))).scalars().all())
        counts = await _replica_counts(session, rows)
    return [to_public(row, counts[row.id], (queued or {}).get(row.id, 0)) for row in rows], total


async def get_model(db: Database, model_id: int, queued: Queued | None = None) -> ModelPublic:
    async with db.read() as session:
        row = await session.get(Model, model_id)
        if row is None:
            raise NotFound(f"model {model_id} does not exist")
        counts = await _replica_counts(session, [row])
    return to_public(row, counts[model_id], (queued or {}).get(model_id, 0))
