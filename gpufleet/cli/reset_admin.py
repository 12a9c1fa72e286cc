"""``gpufleet reset-admin-password``: a new password for user ``admin``, on the server's own machine.

It works on the data dir (or ``--database-url``) directly, so it needs no credential: whoever can
read the server's database owns the cluster anyway. The server may keep running; the admin's
sessions end at once in the database (a running server may still accept one it has cached, for at
most its cache's lifetime, 5 s). The new password is written to the data dir's
``initial_admin_password`` (mode 0600), never printed.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Annotated, Any

import typer

from gpufleet.cli.client import err, fail, out
from gpufleet.cli.errors import explain
from gpufleet.config import Settings


def reset_admin_password(
    data_dir: Annotated[
        Path | None, typer.Option(envvar="GPUFLEET_DATA_DIR", help="The server's data dir [default: as `start`]")
    ] = None,
    database_url: Annotated[
        str | None, typer.Option(envvar="GPUFLEET_DATABASE_URL", help="The server's database, if not in the data dir")
    ] = None,
) -> None:
    """Give user admin a new password (written to a file in the data dir) and end its sessions."""
    given: dict[str, Any] = {"data_dir": data_dir, "database_url": database_url}
    settings = Settings(**{k: v for k, v in given.items() if v is not None})
    if settings.database_url is None and not (settings.data_dir / "gpufleet.db").exists():
        fail(f"no gpufleet database in {settings.data_dir}: give the server's --data-dir or --database-url", 2)
    try:
        path = asyncio.run(_reset(settings))
    except Exception as exc:  # noqa: BLE001 - one line for the person; the unforeseen with its traceback
        fail(explain(exc, err))
    out.print(f"the new password of user admin is in {path} (change it at the next sign-in)")


async def _reset(settings: Settings) -> Path:
    # the database stack takes a second to import: only this command needs it
    from gpufleet.db.migrate import upgrade
    from gpufleet.db.session import Database
    from gpufleet.server.services.users import reset_admin_password as reset

    db = Database(settings.effective_database_url)
    try:
        await upgrade(db)  # the same schema as the server it belongs to
        return await reset(db, settings.initial_password_file)
    finally:
        await db.dispose()
