"""Where a webhook may go, checked again at each delivery (``destinations.resolve``): only globally
routable addresses, the IPv4 address inside 6to4, Teredo, NAT64 and IPv4-mapped addresses judged as IPv4."""

from __future__ import annotations

import asyncio

import pytest

from agent_sessions.webhooks.destinations import Refused, resolve


@pytest.mark.parametrize(
    "url",
    [
        "http://100.100.100.200/",
        "http://100.64.0.1/",
        "http://[::ffff:100.100.100.200]/",
        "http://192.0.0.8/",
        "http://192.88.99.1/",
        "http://[2002:7f00:1::]/",
        "http://[2002:a9fe:a9fe::]/",
        "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",  # Teredo, client 127.0.0.1
        "http://[64:ff9b::a00:1]/",  # NAT64 of 10.0.0.1
        "http://[64:ff9b:1::808:808]/",  # local-use NAT64
        "http://239.1.2.3/",
        "http://198.18.0.1/",
        "http://[fd00::1]/",
    ],
)
def test_a_delivery_to_an_address_that_is_not_global_is_refused(url: str) -> None:
    with pytest.raises(Refused, match="not a public address"):
        asyncio.run(resolve(url, allow_private=False))
    assert asyncio.run(resolve(url, allow_private=True)).url == url


@pytest.mark.parametrize(
    "url",
    ["http://93.184.215.14/", "http://[2606:4700::1111]/", "http://[2002:808:808::]/", "http://[64:ff9b::808:808]/"],
)
def test_public_addresses_are_allowed(url: str) -> None:
    assert asyncio.run(resolve(url, allow_private=False)).url == url
