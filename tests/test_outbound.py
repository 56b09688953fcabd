"""The outbound guard (finprint/outbound.py): which addresses are public, the allow-list, and connections
that go only where the guard allowed, redirects included, against real sockets on 127.0.0.1."""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from finprint.outbound import OutboundGuard, OutboundRefused, is_public, split_endpoint

NOT_PUBLIC = ["127.0.0.1", "127.255.0.9", "10.1.2.3", "172.16.0.1", "172.31.255.255", "192.168.1.1",
              "169.254.169.254", "100.64.0.1", "0.0.0.0", "224.0.0.1", "255.255.255.255", "198.18.0.1",
              "::1", "::", "fe80::1", "fc00::1", "fd12:3456::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
              "::ffff:169.254.169.254", "64:ff9b::a00:1", "2002:7f00:1::", "2001:db8::1"]
PUBLIC = ["8.8.8.8", "1.1.1.1", "151.101.1.69", "2606:4700:4700::1111", "::ffff:8.8.8.8", "2002:808:808::"]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_internal_and_special_addresses_are_not_public(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def test_endpoints_split_into_host_and_port() -> None:
    assert split_endpoint("minio.example.org:9000") == ("minio.example.org", 9000)
    assert split_endpoint("[::1]:9000") == ("::1", 9000)
    assert split_endpoint("s3.amazonaws.com", 443) == ("s3.amazonaws.com", 443)
    for malformed in ("host:port", "host:0", "host:65536", ":9000", "[]:80"):
        with pytest.raises(ValueError):
            split_endpoint(malformed)


def test_the_allow_list_admits_a_name_a_port_or_a_range() -> None:
    guard = OutboundGuard.from_entries(["localhost:9000", "10.20.0.0/16"], setting="SETTING")
    assert guard.addresses("localhost", 9000)
    with pytest.raises(OutboundRefused, match="SETTING"):
        guard.addresses("localhost", 9001)
    assert guard.addresses("10.20.3.4", 80) == ["10.20.3.4"]
    with pytest.raises(OutboundRefused):
        guard.addresses("10.21.0.1", 80)
    only_listed = OutboundGuard.from_entries(["localhost:9000"], allow_public=False, setting="SETTING")
    with pytest.raises(OutboundRefused):
        only_listed.addresses("8.8.8.8", 443)


class Redirecting(ThreadingHTTPServer):
    """Answers every request with a redirect to ``target`` and counts its connections."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.connections = 0
        super().__init__(("127.0.0.1", 0), _RedirectHandler)

    def verify_request(self, request, client_address) -> bool:  # noqa: ANN001 - socketserver's signature
        self.connections += 1
        return True


class _RedirectHandler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - http.server's name
        self.send_response(302)
        self.send_header("Location", self.server.target)  # type: ignore[attr-defined]
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A bare listening socket: any connection to it waits in its backlog, where the test looks."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock
    sock.close()


def _pending_connections(sock: socket.socket) -> int:
    count = 0
    while True:
        try:
            accepted, _ = sock.accept()
        except BlockingIOError:
            return count
        accepted.close()
        count += 1


def test_a_redirect_to_a_refused_address_is_not_followed(listener: socket.socket) -> None:
    forbidden = f"http://127.0.0.1:{listener.getsockname()[1]}/latest/meta-data/"
    server = Redirecting(forbidden)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        guard = OutboundGuard.from_entries([f"127.0.0.1:{server.server_address[1]}"], setting="SETTING")
        with pytest.raises(OutboundRefused):
            guard.pool_manager().request("GET", f"http://127.0.0.1:{server.server_address[1]}/bucket")
        assert server.connections == 1
        assert _pending_connections(listener) == 0
    finally:
        server.shutdown()
        server.server_close()
