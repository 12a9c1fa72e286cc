"""Allow ``python -m gpufleet``: the same command, named ``gpufleet`` (in help and shell completion)."""

from gpufleet.cli import app

app(prog_name="gpufleet")
