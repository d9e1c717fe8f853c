"""What ``sipscope loadgen`` generates: the traffic profile, its defaults and its parsers.

A :class:`Profile` is plain data (``msgspec.Struct``), loaded from a JSON or TOML file (``--profile``)
and/or built from command-line options. Every field is documented here; the CLI options map to them.

Time model: calls arrive as a Poisson process whose rate is ``cps * curve[hour] / max(curve)`` during
each clock hour (UTC) of the simulated time, so ``cps`` is the busy-hour rate and the hour with the
largest weight is the designed busy hour. Registrations arrive as a Poisson process of ``reg_rate``.
Attacks run in their own windows at their own rate, on top.

Distributions are written ``KIND:MEAN[:SHAPE]``: ``exp:120`` (exponential, mean 120 s),
``lognormal:120:0.8`` (lognormal with mean 120 s and sigma 0.8 of the underlying normal),
``uniform:1:3`` (between 1 and 3 s), ``fixed:2`` (always 2 s).
"""

from __future__ import annotations

import json
import tomllib
from pathlib import Path
from typing import Any

import msgspec

OUTCOMES = ("answered", "busy", "no_answer", "cancelled", "failed", "rejected")
"""Call outcomes the generator can produce (the names of ``streams/outcomes.py``)."""

_OUTCOME_ALIASES = {"no-answer": "no_answer", "noanswer": "no_answer", "cancel": "cancelled", "failure": "failed",
                    "fail": "failed", "reject": "rejected", "answer": "answered"}

DEFAULT_MIX = {"answered": 0.6, "no_answer": 0.12, "busy": 0.08, "cancelled": 0.07, "failed": 0.05, "rejected": 0.08}

ATTACK_KINDS = ("scan", "bruteforce", "flood", "wangiri")

CURVES: dict[str, tuple[float, ...]] = {
    "flat": (1.0,) * 24,
    # a business-day carrier curve: quiet night, morning ramp, busy hour 10:00-11:00, afternoon plateau
    "business": (0.06, 0.04, 0.03, 0.03, 0.03, 0.05, 0.10, 0.25, 0.55, 0.85, 1.00, 0.90,
                 0.70, 0.80, 0.85, 0.80, 0.70, 0.55, 0.40, 0.30, 0.25, 0.20, 0.14, 0.09),
    # residential/mobile: evening busy hour 19:00-20:00
    "evening": (0.10, 0.06, 0.04, 0.03, 0.03, 0.04, 0.08, 0.18, 0.30, 0.40, 0.45, 0.50,
                0.55, 0.52, 0.50, 0.52, 0.58, 0.70, 0.85, 1.00, 0.90, 0.70, 0.45, 0.22),
}


class ProfileError(ValueError):
    """A profile file or option that cannot be used (the message says which and why)."""


class Dist(msgspec.Struct, frozen=True):
    """A distribution of durations in seconds (see the module docstring for the text form)."""

    kind: str = "exp"
    """``exp``, ``lognormal``, ``uniform`` or ``fixed``."""
    mean: float = 120.0
    """Mean (``exp``, ``lognormal``, ``fixed``) or lower bound (``uniform``), seconds."""
    shape: float = 0.0
    """``lognormal``: sigma of the underlying normal; ``uniform``: upper bound."""
    max: float = 0.0
    """Draws are capped here when > 0 (keeps a lognormal tail under the 4 h answered-call timeout)."""

    def expected(self) -> float:
        """The configured mean, ignoring the cap (what A = lambda * h uses)."""
        return (self.mean + self.shape) / 2 if self.kind == "uniform" else self.mean


class Trunk(msgspec.Struct, frozen=True):
    """A carrier interconnect: peers in one IP range with their number plan."""

    name: str
    cidr: str
    """Peer addresses (the SBC talks to hosts of this range)."""
    prefixes: list[str]
    """E.164 prefixes (digits) of this trunk's numbers: callers of calls it sends, callees of calls it takes."""
    weight: float = 1.0
    """Share of the calls this trunk originates (normalised over the trunks)."""
    direction: str = "in"
    """``in`` (peer -> SBC: the peer sends the INVITE), ``out`` (SBC -> peer) or ``both`` (half each)."""
    number_length: int = 11
    """Digits of a full E.164 number on this trunk (country code included)."""
    user_agent: str = "Sonus SBC"
    """User-Agent / Server of the peer."""
    hosts: int = 4
    """How many peer addresses of the range are used (the first ``hosts`` after the network address)."""


