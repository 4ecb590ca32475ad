"""Serving the panel: waitress for HTTP, cheroot for HTTPS, in one process.

Waitress (production WSGI server, no TLS by design) serves plain HTTP on
``[web] listen:port``. Browsers allow the microphone only on secure origins,
so the same app is also served over HTTPS by cheroot (CherryPy's production
WSGI server, with TLS through Python's ssl module) on ``https_port``, with the
admin's certificate or one generated here into ``<data_dir>/tls``.
"""
from __future__ import annotations

import datetime as dt
import fcntl
import ipaddress
import logging
import os
import socket
import struct
import threading
from pathlib import Path

import waitress
from cheroot import wsgi
from cheroot.ssl.builtin import BuiltinSSLAdapter
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from gateway.core.backup import hold_panel_lock
from gateway.core.config import Config

log = logging.getLogger("allerta.web")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free on ``host`` right now (for the demo and tests)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def ensure_certificate(config: Config, listen: str | None = None) -> tuple[Path, Path]:
    """The configured certificate and key, or a self-signed pair generated into <data_dir>/tls.

    The generated pair is made again when it no longer covers the names the panel is reached by
    (a new address from DHCP, a name added to ``tls_names``): browsers refuse a certificate whose
    subjectAltName lacks the address in the URL bar.
    """
    web = config.web
    if web.tls_cert:
        cert, key = Path(web.tls_cert), Path(web.tls_key)
        for path, what in ((cert, "tls_cert"), (key, "tls_key")):
            if not path.is_file():
                raise FileNotFoundError(f"[web] {what}: {path} does not exist")
        return cert, key
    directory = Path(config.general.data_dir) / "tls"
    cert, key = directory / "panel.crt", directory / "panel.key"
    names = certificate_names(web.listen if listen is None else listen, web.tls_names)
    if not (cert.exists() and key.exists()) or not names <= _names_in(cert):
        generate_self_signed(cert, key, extra_names=sorted(names))
    return cert, key


def certificate_names(listen: str, extra: list[str] = ()) -> set[str]:
    """Every name and address the panel is reached by: loopback, this machine's name, the listening
    address, or with 0.0.0.0 (every interface) each non-loopback IPv4 address; then the admin's names."""
    names = {"localhost", "127.0.0.1", "::1", socket.gethostname(), *extra}
    if listen in ("", "0.0.0.0", "::"):
        names.update(interface_ipv4_addresses())
    elif listen:
        names.add(listen)
    return names


def interface_ipv4_addresses() -> set[str]:
    """The IPv4 address of each network interface of this machine, loopback excluded (Linux ioctl:
    the standard library has no portable way, and reading them needs no extra dependency)."""
    siocgifaddr = 0x8915
    found = set()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        for _index, name in socket.if_nameindex():
            try:
                reply = fcntl.ioctl(sock.fileno(), siocgifaddr, struct.pack("256s", name.encode()[:15]))
            except OSError:
                continue  # an interface without an IPv4 address
            address = ipaddress.IPv4Address(reply[20:24])
            if not address.is_loopback and not address.is_unspecified:
                found.add(str(address))
    return found


def _names_in(cert_path: Path) -> set[str]:
    try:
        certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
        alt = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (ValueError, x509.ExtensionNotFound):
        return set()
    return set(alt.get_values_for_type(x509.DNSName)) | {str(a) for a in alt.get_values_for_type(x509.IPAddress)}


def generate_self_signed(cert_path: Path, key_path: Path, *, extra_names: list[str] = ()) -> None:
    key = ec.generate_private_key(ec.SECP256R1())
    hostname = socket.gethostname()
    dns = {"localhost", hostname}
    addresses = {"127.0.0.1", "::1"}
    for name in extra_names:
        try:
            if not ipaddress.ip_address(name).is_unspecified:
                addresses.add(name)
        except ValueError:
            if name:
                dns.add(name)
    names: list[x509.GeneralName] = [x509.DNSName(n) for n in sorted(dns)]
    names += [x509.IPAddress(ipaddress.ip_address(a)) for a in sorted(addresses)]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"Allerta {hostname}")])
    now = dt.datetime.now(dt.timezone.utc)
    certificate = (x509.CertificateBuilder().subject_name(subject).issuer_name(subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(minutes=5)).not_valid_after(now + dt.timedelta(days=3650))
                   .add_extension(x509.SubjectAlternativeName(names), critical=False)
                   .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                   .sign(key, hashes.SHA256()))
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))


def body_limit(config: Config) -> int:
    """The largest request body either server reads: the panel's upload limit and 1 MiB for the form
    around it. Flask's own MAX_CONTENT_LENGTH only refuses once the request reaches the app; waitress
    alone would buffer up to 1 GiB first (a 100 MB unauthenticated POST to /login was read whole). With
    the cap at the server, a larger Content-Length is answered 413 before a byte of the body is read."""
    return (config.web.max_upload_mb + 1) * 1024 * 1024


class HttpsServer:
    """cheroot serving the app over TLS in a background thread."""

    def __init__(self, app, host: str, port: int, cert: Path, key: str | Path, threads: int = 8,  # noqa: ANN001
                 max_body: int = 0) -> None:
        self.server = wsgi.Server((host, port), app, numthreads=threads, server_name="allerta")
        self.server.max_request_body_size = max_body  # 0: unlimited (cheroot's default)
        self.server.ssl_adapter = BuiltinSSLAdapter(str(cert), str(key))
        self.thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.server.bind_addr[1]

    def start(self) -> None:
        self.server.prepare()  # binds now: a port in use fails here, not in the thread
        self.thread = threading.Thread(target=self.server.serve, name="https", daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.stop()
        if self.thread:
            self.thread.join(timeout=5)


def serve(app, config: Config, *, host: str | None = None, port: int | None = None,  # noqa: ANN001
          https_port: int | None = None) -> None:
    """Serve until interrupted: HTTPS in a thread (when on), HTTP with waitress in the foreground."""
    # Held while serving, so 'allerta restore' refuses to replace the database under the panel.
    panel_lock = hold_panel_lock(config)
    web = config.web
    host = host or web.listen
    port = web.port if port is None else port
    https_port = web.https_port if https_port is None else https_port
    https = None
    if https_port:
        cert, key = ensure_certificate(config, host)
        https = HttpsServer(app, host, https_port, cert, key, max_body=body_limit(config))
        https.start()
        print(f"panel: https://{_shown(host)}:{https.port}/ (certificate {cert})", flush=True)
    print(f"panel: http://{_shown(host)}:{port}/", flush=True)
    try:
        waitress.serve(app, host=host, port=port, threads=8, ident="allerta",
                       max_request_body_size=body_limit(config))
    finally:
        if https:
            https.stop()
        panel_lock.release()


def _shown(host: str) -> str:
    return "127.0.0.1" if host in ("0.0.0.0", "") else f"[{host}]" if ":" in host else host
