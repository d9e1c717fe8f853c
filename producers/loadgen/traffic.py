"""The normal traffic: arrival processes and the sessions they start (calls, registrations).

Each stream draws from its own ``random.Random`` seeded from the profile seed and the stream's name,
so adding an attack or registrations never changes the calls of the same seed.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator

from producers.loadgen.calls import Call
from producers.loadgen.dist import sampler
from producers.loadgen.profile import Profile
from producers.loadgen.registers import Register
from producers.loadgen.topology import Topology, Weighted

REJECT_CODES = Weighted([404, 484, 403, 603], [0.5, 0.2, 0.2, 0.1])
FAIL_CODES = Weighted([503, 500, 502, 504], [0.6, 0.15, 0.15, 0.1])


def stream_rng(seed: int, name: str) -> random.Random:
    """The RNG of one stream (deterministic: ``random.seed`` of a str hashes it with SHA-512)."""
    return random.Random(f"sipscope-loadgen/{seed}/{name}")


def poisson_times(rng: random.Random, rate_at_hour: Callable[[int], float], start: float,
                  end: float) -> Iterator[float]:
    """Arrival times of a Poisson process whose rate is constant within each UTC clock hour.

    Exact for a piecewise-constant rate: at an hour boundary the next gap is drawn afresh (memoryless)."""
    t = start
    while t < end:
        hour_end = min((math.floor(t / 3600) + 1) * 3600.0, end)
        rate = rate_at_hour(int(t % 86400 // 3600))
        if rate <= 0:
            t = hour_end
            continue
        nxt = t + rng.expovariate(rate)
        if nxt >= hour_end:
            t = hour_end
            continue
        t = nxt
        yield t


def ids(rng: random.Random, host: str) -> tuple[str, str, str, str, str, str]:
    """Call-ID, From tag, To tag and the branches of the INVITE, the ACK of a 2xx and the BYE (one draw)."""
    x = f"{rng.getrandbits(304):076x}"
    return (f"{x[:16]}-{x[16:24]}@{host}", x[24:32], x[32:40], x[40:52], x[52:64], x[64:76])


def register_ids(rng: random.Random, host: str) -> tuple[str, str, str, str, str, str, str]:
    """Call-ID, From tag, To tag, the two REGISTER branches, the server nonce and the client cnonce."""
    x = f"{rng.getrandbits(448):0112x}"
    return (f"{x[:24]}@{host}", x[24:32], x[32:40], x[40:52], x[52:64], x[64:96], x[96:112])


class CallFactory:
    """Normal calls: trunk by weight, direction, numbers from the trunks' plans, outcome by the mix."""

    def __init__(self, prof: Profile, topo: Topology, rng: random.Random) -> None:
        self.prof, self.topo, self.rng = prof, topo, rng
        self.mix = Weighted(list(prof.mix), list(prof.mix.values()))
        self.hold, self.pdd = sampler(prof.hold, rng), sampler(prof.pdd, rng)
        self.ring, self.ring_na = sampler(prof.ring, rng), sampler(prof.ring_no_answer, rng)
        self.arrivals_end = prof.start + prof.duration
        self.cutoff = self.arrivals_end + prof.tail if prof.tail >= 0 else math.inf

    def _capped_hold(self, t0: float, d100: float, pdd: float, ring: float, hold: float) -> float:
        """``hold``, or a shorter one ending inside the tail window when it would end after the cutoff."""
        t_ack = t0 + max(pdd, d100 + 0.002) + max(ring, 0.001) + self.prof.rtt / 2
        if t_ack + hold <= self.cutoff:
            return hold
        lo = max(t_ack, self.arrivals_end)
        return max(self.rng.uniform(lo, max(lo, self.cutoff)) - t_ack, 0.002)

    def __call__(self, t0: float) -> Call:
        rng, prof, topo = self.rng, self.prof, self.topo
        peers = topo.origin.pick(rng)
        other = topo.origin.pick(rng)
        trunk = peers.trunk
        inbound = trunk.direction == "in" or (trunk.direction == "both" and rng.random() < 0.5)
        peer = (rng.choice(peers.hosts), 5060)
        if inbound:
            uac, uas, caller, callee = peer, topo.sbc, peers.number(rng), other.number(rng)
            uac_ua, uas_ua = trunk.user_agent, prof.sbc_user_agent
        else:
            uac, uas, caller, callee = topo.sbc, peer, other.number(rng), peers.number(rng)
            uac_ua, uas_ua = prof.sbc_user_agent, trunk.user_agent
        media = (rng.randrange(10**9), 2 * rng.randrange(8192, 16384), 2 * rng.randrange(8192, 16384))
        call = Call(t0, kind="call", uac=uac, uas=uas, caller=caller, callee=callee, ids=ids(rng, uac[0]),
                    media=media, uac_ua=uac_ua, uas_ua=uas_ua, trunk=trunk.name)
        outcome = self.mix.pick(rng)
        half = prof.rtt / 2
        d100 = half * rng.uniform(0.8, 1.5)
        pdd = self.pdd()
        kw = {"d100": d100, "pdd": pdd, "rtt": prof.rtt, "ring": 0.0, "hold": 0.0,
              "early": rng.random() < prof.early_media_share}
        if outcome == "answered":
            ring = min(self.ring(), max(self.cutoff - t0 - pdd, 0.5))
            kw.update(ring=ring, hold=self._capped_hold(t0, d100, pdd, ring, self.hold()),
                      hangup="caller" if rng.random() < prof.caller_hangup_share else "callee")
        elif outcome == "no_answer":
            ring = self.ring_na()
            if t0 + pdd + ring > self.cutoff:  # the caller gives up by the end of the tail
                ring = max(self.cutoff - t0 - pdd, 0.5)
            kw.update(ring=ring, cancel=rng.random() < prof.no_answer_cancel_share)
        elif outcome == "cancelled":
            kw.update(pdd=pdd * rng.uniform(0.3, 0.9))
        elif outcome == "busy":
            kw.update(final=486)
        elif outcome == "rejected":
            kw.update(final=REJECT_CODES.pick(rng), pdd=pdd * 0.5)
        else:
            kw.update(final=FAIL_CODES.pick(rng), pdd=pdd * 0.5)
        call.schedule(outcome, **kw)
        return call


