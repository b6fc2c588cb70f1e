"""Where webhooks may go: URLs checked when an endpoint is made, and addresses checked at each delivery.

A webhook URL is chosen by an API client, and the workers that POST to it sit inside the network: a URL
naming ``127.0.0.1:6379``, ``10.0.0.5`` or the cloud metadata service (``169.254.169.254``) would turn
the service into a proxy for anyone with an admin key. So, unless ``WEBHOOK_ALLOW_PRIVATE_NETWORKS``
is true, a destination is refused unless every address its host resolves to is globally routable:
``ipaddress``'s ``is_global``, and not multicast, nor in the special-purpose blocks that Python's list
still counts as global (``NOT_GLOBAL``: 192.0.0.0/24, the 6to4 relay anycast 192.88.99.0/24…). An IPv6
address that carries an IPv4 address (IPv4-mapped ``::ffff:0:0/96``, 6to4 ``2002::/16``, Teredo
``2001::/32``, NAT64 ``64:ff9b::/96``) is judged as the IPv4 address inside it, so
``[2002:7f00:1::]`` is loopback. A URL with control characters (CR, LF, tab, NUL…) is refused, never
rewritten. The check runs at create and update, and again before every delivery, after DNS
resolution; the delivery then connects to the address that was checked (``Destination.pinned``), so a
name that resolves elsewhere a moment later (DNS rebinding) cannot slip through. Redirects are never
followed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from agent_sessions.errors import InvalidRequest

MAX_URL_LENGTH = 2048
CONTROL = re.compile(r"[\x00-\x20\x7f]")
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class Refused(Exception):
    """The destination may not be called; the message says why."""


@dataclass(frozen=True)
class Destination:
    url: str
    host: str  # as in the URL (SNI and the Host header use it)
    address: str  # the checked address the request goes to
    port: int

    @property
    def pinned(self) -> str:
        """The URL with the host replaced by the checked address."""
        parts = urlsplit(self.url)
        ip = f"[{self.address}]" if ":" in self.address else self.address
        return urlunsplit((parts.scheme, f"{ip}:{self.port}", parts.path or "/", parts.query, ""))


def check_url(url: str) -> tuple[str, int]:
    """The URL's host and port, or ``InvalidRequest`` naming ``url``: http(s), a host, no credentials."""
    if len(url) > MAX_URL_LENGTH:
        raise InvalidRequest.for_fields({"url": f"at most {MAX_URL_LENGTH} characters"})
    if CONTROL.search(url):  # urlsplit would drop CR, LF and tab silently: refuse what was sent
        raise InvalidRequest.for_fields({"url": "must not contain control characters or spaces"})
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        raise InvalidRequest.for_fields({"url": f"not a URL: {exc}"}) from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise InvalidRequest.for_fields({"url": "must be an absolute http:// or https:// URL"})
    if parts.username is not None or parts.password is not None:
        raise InvalidRequest.for_fields({"url": "must not carry credentials; receivers verify the signature"})
    if parts.fragment:
        raise InvalidRequest.for_fields({"url": "must not have a #fragment"})
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


async def _addresses(host: str, port: int) -> list[Address]:
    try:
        return [ipaddress.ip_address(host)]  # a literal address: nothing to resolve
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise Refused(f"{host} does not resolve: {exc}") from None
    return [ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]) for info in infos]


# Special-purpose blocks (IANA) that ``ipaddress.is_global`` calls global in some Python versions.
NOT_GLOBAL = tuple(
    ipaddress.ip_network(block)
    for block in ("0.0.0.0/8", "192.0.0.0/24", "192.88.99.0/24", "224.0.0.0/4", "240.0.0.0/4", "64:ff9b:1::/48")
)
NAT64 = ipaddress.ip_network("64:ff9b::/96")
KINDS = ("loopback", "link_local", "private", "multicast", "reserved", "unspecified")


def embedded_ipv4(address: Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, 6to4, Teredo's client, NAT64), if any."""
    if isinstance(address, ipaddress.IPv4Address):
        return None
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address.sixtofour is not None:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]
    if address in NAT64:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


def refused_reason(address: Address) -> str | None:
    """Why a webhook may not go to ``address`` (None: it is globally routable)."""
    inner = embedded_ipv4(address)
    if inner is not None:
        reason = refused_reason(inner)
        return None if reason is None else f"{address} carries {reason.replace(' is ', ', which is ', 1)}"
    if address.is_global and not address.is_multicast and not any(address in block for block in NOT_GLOBAL):
        return None
    kinds = [kind.replace("_", "-") for kind in KINDS if getattr(address, f"is_{kind}")]
    return f"{address} is not a public address ({', '.join(kinds) or 'special-purpose'})"


async def resolve(url: str, allow_private: bool) -> Destination:
    """Resolve and check a destination; raises ``Refused`` (a name that does not resolve included)."""
    host, port = check_url(url)
    addresses = await _addresses(host, port)
    if not addresses:
        raise Refused(f"{host} does not resolve")
    if not allow_private:
        for address in addresses:
            reason = refused_reason(address)
            if reason is not None:
                raise Refused(
                    f"{host} resolves to {reason}: private networks are refused "
                    "(WEBHOOK_ALLOW_PRIVATE_NETWORKS=true allows them)"
                )
    return Destination(url, host, str(addresses[0]), port)


async def check_destination(url: str, allow_private: bool) -> None:
    """For create and update: ``InvalidRequest`` naming ``url`` when the destination is refused."""
    try:
        await resolve(url, allow_private)
    except Refused as exc:
        raise InvalidRequest.for_fields({"url": str(exc)}) from None
