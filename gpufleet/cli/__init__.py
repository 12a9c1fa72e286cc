"""The ``gpufleet`` command line (typer): one module per command group, wired in ``cli.app``.

Client commands (``models preview|wait|logs``) talk to a server over HTTP through ``cli.client``,
which holds what they share: the ``--server``/``--api-key`` options, the consoles, the exit codes
and how a failed request becomes one error line. ``cli.errors`` is the one place where an
exception becomes that line.
"""

from gpufleet.cli.app import app

__all__ = ["app"]
