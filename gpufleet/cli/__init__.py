"""The ``gpufleet`` command line (typer): one module per command group, wired in ``cli.app``.

Client commands (``workers``, ``devices``, ``models``, ``instances``, ``keys``, ``users``,
``usage``, ``chat``, ``login``/``logout``) talk to a server over HTTP through ``cli.client``, which
holds what they share: the ``--server-url``/``--api-key`` options (or the session of ``login``,
``cli.credentials``), the consoles, the exit codes, listings as tables or JSON, and how a failed
request becomes one error line; ``cli.lookup`` finds what a person named by name or id.
``cli.errors`` is the one place where an exception becomes that line. ``start``, ``estimate``,
``engines`` and ``reset-admin-password`` work on this machine.
"""

from gpufleet.cli.app import app

__all__ = ["app"]
