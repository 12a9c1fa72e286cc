"""Which certificates a worker trusts when it talks to its server over HTTPS.

- The embedded worker of ``gpufleet start --ssl-certfile`` trusts exactly its own server's
  certificate (``common.tls.pinned_ssl_context``): it joins over loopback, and a certificate made
  for the server's public name need not list 127.0.0.1, nor its CA be installed here.
- A worker given ``--server-ca FILE`` trusts the CAs in that file only.
- Otherwise the system trust store (a public CA, or a private one installed into the OS store).

Every connection of the worker to the server goes through ``ServerClient``, which takes this
context; the worker's own API (``--worker-port``) stays plain HTTP behind its bearer token.
"""

from __future__ import annotations

import ssl

from gpufleet.common.tls import client_ssl_context, pinned_ssl_context
from gpufleet.config import Settings


def server_ssl_context(settings: Settings) -> ssl.SSLContext:
    """The trust for ``settings.server_urls``; a ``TlsError`` names a file that cannot be used."""
    if settings.runs_server and settings.ssl_certfile is not None:
        return pinned_ssl_context(settings.ssl_certfile)
    return client_ssl_context(settings.server_ca)
