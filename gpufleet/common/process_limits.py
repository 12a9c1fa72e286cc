"""Open-file limit raised to what the system allows.

Every worker keeps two connections to the server open (its watch stream and its heartbeats'
keep-alive connection), so a server with 10,000 workers holds 20,000 sockets, more than the usual
soft limit (1,024, or 20,000 here). The soft limit may be raised up to the hard limit by any process;
only the hard limit needs an administrator (``LimitNOFILE=`` in a systemd unit, ``ulimit -Hn``).
"""

from __future__ import annotations

import logging
import sys

if sys.platform != "win32":  # Windows has no such limit (its sockets are not file descriptors)
    import resource

logger = logging.getLogger(__name__)


def raise_open_files_limit() -> int | None:
    """Raise the soft ``RLIMIT_NOFILE`` to the hard one; returns the limit now in force (None: no limit)."""
    if sys.platform == "win32":
        return None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft == hard:
        return soft
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError) as exc:  # some platforms cap it lower than they report
        logger.warning("could not raise the open-files limit from %d to %d: %s", soft, hard, exc)
        return soft
    return hard
