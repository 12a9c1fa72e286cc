"""TLS of gpufleet's own connections: the server's key and certificate, and what a client trusts.

The server's pair is loaded once before uvicorn gets it (``check_server_pair``): uvicorn would
raise a bare ``ssl.SSLError`` ("PEM lib") from inside the serving task, naming neither file;
here each failure becomes a ``TlsError`` that names the flag and the file to fix.

Clients trust the operating system's store (``ssl.create_default_context``), not httpx's
default (certifi): a private CA is installed into the system store (``update-ca-certificates``),
which certifi never reads; OpenSSL's default paths also honour ``SSL_CERT_FILE`` and
``SSL_CERT_DIR``. A CA file given explicitly (``--server-ca``) replaces the system store.
"""

from __future__ import annotations

import ssl
from pathlib import Path

from gpufleet.common.errors import GpufleetError

# OpenSSL's verify codes for a certificate that is valid but names another host or address.
_NAME_MISMATCH = frozenset({62, 64})  # X509_V_ERR_HOSTNAME_MISMATCH, X509_V_ERR_IP_ADDRESS_MISMATCH


class TlsError(GpufleetError):
    """A key, certificate or CA file that cannot be used; the message names the flag and the file."""

    code = "tls"


class _Encrypted(Exception):
    """Raised by the password callback: the key asks for a passphrase (none is ever given)."""


def _no_passphrase() -> bytes:
    raise _Encrypted


def _readable(path: Path, flag: str) -> Path:
    path = path.expanduser()
    try:
        path.read_bytes()
    except OSError as exc:
        raise TlsError(f"{flag} {path}: cannot read it ({exc.strerror or exc})") from exc
    return path


def _load_certificates(context: ssl.SSLContext, path: Path, flag: str) -> None:
    """Trust the certificates of ``path``, or a ``TlsError`` naming ``flag``."""
    path = _readable(path, flag)
    try:
        context.load_verify_locations(cafile=str(path))
    except ssl.SSLError as exc:
        raise TlsError(f"{flag} {path}: no PEM certificate in it ({exc.reason or exc})") from exc


def check_server_pair(certfile: Path, keyfile: Path) -> None:
    """That ``certfile`` holds a PEM certificate and ``keyfile`` its unencrypted PEM key, or a ``TlsError``."""
    _load_certificates(ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT), certfile, "--ssl-certfile")
    certfile, keyfile = certfile.expanduser(), _readable(keyfile, "--ssl-keyfile")
    try:
        ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER).load_cert_chain(str(certfile), str(keyfile), password=_no_passphrase)
    except _Encrypted:
        raise TlsError(
            f"--ssl-keyfile {keyfile}: the key is protected by a passphrase, which gpufleet cannot prompt for; "
            "give an unencrypted key (readable by this user only)"
        ) from None
    except ssl.SSLError as exc:
        if exc.reason == "KEY_VALUES_MISMATCH":
            raise TlsError(f"--ssl-keyfile {keyfile} is not the key of the certificate in {certfile}") from exc
        raise TlsError(f"--ssl-keyfile {keyfile}: no PEM private key in it ({exc.reason or exc})") from exc


def client_ssl_context(ca: Path | None, flag: str = "--server-ca") -> ssl.SSLContext:
    """What a client trusts: the certificates of ``ca`` when given (only those), else the system trust store."""
    if ca is None:
        return ssl.create_default_context()
    ca = _readable(ca, flag)
    try:
        return ssl.create_default_context(cafile=str(ca))
    except ssl.SSLError as exc:
        raise TlsError(f"{flag} {ca}: no PEM certificate in it ({exc.reason or exc})") from exc


def pinned_ssl_context(certfile: Path) -> ssl.SSLContext:
    """Trust exactly the certificate(s) in ``certfile``, whichever name or address they were made for.

    For a process that talks to its own server: the embedded worker of ``gpufleet start`` joins
    over loopback (``https://127.0.0.1:PORT``), but a certificate made for ``fleet.example.com``
    need not list 127.0.0.1, and the issuing CA need not be in any store here. The name check is
    off, and only here, because the trust is pinned: a peer passes only by presenting this very
    certificate, which needs its private key. ``VERIFY_X509_PARTIAL_CHAIN`` lets a leaf signed by
    a CA absent from this file be the anchor itself.
    """
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_REQUIRED
    context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN
    _load_certificates(context, certfile, "--ssl-certfile")
    return context


def untrusted_reason(exc: BaseException, ca_hint: str) -> str | None:
    """Why the peer's certificate was refused, if that is what ``exc`` (or what it wraps) is about.

    The sentence says what to do: ``ca_hint`` ("give the CA with --server-ca FILE") when the issuer
    is not trusted; use another URL when the certificate names another host."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ssl.SSLCertVerificationError):
            if seen.verify_code in _NAME_MISMATCH:
                return (
                    f"the server's certificate is not valid for this address ({seen.verify_message}): "
                    "use a server URL with a name or address the certificate lists"
                )
            return f"the server's certificate is not trusted ({seen.verify_message}): {ca_hint}"
        seen = seen.__cause__ or seen.__context__
    return None