class Access(msgspec.Struct, frozen=True):
    """Subscribers that register to the SBC's registrar (the REGISTER traffic)."""

    cidr: str = "100.64.0.0/16"
    prefix: str = "6128"
    """E.164 prefix of the subscribers' numbers (their SIP users)."""
    number_length: int = 11
    users: int = 5000
    """Distinct subscribers (user numbers drawn from the first ``users`` of the prefix)."""
    domain: str = "sip.carrier.example"
    expires: int = 3600
    user_agent: str = "Yealink SIP-T46S 66.86.0.15"
    fail_share: float = 0.01
    """Share of registrations refused with 403 (wrong password) after the challenge."""
    challenge_share: float = 1.0
    """Share of registrations challenged with 401 before the 200 (the rest are accepted at once)."""


class Attack(msgspec.Struct, frozen=True):
    """One injected attack: ``kind`` from ``start`` (seconds after the generation start) for ``duration``."""

    kind: str
    """``scan`` (friendly-scanner OPTIONS + extension enumeration), ``bruteforce`` (REGISTER password
    guessing against one user), ``flood`` (INVITE flood answered 503), ``wangiri`` (one-ring calls)."""
    start: float = 0.0
    duration: float = 60.0
    rate: float = 20.0
    """Probes, attempts or calls per second."""
    src: str = ""
    """Attacker address (default per kind, from TEST-NET-3 / documentation ranges)."""
    user_agent: str = ""
    """User-Agent of the attacker (default per kind: ``friendly-scanner`` for scan)."""
    target: str = ""
    """bruteforce: the attacked user (default: the first subscriber); wangiri: caller prefix (default 882)."""


class Profile(msgspec.Struct, kw_only=True):
    """Everything one generation run needs, apart from the output."""

    seed: int = 1
    start: float = 1736121600.0
    """Simulated start time, epoch seconds (default 2025-01-06T00:00:00Z, a Monday)."""
    duration: float = 60.0
    """Simulated seconds of call arrivals (calls started before the end still finish)."""
    tail: float = -1.0
    """Seconds after the last arrival by which every answered call has hung up (its BYE drawn uniformly in
    that window when its own hold time would run longer) and every unanswered one has given up; < 0 keeps
    every hold time (calls end naturally, up to the hold cap). Bounds a real-time run to about
    ``duration + tail``: ``--hep``/``--sip`` default to 30 s."""
    cps: float = 10.0
    """Call attempts per second in the busiest hour of the curve (the rate everywhere when flat)."""
    curve: list[float] = msgspec.field(default_factory=lambda: list(CURVES["flat"]))
    """24 hourly weights (UTC hours of the simulated time); rate = cps * weight / max(weights)."""
    mix: dict[str, float] = msgspec.field(default_factory=lambda: dict(DEFAULT_MIX))
    """Outcome shares of normal calls (normalised)."""
    hold: Dist = Dist("exp", 120.0, 0.0, 4 * 3600.0 - 60)
    """Conversation time of answered calls (200 OK to BYE)."""
    pdd: Dist = Dist("lognormal", 1.5, 0.5, 20.0)
    """Post-dial delay: INVITE to the first 18x (or to the final response when there is no ringing)."""
    ring: Dist = Dist("lognormal", 8.0, 0.6, 60.0)
    """Ringing before an answer."""
    ring_no_answer: Dist = Dist("uniform", 15.0, 40.0)
    """Ringing before 480 / the caller's CANCEL on a no-answer call."""
    rtt: float = 0.02
    """Round trip between peer and SBC, seconds (100 Trying, ACK and the responses to BYE/CANCEL)."""
    early_media_share: float = 0.2
    """Share of ringing calls that get 183 Session Progress with SDP instead of 180 Ringing."""
    caller_hangup_share: float = 0.55
    """Share of answered calls ended by the caller's BYE (the rest by the callee)."""
    no_answer_cancel_share: float = 0.6
    """Share of no-answer calls ended by the caller's CANCEL (the rest by 480 from the far end)."""
    sbc: str = "10.10.0.10:5060"
    """The capture point's SIP element (SBC / core proxy) ``IP:PORT``; every dialog has it on one side."""
    sbc_user_agent: str = "sipscope-loadgen SBC"
    trunks: list[Trunk] = []
    reg_rate: float = 0.0
    """REGISTER chains per second (constant, not shaped by the curve)."""
    access: Access = Access()
    attacks: list[Attack] = []

    def rate_at(self, hour: int) -> float:
        """Call attempts per second during UTC hour ``hour`` (0-23)."""
        top = max(self.curve)
        return self.cps * self.curve[hour] / top if top > 0 else 0.0


