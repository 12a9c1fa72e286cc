"""gpufleet: a GPU cluster manager for running large language models."""

__version__ = "0.1.0"
