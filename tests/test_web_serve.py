"""Serving: HTTPS with a generated certificate (cheroot), HTTP with waitress, `allerta web` end to end."""
from __future__ import annotations

import http.client
import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509

from gateway.core.services import build_services
from gateway.core.config import ConfigError, load_config
from tests.support import write_config
from web.app import create_app
from web.serve import HttpsServer, ensure_certificate, free_port, generate_self_signed, interface_ipv4_addresses


def _https_get(port: int, cafile: Path, path: str = "/login") -> tuple[int, dict, bytes]:
    context = ssl.create_default_context(cafile=str(cafile))  # verifies the chain and the name 127.0.0.1
    connection = http.client.HTTPSConnection("127.0.0.1", port, context=context, timeout=10)
    connection.request("GET", path)
    response = connection.getresponse()
    return response.status, dict(response.getheaders()), response.read()


@pytest.mark.integration
def test_tls_serving_with_a_generated_certificate(tmp_path):
    services = build_services(load_config(write_config(tmp_path)))
    cert, key = ensure_certificate(services.config)
    assert cert.parent == tmp_path / "data" / "tls" and oct(key.stat().st_mode & 0o777) == "0o600"
    names = x509.load_pem_x509_certificate(cert.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    assert "localhost" in names.get_values_for_type(x509.DNSName)
    first = cert.read_bytes()
    assert ensure_certificate(services.config) == (cert, key) and cert.read_bytes() == first  # reused
    server = HttpsServer(create_app(services), "127.0.0.1", 0, cert, key)
    server.start()
    try:
        status, headers, body = _https_get(server.port, cert)
        assert status == 200 and b"Allerta" in body
        # HSTS is host-wide: it would break the plain-HTTP port that keeps serving the panel.
        assert "Secure" in headers["Set-Cookie"] and "Strict-Transport-Security" not in headers
        # A client that does not trust our certificate (it trusts another one, made here) is refused.
        other = tmp_path / "other"
        generate_self_signed(other / "other.crt", other / "other.key")
        try:
            _https_get(server.port, other / "other.crt")
        except ssl.SSLError:
            pass
        else:
            raise AssertionError("an untrusted certificate was accepted")
    finally:
        server.stop()


def _names(cert: Path) -> set[str]:
    alt = x509.load_pem_x509_certificate(cert.read_bytes()).extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value
    return set(alt.get_values_for_type(x509.DNSName)) | {str(a) for a in alt.get_values_for_type(x509.IPAddress)}


@pytest.mark.integration
def test_an_admin_certificate_is_served_as_it_is(tmp_path):
    admin = tmp_path / "admin"
    generate_self_signed(admin / "comune.crt", admin / "comune.key", extra_names=["allerta.comune.test"])
    services = build_services(load_config(write_config(
        tmp_path, f'[web]\ntls_cert = "{admin / "comune.crt"}"\ntls_key = "{admin / "comune.key"}"\n')))
    assert ensure_certificate(services.config) == (admin / "comune.crt", admin / "comune.key")
    assert not (tmp_path / "data" / "tls").exists()  # nothing generated beside it
    server = HttpsServer(create_app(services), "127.0.0.1", 0, admin / "comune.crt", admin / "comune.key")
    server.start()
    try:
        context = ssl.create_default_context(cafile=str(admin / "comune.crt"))
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as raw:
            with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
                served = tls.getpeercert(binary_form=True)
        assert served == ssl.PEM_cert_to_DER_cert((admin / "comune.crt").read_text())
        status, _, body = _https_get(server.port, admin / "comune.crt")
        assert status == 200 and b"Allerta" in body
    finally:
        server.stop()


def test_listening_on_every_interface_the_certificate_names_each_address(tmp_path):
    path = write_config(tmp_path, '[web]\nlisten = "0.0.0.0"\ntls_names = ["allerta.comune.test", "10.9.8.7"]\n')
    cert, _key = ensure_certificate(load_config(path))
    names = _names(cert)
    assert interface_ipv4_addresses() <= names and socket.gethostname() in names
    assert {"localhost", "127.0.0.1", "allerta.comune.test", "10.9.8.7"} <= names and "0.0.0.0" not in names
    # A name the certificate does not cover yet (here a new tls_names entry) makes a new one.
    first = cert.read_bytes()
    path.write_text(path.read_text().replace('"10.9.8.7"', '"10.9.8.7", "panel.comune.test"'))
    ensure_certificate(load_config(path))
    assert cert.read_bytes() != first and "panel.comune.test" in _names(cert)


def test_tls_names_are_checked(tmp_path):
    for bad in ('["not a name!"]', '[""]', '[42]'):
        try:
            load_config(write_config(tmp_path, f"[web]\ntls_names = {bad}\n"))
        except ConfigError as exc:
            assert "tls_names" in str(exc), bad
        else:
            raise AssertionError(f"tls_names = {bad} was accepted")


@pytest.mark.integration
def test_http_with_waitress(tmp_path):
    from waitress.server import create_server
    app = create_app(build_services(load_config(write_config(tmp_path))))
    server = create_server(app, host="127.0.0.1", port=0)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        connection = http.client.HTTPConnection("127.0.0.1", server.effective_port, timeout=10)
        connection.request("GET", "/")
        response = connection.getresponse()
        assert response.status == 302 and response.getheader("Location").startswith("/login")
        response.read()
        # A client claiming HTTPS through a proxy header gets neither HSTS nor a Secure cookie on the
        # plain port: waitress trusts no proxy, so the request stays http.
        connection.request("GET", "/login", headers={"X-Forwarded-Proto": "https"})
        response = connection.getresponse()
        assert response.status == 200
        assert response.getheader("Strict-Transport-Security") is None
        assert "Secure" not in response.getheader("Set-Cookie")
    finally:
        server.close()


def _announce_huge_body(sock: socket.socket) -> int:
    """The status answered to a POST that announces 100 MB and sends none of it."""
    with sock:
        sock.sendall(b"POST /login HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/x-www-form-urlencoded"
                     b"\r\nContent-Length: 104857600\r\n\r\n")
        status_line = sock.makefile("rb").readline()
    return int(status_line.split()[1])


@pytest.mark.integration
def test_allerta_web_serves_http_and_https(tmp_path):
    http_port, https_port = free_port(), free_port()
    config = write_config(tmp_path)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    process = subprocess.Popen([sys.executable, "-m", "gateway.shell.cli", "--config", str(config), "web",
                                "--port", str(http_port), "--https-port", str(https_port)],
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        cert = tmp_path / "data" / "tls" / "panel.crt"
        deadline = time.monotonic() + 30
        while True:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", http_port, timeout=2)
                connection.request("GET", "/login")
                assert connection.getresponse().status == 200
                break
            except OSError:
                assert process.poll() is None, process.stdout.read()
                assert time.monotonic() < deadline, "allerta web did not start"
                time.sleep(0.2)
        status, _, _ = _https_get(https_port, cert)
        assert status == 200
        # A 100 MB body is refused by the server from its Content-Length, before it is read: the
        # request below sends the headers only, and the answer comes anyway.
        assert _announce_huge_body(socket.create_connection(("127.0.0.1", http_port), timeout=10)) == 413
        context = ssl.create_default_context(cafile=str(cert))
        raw = context.wrap_socket(socket.create_connection(("127.0.0.1", https_port), timeout=10),
                                  server_hostname="127.0.0.1")
        assert _announce_huge_body(raw) == 413
    finally:
        process.terminate()
        output = process.communicate(timeout=10)[0]
    assert f"https://127.0.0.1:{https_port}/" in output and f"http://127.0.0.1:{http_port}/" in output
