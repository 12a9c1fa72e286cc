"""The worker agent: runs on every machine, reports devices, runs what the server asks."""
