"""Instance logs: the bounds of ``tail`` that the server and the worker both enforce.

``tail`` counts lines from the end of the engine's log; 0 is allowed (with ``follow`` it means
"only what is written from now on"). The upper bound keeps one request from reading a whole
multi-gigabyte log into memory; ``follow`` is how to see more.
"""

from __future__ import annotations

LOG_TAIL_DEFAULT = 100
LOG_TAIL_MAX = 10_000
