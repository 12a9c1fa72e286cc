"""Allow ``python -m gpufleet``."""

from gpufleet.cli import app

app()
