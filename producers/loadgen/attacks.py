"""Injectable attacks, as the field sees them at a carrier SBC (see shared/reference/kpis-and-anomalies.md).

==============  =========================================================================================
``scan``        sipvicious-style: ``OPTIONS`` pings (200) then ``REGISTER`` enumeration of extensions
                100, 101, ... (404 for unknown users, 401 for the few that exist), User-Agent
                ``friendly-scanner``, From/To ``sip:100@1.1.1.1``
``bruteforce``  REGISTER password guessing against one subscriber: REGISTER, 401, REGISTER with a wrong
                digest, 403 Forbidden; one chain per attempt
``flood``       initial INVITEs from one address to random numbers, answered 100 then 503 + ACK
``wangiri``     one-ring calls from a premium-rate caller prefix to many distinct numbers: 18x after a
                short PDD, CANCEL after 1-3 s of ringing (10 % answered and dropped within 3 s)
==============  =========================================================================================

Each attack runs from ``profile.start + attack.start`` for ``attack.duration`` seconds at ``attack.rate``
sessions per second (a Poisson process), with its own RNG stream.
"""

from __future__ import annotations

from collections.abc import Iterator

from producers.loadgen.calls import Call
from producers.loadgen.profile import Attack, Profile
from producers.loadgen.registers import Probe, Register
from producers.loadgen.session import Session
from producers.loadgen.topology import Topology, number, parse_hostport
from producers.loadgen.traffic import ids, poisson_times, register_ids, stream_rng

DEFAULT_SRC = {"scan": "198.18.0.66:5062", "bruteforce": "198.18.0.77:5060", "flood": "198.18.0.88:5060",
               "wangiri": "198.18.0.99:5060"}
DEFAULT_UA = {"scan": "friendly-scanner", "bruteforce": "PolycomVVX-VVX_400-UA/5.9.0",
              "flood": "Asterisk PBX 18.1.0", "wangiri": "Huawei SoftX3000"}


def attack_sessions(prof: Profile, topo: Topology, attack: Attack, index: int) -> Iterator[Session]:
    rng = stream_rng(prof.seed, f"attack-{index}-{attack.kind}")
    src = parse_hostport(attack.src or DEFAULT_SRC[attack.kind])
    ua = attack.user_agent or DEFAULT_UA[attack.kind]
    t_start = prof.start + attack.start
    rate = attack.rate
    times = poisson_times(rng, lambda _h: rate, t_start, t_start + attack.duration)
    rtt, sbc, server = prof.rtt, topo.sbc, prof.sbc_user_agent
    kind = attack.kind
    if kind == "scan":
        for i, t in enumerate(times):
            x = f"{rng.getrandbits(128):032x}"
            if i % 10 == 0:
                method, user, code = "OPTIONS", "100", 200
            else:
                method, user = "REGISTER", str(100 + i)
                code = 401 if rng.random() < 0.05 else 404
            yield Probe(t, kind=kind, src=src, dst=sbc, method=method, user=user,
                        ids=(x[:16], x[16:24], x[24:32]), ua_name=ua, code=code, server=server, rtt=rtt)
    elif kind == "bruteforce":
        user, _ = topo.subscriber(0)
        user = attack.target or user
        domain = prof.access.domain
        for t in times:
            reg = Register(t, kind=kind, ua=src, registrar=sbc, user=user, domain=domain, ids=register_ids(rng, src[0]),
                           password=f"guess-{rng.getrandbits(32):08x}", expires=3600, ua_name=ua, server=server)
            reg.schedule(challenge=True, result=403, rtt=rtt, think=0.002)
            yield reg
    elif kind == "flood":
        for t in times:
            peers = topo.origin.pick(rng)
            call = Call(t, kind=kind, uac=src, uas=sbc, caller="100", callee=peers.number(rng),
                        ids=ids(rng, src[0]), media=(rng.randrange(10**9), 20000, 20002), uac_ua=ua, uas_ua=server,
                        trunk=None)
            call.schedule("failed", d100=rtt / 2, pdd=rtt, ring=0.0, hold=0.0, rtt=rtt, final=503)
            yield call
    else:  # wangiri
        prefix = attack.target or "882"
        for t in times:
            peers = topo.origin.pick(rng)
            call = Call(t, kind=kind, uac=src, uas=sbc, caller=number(prefix, 12, rng), callee=peers.number(rng),
                        ids=ids(rng, src[0]), media=(rng.randrange(10**9), 30000, 30002), uac_ua=ua,
                        uas_ua=server, trunk=None)
            pdd = rng.uniform(0.3, 1.2)
            if rng.random() < 0.1:
                call.schedule("answered", d100=rtt / 2, pdd=pdd, ring=rng.uniform(0.5, 2.0),
                              hold=rng.uniform(0.5, 2.5), rtt=rtt, hangup="caller")
            else:
                call.schedule("no_answer", d100=rtt / 2, pdd=pdd, ring=rng.uniform(1.0, 3.0), hold=0.0, rtt=rtt,
                              cancel=True)
            yield call
