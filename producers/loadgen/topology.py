"""Addresses and numbers of the generated network: the SBC, trunk peers and their number plans, subscribers."""

from __future__ import annotations

import bisect
import ipaddress
import random
from collections.abc import Sequence
from dataclasses import dataclass

from producers.loadgen.profile import Access, Profile, ProfileError, Trunk


def parse_hostport(text: str, default_port: int = 5060) -> tuple[str, int]:
    """``IP:PORT`` or ``IP`` -> ``(ip, port)`` (IPv4 only: the frames written are IPv4)."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, str(default_port)
    try:
        ipaddress.IPv4Address(host)
        return host, int(port)
    except ValueError:
        raise ProfileError(f"bad address {text!r}: want IPv4:PORT") from None


class Weighted:
    """Draw items by weight with one ``random()`` and a bisect."""

    __slots__ = ("cum", "items")

    def __init__(self, items: Sequence, weights: Sequence[float]) -> None:
        total = float(sum(weights))
        if total <= 0:
            raise ProfileError("weights must have a positive total")
        acc, cum = 0.0, []
        for w in weights:
            acc += w / total
            cum.append(acc)
        cum[-1] = 1.0
        self.items, self.cum = list(items), cum

    def pick(self, rng: random.Random):
        return self.items[bisect.bisect_right(self.cum, rng.random())]


@dataclass(frozen=True)
class TrunkPeers:
    trunk: Trunk
    hosts: tuple[str, ...]

    def number(self, rng: random.Random) -> str:
        return number(rng.choice(self.trunk.prefixes), self.trunk.number_length, rng)


def number(prefix: str, length: int, rng: random.Random) -> str:
    """A random E.164 number (digits) of ``length`` digits starting with ``prefix``."""
    k = max(length - len(prefix), 1)
    return f"{prefix}{rng.randrange(10**k):0{k}d}"


class Topology:
    """Resolved profile addresses: ``sbc``, trunk peers (weighted), subscriber addressing."""

    def __init__(self, prof: Profile) -> None:
        self.sbc = parse_hostport(prof.sbc)
        peers = []
        for t in prof.trunks:
            try:
                net = ipaddress.IPv4Network(t.cidr, strict=False)
            except ValueError:
                raise ProfileError(f"trunk {t.name}: bad IPv4 CIDR {t.cidr!r}") from None
            n = max(1, min(t.hosts, net.num_addresses - 2 if net.num_addresses > 2 else 1))
            first = 1 if net.num_addresses > 2 else 0
            peers.append(TrunkPeers(t, tuple(str(net.network_address + first + i) for i in range(n))))
        self.peers = peers
        self.origin = Weighted(peers, [p.trunk.weight for p in peers])
        self.access = prof.access
        try:
            self._access_net = ipaddress.IPv4Network(prof.access.cidr, strict=False)
        except ValueError:
            raise ProfileError(f"access: bad IPv4 CIDR {prof.access.cidr!r}") from None

    def subscriber(self, index: int) -> tuple[str, tuple[str, int]]:
        """(user number, its fixed UA address) of subscriber ``index`` (stable across registrations)."""
        a: Access = self.access
        k = max(a.number_length - len(a.prefix), 1)
        user = f"{a.prefix}{index % 10**k:0{k}d}"
        span = max(self._access_net.num_addresses - 2, 1)
        ip = str(self._access_net.network_address + 1 + index % span)
        return user, (ip, 5060 + index % 1000)
