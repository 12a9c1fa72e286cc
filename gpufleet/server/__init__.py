"""The gpufleet server: management API, (later) gateway, controllers."""