DEFAULT_TRUNKS = [
    Trunk("carrier-a", "203.0.113.0/26", ["6128", "6129"], 0.5, "in", 11, "Sonus SBC", 4),
    Trunk("carrier-b", "198.51.100.0/27", ["6138", "6139"], 0.3, "both", 11, "Acme Packet SBC", 2),
    Trunk("mobile-c", "192.0.2.0/28", ["6141", "6142", "6143"], 0.2, "in", 11, "Ericsson MTAS", 2),
]


# -- text forms ------------------------------------------------------------------------------------------

def parse_dist(text: str, cap: float = 0.0) -> Dist:
    """``exp:120``, ``lognormal:120:0.8``, ``uniform:1:3``, ``fixed:2`` (or a bare number = exponential mean)."""
    parts = text.strip().split(":")
    try:
        if len(parts) == 1:
            return Dist("exp", float(parts[0]), 0.0, cap)
        kind, nums = parts[0].lower(), [float(p) for p in parts[1:]]
    except ValueError:
        raise ProfileError(f"bad distribution {text!r}: want KIND:MEAN[:SHAPE], e.g. exp:120") from None
    kind = {"exponential": "exp", "lognorm": "lognormal", "const": "fixed"}.get(kind, kind)
    if kind not in ("exp", "lognormal", "uniform", "fixed") or not nums or any(n < 0 for n in nums):
        raise ProfileError(f"bad distribution {text!r}: kinds exp, lognormal, uniform, fixed with values >= 0")
    if kind == "lognormal" and len(nums) < 2:
        nums.append(0.8)
    if kind == "uniform" and (len(nums) < 2 or nums[1] < nums[0]):
        raise ProfileError(f"bad distribution {text!r}: uniform:LOW:HIGH with LOW <= HIGH")
    return Dist(kind, nums[0], nums[1] if len(nums) > 1 else 0.0, cap)


def parse_mix(text: str) -> dict[str, float]:
    """``answered=0.6,busy=0.1,...`` -> shares (names of :data:`OUTCOMES`, aliases accepted)."""
    mix: dict[str, float] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        name, sep, value = item.partition("=")
        name = _OUTCOME_ALIASES.get(name.strip().lower(), name.strip().lower())
        try:
            share = float(value)
        except ValueError:
            share = -1.0
        if not sep or name not in OUTCOMES or share < 0:
            raise ProfileError(f"bad mix entry {item!r}: want OUTCOME=SHARE with OUTCOME in {', '.join(OUTCOMES)}")
        mix[name] = share
    return check_mix(mix)


def check_mix(mix: dict[str, float]) -> dict[str, float]:
    bad = [k for k in mix if k not in OUTCOMES]
    if bad or sum(mix.values()) <= 0:
        raise ProfileError(f"bad outcome mix {mix}: outcomes {', '.join(OUTCOMES)} with a positive total")
    return mix


def parse_curve(text: str) -> list[float]:
    """A preset name (``flat``, ``business``, ``evening``) or 24 comma-separated hourly weights."""
    if text.strip() in CURVES:
        return list(CURVES[text.strip()])
    try:
        weights = [float(w) for w in text.split(",")]
    except ValueError:
        weights = []
    if len(weights) != 24 or any(w < 0 for w in weights) or max(weights) <= 0:
        raise ProfileError(f"bad curve {text!r}: a preset ({', '.join(CURVES)}) or 24 weights >= 0, one > 0")
    return weights


