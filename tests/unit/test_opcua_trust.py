"""Which OPC-UA server certificates the connector trusts (producers/opcua/trust.py)."""

from __future__ import annotations

import datetime
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from pki import Issued, certificate_authority, issue

from sentio_iot.producers.opcua.trust import ca_files, load_certificates, split_der_chain, untrusted


def intermediate(root: Issued, folder: Path) -> Issued:
    """A CA certificate the root issued (issue() makes leaves; re-sign one as a CA)."""
    made = certificate_authority(folder, "Line CA")
    cert = (
        x509.CertificateBuilder()
        .subject_name(made.certificate.subject)
        .issuer_name(root.certificate.subject)
        .public_key(made.key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(made.certificate.not_valid_before_utc)
        .not_valid_after(made.certificate.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .sign(root.key, hashes.SHA256())
    )
    return Issued(cert, made.key, made.cert_path, made.key_path)


def test_pinned_issued_through_intermediates_and_refused(tmp_path: Path) -> None:
    root = certificate_authority(tmp_path / "root", "Plant CA")
    line = intermediate(root, tmp_path / "line")
    server = issue(line, tmp_path / "server", "plc1", uri="urn:plc1")
    other = certificate_authority(tmp_path / "other", "Other CA")
    leaf, chain = server.certificate, [server.certificate, line.certificate]

    assert untrusted([leaf], leaf, []) is None  # pinned
    assert untrusted(chain, None, [root.certificate]) is None  # through the sent intermediate
    assert untrusted([leaf], None, [line.certificate]) is None  # the intermediate trusted
    assert untrusted([leaf], None, [root.certificate]) == (
        "no certificate of trusted_ca_path issued it"  # the intermediate was not sent
    )
    assert untrusted(chain, None, [other.certificate]) == (
        "no certificate of trusted_ca_path issued it"
    )
    assert untrusted(chain, other.certificate, []) == "it is not server_certificate_path"
    assert untrusted(chain, other.certificate, [other.certificate]) == (
        "it is not server_certificate_path and no certificate of trusted_ca_path issued it"
    )
    later = leaf.not_valid_after_utc + datetime.timedelta(days=1)
    assert untrusted(chain, None, [root.certificate], now=later) == (
        f"it is valid from {leaf.not_valid_before_utc:%Y-%m-%d} to "
        f"{leaf.not_valid_after_utc:%Y-%m-%d} only"
    )


def test_der_chains_pem_bundles_and_folders(tmp_path: Path) -> None:
    root = certificate_authority(tmp_path / "root", "Plant CA")
    other = certificate_authority(tmp_path / "other", "Other CA")
    ders = [c.certificate.public_bytes(Encoding.DER) for c in (root, other)]
    assert split_der_chain(b"".join(ders)) == ders
    bundle = tmp_path / "bundle.pem"
    bundle.write_bytes(root.cert_path.read_bytes() + other.cert_path.read_bytes())
    assert load_certificates(bundle.read_bytes()) == [root.certificate, other.certificate]
    assert load_certificates(b"".join(ders)) == [root.certificate, other.certificate]
    folder = tmp_path / "trusted"
    folder.mkdir()
    for name in ("a.pem", "b.der", "notes.txt"):
        (folder / name).write_bytes(b"")
    assert [p.name for p in ca_files(folder)] == ["a.pem", "b.der"]
    assert ca_files(bundle) == [bundle]
