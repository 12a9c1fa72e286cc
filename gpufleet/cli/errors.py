"""The one place where a failure becomes the CLI's error line.

Every error gpufleet foresees derives from ``common.errors.GpufleetError`` and carries a message
written for a person (a database that cannot be opened is one: ``db.session.DatabaseUnavailable``);
a data dir that cannot be written is an ``OSError``. Anything else is a bug: its traceback is
printed as well, so it can be reported.
"""

from __future__ import annotations

from rich.console import Console

from gpufleet.common.errors import GpufleetError


class CommandFailed(GpufleetError):
    """A client command cannot go on; ``exit_code`` is what the process exits with (1 or 2)."""

    code = "command_failed"

    def __init__(self, message: str, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


def explain(exc: BaseException, console: Console | None = None) -> str:
    """One line for ``exc``; for what we did not foresee, the traceback goes to ``console`` first."""
    if isinstance(exc, GpufleetError):
        return exc.message
    if isinstance(exc, OSError):
        return f"cannot use the database or data dir: {str(exc).splitlines()[0]}"
    if console is not None:
        console.print_exception()
    return f"{type(exc).__name__}: {exc}"