def parse_attack(text: str, start_of_day: float = 0.0, start: float = 0.0) -> Attack:
    """``KIND[:key=value,...]``, keys ``start``, ``duration``, ``rate``, ``src``, ``ua``, ``target``.

    ``start`` is seconds after the generation start, or ``HH:MM`` (UTC time of day of the simulated day:
    ``start_of_day`` is the epoch of that day's midnight, ``start`` the generation start)."""
    kind, _, rest = text.partition(":")
    kind = kind.strip().lower()
    if kind not in ATTACK_KINDS:
        raise ProfileError(f"bad attack {text!r}: kinds {', '.join(ATTACK_KINDS)}")
    fields: dict[str, Any] = {"kind": kind}
    for item in filter(None, (p.strip() for p in rest.split(","))):
        key, sep, value = item.partition("=")
        key = {"ua": "user_agent", "user-agent": "user_agent"}.get(key.strip(), key.strip())
        if not sep or key not in Attack.__struct_fields__ or key == "kind":
            raise ProfileError(f"bad attack option {item!r} in {text!r}")
        if key == "start" and ":" in value:
            hh, _, mm = value.partition(":")
            try:
                fields[key] = start_of_day + int(hh) * 3600 + int(mm) * 60 - start
            except ValueError:
                raise ProfileError(f"bad attack start {value!r}: seconds or HH:MM") from None
        elif key in ("start", "duration", "rate"):
            try:
                fields[key] = float(value)
            except ValueError:
                raise ProfileError(f"bad attack option {item!r}: a number") from None
        else:
            fields[key] = value.strip()
    return Attack(**fields)


def load_profile(path: str | Path) -> Profile:
    """A profile from a ``.json`` or ``.toml`` file (any field of :class:`Profile`; distributions may be
    given in their text form, e.g. ``hold = "lognormal:180:0.9"``)."""
    p = Path(path)
    try:
        raw = tomllib.loads(p.read_text()) if p.suffix == ".toml" else json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise ProfileError(f"cannot read profile {path}: {exc}") from None
    for key in ("hold", "pdd", "ring", "ring_no_answer"):
        if isinstance(raw.get(key), str):
            raw[key] = msgspec.to_builtins(parse_dist(raw[key]))
    if isinstance(raw.get("curve"), str):
        raw["curve"] = parse_curve(raw["curve"])
    try:
        prof = msgspec.convert(raw, Profile)
    except msgspec.ValidationError as exc:
        raise ProfileError(f"bad profile {path}: {exc}") from None
    return validate(prof)


def validate(prof: Profile) -> Profile:
    """Check a profile (raises :class:`ProfileError`); fills the default trunks when none are given."""
    if len(prof.curve) != 24 or min(prof.curve) < 0 or max(prof.curve) <= 0:
        raise ProfileError("curve: 24 hourly weights >= 0, at least one > 0")
    check_mix(prof.mix)
    if prof.cps < 0 or prof.reg_rate < 0 or prof.duration < 0:
        raise ProfileError("cps, reg_rate and duration must be >= 0")
    if not prof.trunks:
        prof.trunks = list(DEFAULT_TRUNKS)
    for t in prof.trunks:
        if t.direction not in ("in", "out", "both") or not t.prefixes or t.weight < 0:
            raise ProfileError(f"trunk {t.name}: direction in/out/both, at least one prefix, weight >= 0")
    for a in prof.attacks:
        if a.kind not in ATTACK_KINDS or a.rate <= 0 or a.duration < 0:
            raise ProfileError(f"attack {a.kind}: kinds {', '.join(ATTACK_KINDS)}, rate > 0, duration >= 0")
    return prof


def trunk_map(prof: Profile) -> dict[str, str]:
    """The ``correlation.trunks`` map (CIDR -> trunk name) that names this profile's trunks; feed it to
    ``SIPSCOPE_CORRELATION__TRUNKS`` or ``sipscope capacity --trunks``."""
    return {t.cidr: t.name for t in prof.trunks}
