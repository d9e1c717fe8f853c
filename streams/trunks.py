"""IP -> trunk/carrier name, from the ``correlation.trunks`` alias map (IP or CIDR -> name).

Longest prefix wins, so a carrier's /24 can carry its own name inside a wider /16. Lookups are cached
per address (the same few peers send most of the traffic); the cache is bounded.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping

_CACHE_MAX = 65536


class TrunkMap:
    """``lookup(ip) -> name | None``."""

    __slots__ = ("_nets", "_cache")

    def __init__(self, aliases: Mapping[str, str] | None = None) -> None:
        nets = []
        for cidr, name in (aliases or {}).items():
            try:
                net = ipaddress.ip_network(cidr.strip(), strict=False)
            except ValueError as exc:
                raise ValueError(f"correlation.trunks: {cidr!r} is not an IP address or CIDR") from exc
            nets.append((net, name))
        nets.sort(key=lambda item: item[0].prefixlen, reverse=True)
        self._nets = nets
        self._cache: dict[str, str | None] = {}

    def __bool__(self) -> bool:
        return bool(self._nets)

    def lookup(self, ip: str | None) -> str | None:
        if not ip or not self._nets:
            return None
        cache = self._cache
        try:
            return cache[ip]
        except KeyError:
            pass
        name = self._match(ip)
        if len(cache) >= _CACHE_MAX:
            cache.clear()
        cache[ip] = name
        return name

    def _match(self, ip: str) -> str | None:
        try:
            addr = ipaddress.ip_address(ip.split("%", 1)[0])
        except ValueError:
            return None
        for net, name in self._nets:
            if addr.version == net.version and addr in net:
                return name
        return None
