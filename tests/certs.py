"""Certificates made by the tests (a CA, servers and clients it signs), for TLS and mutual TLS."""
from __future__ import annotations

import datetime
from pathlib import Path


def make_cert(tmp_path: Path, name: str, ca=None, dns: str = "localhost"):
    """(cert path, key path, cert, key) for CN=name with subjectAltName DNS:`dns`, signed by `ca`
    (cert, key) or by itself (then a CA)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_cert, issuer_key = ca if ca else (None, key)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(subject)
               .issuer_name(issuer_cert.subject if issuer_cert else subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
               .add_extension(x509.SubjectAlternativeName([x509.DNSName(dns)]), critical=False)
               .add_extension(x509.BasicConstraints(ca=ca is None, path_length=None), critical=True))
    cert = builder.sign(issuer_key, hashes.SHA256())
    cp, kp = tmp_path / f"{name}.crt", tmp_path / f"{name}.key"
    cp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    kp.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()))
    return cp, kp, cert, key
