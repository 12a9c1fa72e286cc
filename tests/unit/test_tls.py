"""``common.tls``: each unusable key, certificate or CA file is one ``TlsError`` naming its flag and file."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from gpufleet.common.tls import TlsError, check_server_pair, client_ssl_context, pinned_ssl_context
from tests.support.certificates import CertificateAuthority, write_key


@pytest.fixture
def ca(tmp_path: Path) -> CertificateAuthority:
    return CertificateAuthority(tmp_path)


def test_a_matching_pair_passes(ca: CertificateAuthority) -> None:
    pair = ca.server("server")
    check_server_pair(pair.certfile, pair.keyfile)
    assert client_ssl_context(ca.path).cert_store_stats()["x509_ca"] == 1
    assert pinned_ssl_context(pair.certfile).check_hostname is False


def test_each_bad_file_is_named(ca: CertificateAuthority, tmp_path: Path) -> None:
    pair = ca.server("server")
    junk = tmp_path / "junk.pem"
    junk.write_text("not a PEM file\n")
    other = write_key(tmp_path / "other.key", ec.generate_private_key(ec.SECP256R1()))
    locked = write_key(tmp_path / "locked.key", ec.generate_private_key(ec.SECP256R1()), b"secret")
    cases = [
        ((junk, pair.keyfile), f"--ssl-certfile {junk}: no PEM certificate"),
        ((pair.keyfile, pair.keyfile), "--ssl-certfile"),  # a key where the certificate should be
        ((pair.certfile, junk), f"--ssl-keyfile {junk}: no PEM private key"),
        ((pair.certfile, other), f"--ssl-keyfile {other} is not the key of the certificate in {pair.certfile}"),
        ((pair.certfile, locked), f"--ssl-keyfile {locked}: the key is protected by a passphrase"),
    ]
    for (certfile, keyfile), expected in cases:
        with pytest.raises(TlsError) as caught:
            check_server_pair(certfile, keyfile)
        assert expected in caught.value.message
    with pytest.raises(TlsError, match=f"--server-ca {junk}: no PEM certificate"):
        client_ssl_context(junk)
    with pytest.raises(TlsError, match=f"--ssl-certfile {junk}: no PEM certificate"):
        pinned_ssl_context(junk)
