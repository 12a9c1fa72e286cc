"""Garbage collection tuned for a long-running server that holds thousands of connections.

Measured with ``benchmarks/scale.py`` (2,000 workers, SQLite): with CPython's default thresholds
(700, 10, 10) the server tracked about 640,000 objects (214,000 of them from imports and start-up,
most of the rest per worker: its watch stream, its keep-alive connection, its cached credential),
and a full (generation 2) collection ran every 10 s, stopping the event loop for about 0.5 s each time —
heartbeats that arrived meanwhile waited for it. Two changes, both standard for such servers:

- ``gc.freeze()`` once start-up is done: what start-up allocated (modules, the app, the routes) lives
  as long as the process, so it moves to the permanent generation and no collection scans it again;
- a larger first threshold: requests in flight (a few milliseconds each, hundreds a second) have died
  before the youngest generation is collected, instead of surviving into the older ones and making
  full collections come sooner.

Reference cycles are still collected; only how often and over what changes.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 20_000  # allocations (net) between collections of the youngest generation (default 700)


def tune_for_server() -> None:
    """Call once, after start-up and before serving. Idempotent in effect."""
    gc.collect()  # start-up's own garbage, so it is not frozen with the rest
    gc.freeze()
    _, middle, oldest = gc.get_threshold()
    gc.set_threshold(YOUNG_THRESHOLD, middle, oldest)
