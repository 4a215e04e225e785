"""Which addresses outgoing requests may reach: public ones, and what `egress.allow` lists."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from typing import Any

import httpcore

from hookwise.errors import EgressDenied

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# IPv6 forms that carry an IPv4 address: the IPv4 address is what gets reached.
NAT64 = ipaddress.ip_network("64:ff9b::/96")
# Local-use NAT64 (RFC 8215) puts the IPv4 address wherever its prefix length says, so
# it cannot be read reliably: such addresses need egress.allow, like site-local ones.
LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")
COMPATIBLE = ipaddress.ip_network("::/96")
SIIT = ipaddress.ip_network("::ffff:0:0:0/96")
SITE_LOCAL = ipaddress.ip_network("fec0::/10")


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, 6to4, NAT64, SIIT or IPv4-compatible one."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped or address.sixtofour:
        return address.ipv4_mapped or address.sixtofour
    if any(address in net for net in (NAT64, COMPATIBLE, SIIT)) and address != COMPATIBLE[0]:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


class EgressPolicy:
    """Public addresses are allowed; others only when their host or network is listed."""

    def __init__(self, allow: Iterable[str] = ()) -> None:
        self.allow = tuple(allow)
        self.networks: list[IPNetwork] = []
        self.hosts: set[str] = set()
        for entry in self.allow:
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.hosts.add(entry.lower().rstrip("."))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EgressPolicy) and other.allow == self.allow

    def __hash__(self) -> int:
        return hash(self.allow)

    def permits(self, host: str, address: IPAddress) -> bool:
        if host.lower().rstrip(".") in self.hosts:
            return True
        if any(address in network for network in self.networks):
            return True
        embedded = embedded_ipv4(address)
        if embedded is not None:
            return self.permits(host, embedded)
        if isinstance(address, ipaddress.IPv6Address) and (
            address in SITE_LOCAL or address in LOCAL_NAT64
        ):
            return False
        return address.is_global and not address.is_multicast

    def allowed(self, host: str, addresses: list[str]) -> list[str]:
        """The addresses that may be connected to; EgressDenied when there are none."""
        kept = [a for a in addresses if self.permits(host, ipaddress.ip_address(a))]
        if not kept:
            raise self.denial(host, addresses)
        return kept

    def check_peer(self, host: str, stream: httpcore.NetworkStream | Any) -> None:
        """The address the socket really reached, e.g. after a NAT64 translation."""
        peer = stream.get_extra_info("server_addr")
        if peer and not self.permits(host, ipaddress.ip_address(peer[0])):
            raise self.denial(host, [peer[0]])

    def denial(self, host: str, addresses: list[str]) -> EgressDenied:
        return EgressDenied(
            f"egress to {host} ({', '.join(addresses)}) is refused: loopback, private, "
            f"link-local and metadata addresses need the host or network in egress.allow"
        )
