"""What the server presents on a worker's private routes (instance logs), and what it stores for it.

At each start a worker makes a random token ``T`` and sends it when it registers. The server
stores only ``token_hash(T)`` (``workers.api_token_hash``), like every other token it keeps. When
it calls the worker it presents ``server_bearer(cluster token, token_hash(T))``, an HMAC-SHA256
keyed by the cluster token; the worker, which knows ``T`` and the cluster token, expects exactly
that. So a copy of the database alone opens no worker's API (the cluster token is not in it), a
token seen on the wire is void once the worker restarts, and every server replica (they share the
cluster token) can call every worker. Shared by ``server`` and ``worker``, which never import each
other.
"""

from __future__ import annotations

import hashlib
import hmac


def token_hash(token: str) -> str:
    """SHA-256 (hex) of a worker's API token: enough for 256 random bits, and what the server keeps."""
    return hashlib.sha256(token.encode()).hexdigest()


def server_bearer(cluster_token: str, api_token_hash: str) -> str:
    """The bearer the server presents to the worker whose API token hashes to ``api_token_hash``."""
    message = f"gpufleet worker api:{api_token_hash}".encode()
    return hmac.new(cluster_token.encode(), message, hashlib.sha256).hexdigest()
