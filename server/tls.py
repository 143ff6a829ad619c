"""TLS for the service's own clients (the CLI client, the support desk, the MCP tools): one way to
build channel credentials from the same three files, and plain-words reasons when a TLS connection
cannot be made (gRPC's own message is "failed to connect to all addresses; ... Socket closed")."""
from __future__ import annotations

import socket
import ssl
from dataclasses import dataclass
from pathlib import Path

import grpc


@dataclass(frozen=True)
class ClientTLS:
    """What a client presents: the root(s) it trusts (`ca_file`; set it to talk TLS), its own
    certificate and key for a server that asks for mutual TLS, and the name to check the server's
    certificate against when it differs from the host dialled (e.g. the page dialling loopback).
    `option` names the three files in messages as the user set them (`--tls-ca`, `--desk-tls-ca`)."""

    ca_file: str = ""
    cert_file: str = ""
    key_file: str = ""
    server_name: str = ""
    option: str = "--tls-"

    def __post_init__(self) -> None:
        ca, cert, key = self.names
        if bool(self.cert_file) != bool(self.key_file):
            raise ValueError(f"{cert} and {key} must be given together (a client certificate needs its key)")
        if self.cert_file and not self.ca_file:
            raise ValueError(f"{cert} needs {ca} (mutual TLS is TLS first: which CA signed the service?)")
        for name, path in ((ca, self.ca_file), (cert, self.cert_file), (key, self.key_file)):
            if path and not Path(path).is_file():
                raise ValueError(f"{name} must be a readable file (got {path!r})")

    @property
    def names(self) -> tuple[str, str, str]:
        return f"{self.option}ca", f"{self.option}cert", f"{self.option}key"

    @property
    def enabled(self) -> bool:
        return bool(self.ca_file)

    def credentials(self) -> grpc.ChannelCredentials:
        return grpc.ssl_channel_credentials(
            Path(self.ca_file).read_bytes(),
            private_key=Path(self.key_file).read_bytes() if self.key_file else None,
            certificate_chain=Path(self.cert_file).read_bytes() if self.cert_file else None)

    def channel_options(self) -> list[tuple[str, object]]:
        return [("grpc.ssl_target_name_override", self.server_name)] if self.server_name else []


def certificate_host_name(cert_file: str | Path) -> str:
    """A name the certificate is valid for (its first DNS name, else its first IP address, else its
    common name): what a client dialling this server over loopback checks it against."""
    from cryptography import x509
    from cryptography.x509.oid import ExtensionOID, NameOID
    cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME).value
        names = san.get_values_for_type(x509.DNSName) or [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
        if names:
            return names[0].replace("*.", "wildcard.", 1)     # any name under a wildcard matches it
    except x509.ExtensionNotFound:
        pass
    common = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not common:
        raise ValueError(f"tls_cert {cert_file}: names no host (no subjectAltName, no common name)")
    return str(common[0].value)


def speaks_tls(host: str, port: int, timeout_s: float = 3.0) -> bool:
    """Whether host:port answers a TLS handshake (certificates unchecked: this only tells a TLS port
    from a plaintext one, to say why a plaintext client was refused)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    ctx.set_alpn_protocols(["h2"])
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as raw:
            with ctx.wrap_socket(raw, server_hostname=host):
                return True
    except ssl.SSLError as exc:
        # a server that wants a client certificate may end the handshake with an alert: still TLS
        return "ALERT" in str(exc).upper() or "CERTIFICATE" in str(exc).upper()
    except OSError:
        return False


def connect_failure_reason(details: str, tls: ClientTLS, target: str) -> str | None:
    """Plain words for a TLS misconfiguration in gRPC's UNAVAILABLE details, naming the setting to
    fix; None when the failure is not about TLS (e.g. nothing listens there yet)."""
    low = (details or "").lower()
    ca, cert, key = tls.names
    if "connection refused" in low or "dns resolution failed" in low or "name resolution" in low:
        return None
    if tls.enabled:
        if "hostname verification" in low or "peer name" in low:
            return (f"the service's certificate is not valid for the host in {target!r}: dial a name the "
                    f"certificate lists (e.g. localhost:PORT)")
        if "wrong_version_number" in low or "packet_length_too_long" in low or "http_request" in low:
            return f"the service at {target} does not speak TLS: leave {ca} unset, or serve it with TLS"
        if "certificate_verify_failed" in low or "unable to get local issuer" in low or "self signed" in low:
            return (f"the service's certificate at {target} is not signed by {ca} {tls.ca_file!r}: "
                    f"give the CA that signed it")
        if "socket closed" in low or "handshake" in low:
            if not tls.cert_file:
                return (f"the service at {target} refused the TLS handshake; it may require a client "
                        f"certificate (mutual TLS): give {cert} and {key}")
            return (f"the service at {target} refused the TLS handshake with {cert} {tls.cert_file!r}: "
                    f"is it signed by the CA the service trusts (its --tls-client-ca)?")
        return None
    if "socket closed" in low or "connection reset" in low or "handshake" in low:
        host, _, port = target.rpartition(":")
        if port.isdigit() and speaks_tls(host.strip("[]") or "127.0.0.1", int(port)):
            return (f"the service at {target} speaks TLS only: give {ca} (the CA that signed its "
                    f"certificate; with mutual TLS also {cert} and {key})")
    return None
