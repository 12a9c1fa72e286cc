"""The shape every hub source has: name the files a deployment needs, then fetch them.

A source is split in two blocking steps so the cache can report progress against a known total:
``plan(model)`` asks the hub which files (and how many bytes) the deployment needs and where they
will be on disk; ``Plan.fetch(meter)`` downloads whatever of them is missing, counting bytes on
the meter. Both run in a thread and raise ``ModelFileError`` with a message for the person who
deployed the model; ``fetch`` may also raise ``DownloadCancelled`` (from the meter).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from gpufleet.schemas.models import ModelPublic
from gpufleet.worker.downloads.layout import Layout
from gpufleet.worker.downloads.meter import Meter


@dataclass(frozen=True)
class Plan:
    sizes: dict[str, int]  # name in the source -> bytes; the order of ``paths``
    paths: tuple[Path, ...]  # on this worker; the engine loads paths[0]
    fetch: Callable[[Meter], None]

    @property
    def size(self) -> int:
        return sum(self.sizes.values())


class Source(Protocol):
    def key(self, model: ModelPublic, layout: Layout) -> str:
        """The identity of what ``model`` downloads for an engine that loads ``layout`` (two deployments
        with one key share one download)."""
        ...

    def plan(self, model: ModelPublic, layout: Layout) -> Plan: ...
