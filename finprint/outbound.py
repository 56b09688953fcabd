"""The one guard for outbound connections that a caller's input names (an S3 ingest source, any URL).

Without it a caller could make the server connect wherever its input says, and read or probe what only
the server can reach: the other services, the database, a cloud metadata endpoint (server-side request
forgery). The policy, per deployment:

- an endpoint on the allow-list (``host``, ``host:port``, or an address range in CIDR notation) is
  reached whatever its addresses;
- any other endpoint is reached only when public destinations are allowed and *every* address its
  name resolves to is public: loopback, private, link-local, shared (CGNAT), multicast, reserved and
  unspecified addresses are refused, IPv4 and IPv6 alike, an IPv4-mapped or NAT64/6to4-embedded IPv4
  address judged as the IPv4 address it carries.

The name is resolved once, here, and the connection goes to the address that was checked (see
:meth:`OutboundGuard.pool_manager`), so a name that resolves elsewhere the second time (DNS rebinding)
cannot slip past the check. A refusal never tells the caller what the name resolved to.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import urllib3
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import NewConnectionError
from urllib3.util import connection as urllib3_connection

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Ranges Python's is_private/is_global do not all cover on every version, named so the policy reads whole.
_NOT_PUBLIC_V4 = [ipaddress.ip_network(n) for n in (
    "0.0.0.0/8", "10.0.0.0/8", "100.64.0.0/10", "127.0.0.0/8", "169.254.0.0/16", "172.16.0.0/12",
    "192.0.0.0/24", "192.0.2.0/24", "192.88.99.0/24", "192.168.0.0/16", "198.18.0.0/15", "198.51.100.0/24",
    "203.0.113.0/24", "224.0.0.0/4", "240.0.0.0/4")]
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class OutboundRefused(Exception):
    """The endpoint is not one this deployment lets a caller's input reach."""

    def __init__(self, endpoint: str, setting: str) -> None:
        super().__init__(
            f"{endpoint} is not an allowed endpoint: only public addresses are reached, and loopback, "
            f"private and link-local ones only when {setting} lists them"
        )
        self.endpoint = endpoint
        self.setting = setting


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 one carries (IPv4-mapped, NAT64, 6to4, Teredo), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    return None


def is_public(address: IPAddress) -> bool:
    """Whether ``address`` is on the public internet (nothing internal, nothing special)."""
    carried = embedded_ipv4(address)
    if carried is not None:
        return is_public(carried)
    if isinstance(address, ipaddress.IPv4Address):
        return not any(address in network for network in _NOT_PUBLIC_V4)
    return address.is_global and not address.is_multicast


@dataclass(frozen=True)
class AllowRule:
    """One allow-list entry: a host name or address (any port, or one port), or an address range."""

    host: str | None = None
    port: int | None = None
    network: IPNetwork | None = None

    @classmethod
    def parse(cls, entry: str) -> AllowRule:
        text = entry.strip().lower()
        if "/" in text:
            return cls(network=ipaddress.ip_network(text, strict=False))
        host, port = split_endpoint(text)
        return cls(host=host, port=port)

    def names(self, host: str, port: int) -> bool:
        return self.host == host.lower().strip("[]") and self.port in (None, port)

    def covers(self, address: IPAddress) -> bool:
        if self.network is None:
            return False
        carried = embedded_ipv4(address)
        return address in self.network or (carried is not None and carried in self.network)


def split_endpoint(endpoint: str, default_port: int | None = None) -> tuple[str, int | None]:
    """``host:port``, ``[v6]:port``, ``host`` or a bare IPv6 address as (host, port)."""
    text = endpoint.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif text.count(":") == 1:
        host, port = text.split(":")
    else:
        host, port = text, ""
    if not host:
        raise ValueError(f"{endpoint!r} has no host")
    if port and not (port.isdigit() and 0 < int(port) < 65536):
        raise ValueError(f"{endpoint!r} has a port that is not a number from 1 to 65535")
    return host.lower(), int(port) if port else default_port


@dataclass(frozen=True)
class OutboundGuard:
    """Checks (and pins) every outbound connection a caller's input names; see the module's policy."""

    allow: tuple[AllowRule, ...] = ()
    allow_public: bool = True
    setting: str = "the outbound allow-list"
    """The setting an operator changes to allow more, named in refusals."""

    @classmethod
    def from_entries(cls, entries: Sequence[str], *, allow_public: bool = True, setting: str) -> OutboundGuard:
        return cls(tuple(AllowRule.parse(e) for e in entries if e.strip()), allow_public, setting)

    def addresses(self, host: str, port: int, endpoint: str | None = None) -> list[str]:
        """The addresses to connect to for ``host:port``; raises OutboundRefused (naming ``endpoint``, as the
        caller wrote it) unless every one is allowed."""
        endpoint = endpoint or f"{host}:{port}"
        named = any(rule.names(host, port) for rule in self.allow)
        try:
            found = socket.getaddrinfo(host.strip("[]"), port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError):
            # Said as a refusal too: a caller must not learn which internal names exist.
            raise OutboundRefused(endpoint, self.setting) from None
        addresses = list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in found))
        if named:
            return addresses
        for text in addresses:
            address = ipaddress.ip_address(text)
            covered = any(rule.covers(address) for rule in self.allow)
            if not covered and not (self.allow_public and is_public(address)):
                raise OutboundRefused(endpoint, self.setting)
        return addresses

    def check_endpoint(self, endpoint: str, default_port: int) -> None:
        """Check a ``host[:port]`` a caller sent, before anything is built from it."""
        try:
            host, port = split_endpoint(endpoint, default_port)
        except ValueError:
            raise OutboundRefused(endpoint, self.setting) from None
        assert port is not None
        self.addresses(host, port, endpoint)

    def pool_manager(self, **kwargs: Any) -> urllib3.PoolManager:
        """A urllib3 pool manager (what the minio SDK takes as ``http_client``) whose every connection,
        redirects included, goes only to an address this guard allowed."""
        manager = urllib3.PoolManager(**kwargs)
        manager.pool_classes_by_scheme = {
            "http": _guarded_pool(HTTPConnectionPool, _guarded_connection(HTTPConnection, self)),
            "https": _guarded_pool(HTTPSConnectionPool, _guarded_connection(HTTPSConnection, self)),
        }
        return manager


def _guarded_connection(base: type[HTTPConnection], guard: OutboundGuard) -> type[HTTPConnection]:
    class GuardedConnection(base):  # type: ignore[valid-type, misc]
        def _new_conn(self) -> socket.socket:
            # The TLS layer above still checks the certificate against self.host; only the socket is pinned.
            addresses = guard.addresses(self.host, self.port)
            last: OSError | None = None
            for address in addresses:
                try:
                    return urllib3_connection.create_connection(
                        (address, self.port), self.timeout, source_address=self.source_address,
                        socket_options=self.socket_options)
                except OSError as exc:
                    last = exc
            raise NewConnectionError(self, f"Failed to establish a new connection: {last}")

    return GuardedConnection


def _guarded_pool(base: type[HTTPConnectionPool], connection: type[HTTPConnection]) -> type[HTTPConnectionPool]:
    return type(f"Guarded{base.__name__}", (base,), {"ConnectionCls": connection})