class RegisterFactory:
    """Subscriber registrations with a 401 challenge round (and a share refused with 403)."""

    def __init__(self, prof: Profile, topo: Topology, rng: random.Random) -> None:
        self.prof, self.topo, self.rng = prof, topo, rng

    def __call__(self, t0: float) -> Register:
        rng, prof = self.rng, self.prof
        a = prof.access
        idx = rng.randrange(max(a.users, 1))
        user, ua = self.topo.subscriber(idx)
        reg = Register(t0, kind="register", ua=ua, registrar=self.topo.sbc, user=user, domain=a.domain,
                       ids=register_ids(rng, ua[0]),
                       password=f"secret-{idx}", expires=a.expires, ua_name=a.user_agent, server=prof.sbc_user_agent)
        challenge = rng.random() < a.challenge_share
        result = 403 if rng.random() < a.fail_share else 200
        reg.schedule(challenge=challenge, result=result, rtt=prof.rtt, think=rng.uniform(0.005, 0.05))
        return reg


def call_sessions(prof: Profile, topo: Topology) -> Iterator[Call]:
    rng = stream_rng(prof.seed, "calls")
    make = CallFactory(prof, topo, rng)
    for t in poisson_times(rng, prof.rate_at, prof.start, prof.start + prof.duration):
        yield make(t)


def register_sessions(prof: Profile, topo: Topology) -> Iterator[Register]:
    if prof.reg_rate <= 0:
        return
    rng = stream_rng(prof.seed, "registrations")
    make = RegisterFactory(prof, topo, rng)
    rate = prof.reg_rate
    for t in poisson_times(rng, lambda _h: rate, prof.start, prof.start + prof.duration):
        yield make(t)
